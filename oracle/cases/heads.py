"""The loss heads of a classifier and a regressor: ``cross_entropy`` (over classes, on logits) and ``mse_loss``.

Their records (``SPECS``), the strategies that draw their cases
(``cross_entropy_cases``, ``mse_loss_cases``), their edge examples
(``EXAMPLES``), and their classic backward mistakes (``cross_entropy_scaffold``,
``mse_loss_scaffold`` and the ``MISTAKES`` they catalogue). The binary
cross-entropies are in ``oracle.cases.losses``, whose reduction features and
fan-in these share.

``cross_entropy``'s target holds int64 class indices (the ``"class_indices"``
recipe of ``oracle.values``), in float32 cases too; it is never differentiated.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _huge_logits, _label, _small_shapes, _values, recipes, reductions, reused, seeds
from oracle.cases.losses import _REDUCTIONS, _reduction_fan_in, bce
from oracle.cases.mistake import Mistake, _validated, mistakes
from oracle.cases.record import OpSpec


# --------------------------------------------------------------------------- records


def _classes_fan_in(case: Case) -> int:
    """The softmax's sum over the C classes, and the reduction's over the N rows (unless 'none')."""
    n, c = case.shapes["input"]
    return 4 + c + (n if case.config.get("reduction", "mean") != "none" else 0)


SPECS: list[OpSpec] = [
    OpSpec(
        "cross_entropy",
        inputs=("input", "target"),
        differentiable=("input",),
        config=("reduction",),
        fd_values={"input": "logits"},
        fan_in=_classes_fan_in,
        features=_REDUCTIONS,
    ),
    OpSpec(
        "mse_loss",
        inputs=("input", "target"),
        differentiable=("input",),
        config=("reduction",),
        fan_in=_reduction_fan_in,
        features=_REDUCTIONS,
    ),
]


# --------------------------------------------------------------------------- strategies


#: logits of cross_entropy: ordinary, exact ties, and +-1e4 and beyond (a naive exp overflows)
CROSS_ENTROPY_RECIPES = {"normal": 2, "logits": 1, "ties": 1, "logits_wide": 2}
#: input and target of mse_loss ("ties" and "zeros" on both sides make input == target at some elements)
MSE_RECIPES = {"normal": 2, "ties": 1, "zeros": 1}


@reused
def _sides(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


@st.composite
def _cross_entropy_cases(draw, dtype: st.SearchStrategy[str]):
    n, c = draw(_sides(1, 4)), draw(_sides(1, 5))
    reduction = draw(reductions())
    recipe = draw(recipes(CROSS_ENTROPY_RECIPES))
    case = Case(
        op="cross_entropy",
        shapes={"input": (n, c), "target": (n,), "grad_output": (n,) if reduction == "none" else ()},
        config={"reduction": reduction},
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(input=recipe, target="class_indices"),
    )
    label = _huge_logits(case.arrays()["input"])
    if label:
        _label(label)
    if c == 1:
        _label("cross_entropy: C = 1 (the gradient is 0)")
    if n == 1:
        _label("cross_entropy: N = 1")
    _label(f"cross_entropy: reduction={reduction}")
    _label(f"dtype: {case.dtype}")
    return case


@st.composite
def _mse_loss_cases(draw, dtype: st.SearchStrategy[str]):
    shape = draw(_small_shapes(1, 3))
    reduction = draw(reductions())
    case = Case(
        op="mse_loss",
        shapes={"input": shape, "target": shape, "grad_output": shape if reduction == "none" else ()},
        config={"reduction": reduction},
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(input=draw(recipes(MSE_RECIPES)), target=draw(recipes(MSE_RECIPES))),
    )
    _label(f"mse_loss: {len(shape)}-d, reduction={reduction}")
    _label(f"dtype: {case.dtype}")
    return case


def cross_entropy_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``cross_entropy(input, target, reduction=)`` case.

    input (N, C) logits, N 1-4 and C 1-5 (C = 1: the gradient is 0), ``"normal"``,
    ``"logits"``, ``"ties"`` or ``"logits_wide"`` (+-1e4 and beyond); target (N,)
    int64 class indices in [0, C) (``"class_indices"``, int64 in float32 cases
    too); reduction mean/sum (grad_output ``()``) or none (grad_output (N,)).
    Never an out-of-range target nor torch's ignore_index -100 (refimpl rejects both).
    """
    return _cross_entropy_cases(_dtype_strategy(dtype))


def mse_loss_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``mse_loss(input, target, reduction=)`` case.

    input and target share a shape of 1-3 dimensions (sides 1-4; no
    broadcasting, which torch only warns about), each ``"normal"``, ``"ties"``
    or ``"zeros"``; reduction mean/sum (grad_output ``()``) or none
    (grad_output of input's shape).
    """
    return _mse_loss_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"cross_entropy": cross_entropy_cases, "mse_loss": mse_loss_cases}


# --------------------------------------------------------------------------- examples


def classes(n, c, *, reduction="mean", values=None, seed=0) -> Case:
    """A cross_entropy case: (n, c) logits, n class indices."""
    return Case("cross_entropy", {"input": (n, c), "target": (n,), "grad_output": () if reduction != "none" else (n,)},
                {"reduction": reduction}, seed=seed, values={"target": "class_indices", **(values or {})})


EXAMPLES: dict[str, list[Case]] = {
    "cross_entropy": [
        classes(3, 4, values={"input": "logits_wide"}),
        classes(2, 1, reduction="sum"),  # C = 1: the loss and the gradient are 0
        classes(1, 5, reduction="none", values={"input": "ties"}),
        classes(4, 3, reduction="none", values={"input": "logits_wide"}),
    ],
    "mse_loss": [
        bce("mse_loss", (2, 3)),
        bce("mse_loss", (4,), reduction="sum", values={"input": "ties", "target": "ties"}),
        bce("mse_loss", (2, 2, 3), reduction="none"),
    ],
}


# --------------------------------------------------------------------------- mistakes


def cross_entropy_scaffold(grad_output, input, target, *, reduction="mean", rule="right", divide="right"):
    """cross_entropy_backward; the defaults are the right rule, (softmax(input) - onehot(target)) g_n.

    rule    "right"; "naive" softmax as exp(z) / sum exp(z) without the max shift (NaN once exp overflows);
            "no_onehot" softmax(input) g_n (the -1 at the target class left out: logsumexp's gradient)
    divide  for 'mean': "right" by N; "never"; "all" by N*C (the element count of input)
    """
    _validated("cross_entropy", grad_output, [input, target], {"reduction": reduction})
    dt = input.dtype.type
    n, c = input.shape
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(input if rule == "naive" else input - np.max(input, axis=1, keepdims=True))
        s = e / np.sum(e, axis=1, keepdims=True)
    onehot = np.zeros_like(input)
    if rule != "no_onehot":
        onehot[np.arange(n), target] = dt(1)
    weight = grad_output.reshape(-1, 1) if reduction == "none" else grad_output.reshape(1, 1)
    if reduction == "mean" and divide != "never":
        weight = weight / dt(n * c if divide == "all" else n)
    return np.asarray((s - onehot) * weight, dtype=input.dtype)


def mse_loss_scaffold(grad_output, input, target, *, reduction="mean", factor=2, divide="right", sign=1):
    """mse_loss_backward; the defaults are the right rule, 2 (input - target) g (/ numel for 'mean').

    factor  2 (right) or 1 (the 2 of the square's derivative left out)
    divide  "right" by the element count for 'mean', or "never"
    sign    1 (right) or -1: (target - input), the derivative taken w.r.t. the target
    """
    _validated("mse_loss", grad_output, [input, target], {"reduction": reduction})
    dt = input.dtype.type
    grad = dt(factor * sign) * (input - target) * grad_output
    if reduction == "mean" and divide == "right":
        grad = grad / dt(input.size)
    return np.asarray(grad, dtype=input.dtype)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"cross_entropy": cross_entropy_scaffold, "mse_loss": mse_loss_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- cross_entropy
    ("cross_entropy_mean_not_divided", "cross_entropy",
     "reduction='mean' not divided by the batch size N in the backward",
     dict(divide="never")),
    ("cross_entropy_mean_divided_by_nc", "cross_entropy",
     "reduction='mean' divided by N*C (every logit counted) instead of by the batch size N",
     dict(divide="all")),
    ("cross_entropy_no_max_shift", "cross_entropy",
     "softmax recomputed as exp(z) / sum exp(z) without subtracting the row's maximum: NaN once exp overflows (logits ~ 1e2 to 1e4)",
     dict(rule="naive")),
    ("cross_entropy_no_onehot", "cross_entropy",
     "softmax(input) without subtracting onehot(target): the gradient of logsumexp alone",
     dict(rule="no_onehot")),
    # ----------------------------------------------------------------- mse_loss
    ("mse_loss_missing_two", "mse_loss",
     "(input - target) g without the factor 2 of the square's derivative",
     dict(factor=1)),
    ("mse_loss_mean_not_divided", "mse_loss",
     "reduction='mean' not divided by the element count in the backward",
     dict(divide="never")),
    ("mse_loss_sign_flipped", "mse_loss",
     "2 (target - input) g: the derivative taken w.r.t. the target instead of the input",
     dict(sign=-1)),
])
