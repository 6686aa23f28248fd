"""The losses family: ``binary_cross_entropy`` and ``binary_cross_entropy_with_logits``.

Their records (``SPECS``), the strategies that draw their cases
(``binary_cross_entropy_cases``, ``binary_cross_entropy_with_logits_cases``),
their edge examples (``EXAMPLES``, built by ``bce``), and their classic backward
mistakes (the two scaffolds and the ``MISTAKES`` they catalogue).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _huge_logits, _label, _small_shapes, _values, recipes, reductions, seeds
from oracle.cases.mistake import Mistake, _sigmoid, _validated, mistakes
from oracle.cases.record import OpSpec, _flag


# --------------------------------------------------------------------------- records


def _reduction_fan_in(case: Case) -> int:
    return 4 + (math.prod(case.shapes["input"]) if case.config.get("reduction", "mean") != "none" else 0)


_REDUCTIONS = (("reduction='sum'", _flag("reduction", "sum")), ("reduction='none'", _flag("reduction", "none")))


SPECS: list[OpSpec] = [
    OpSpec(
        "binary_cross_entropy",
        inputs=("input", "target"),
        differentiable=("input",),
        config=("reduction",),
        fd_values={"input": "probabilities_safe"},
        fan_in=_reduction_fan_in,
        features=_REDUCTIONS,
    ),
    OpSpec(
        "binary_cross_entropy_with_logits",
        inputs=("input", "target"),
        differentiable=("input",),
        config=("reduction",),
        fd_values={"input": "logits"},
        fan_in=_reduction_fan_in,
        features=_REDUCTIONS,
    ),
]


# --------------------------------------------------------------------------- strategies


TARGET_RECIPES = {"binary": 1, "soft": 1}
BCE_RECIPES = {"probabilities_safe": 1, "probabilities_edges": 1}
BCE_LOGITS_RECIPES = {"logits": 1, "logits_wide": 1}


def _loss_cases(op: str, input_weights: dict[str, int]):
    @st.composite
    def draw_case(draw, dtype: st.SearchStrategy[str]):
        shape = draw(_small_shapes(1, 3))
        reduction = draw(reductions())
        input_recipe = draw(recipes(input_weights))
        target_recipe = draw(recipes(TARGET_RECIPES))
        case = Case(
            op=op,
            shapes={"input": shape, "target": shape, "grad_output": shape if reduction == "none" else ()},
            config={"reduction": reduction},
            dtype=draw(dtype),
            seed=draw(seeds()),
            values=_values(input=input_recipe, target=target_recipe),
        )
        arrays = case.arrays()
        p, t = arrays["input"], arrays["target"]
        if op == "binary_cross_entropy":
            edge = (p == 0) | (p == 1)
            if edge.any():
                _label("bce: p at 0 or 1")
                if (edge & (p != t)).any():
                    _label("bce: p at 0 or 1, target disagrees")
        else:
            label = _huge_logits(p)
            if label:
                _label(label)
        _label(f"{op}: reduction={reduction}, target {target_recipe}")
        _label(f"dtype: {case.dtype}")
        return case

    return draw_case


_bce_cases = _loss_cases("binary_cross_entropy", BCE_RECIPES)
_bce_logits_cases = _loss_cases("binary_cross_entropy_with_logits", BCE_LOGITS_RECIPES)


def binary_cross_entropy_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``binary_cross_entropy(input, target, reduction=)`` case.

    input and target share a shape of 1-3 dimensions (sides 1-4); input
    ``"probabilities_safe"`` or ``"probabilities_edges"`` (exact 0s and 1s),
    target ``"binary"`` or ``"soft"``; reduction mean/sum (grad_output ``()``)
    or none (grad_output of input's shape). ``dtype`` None draws it.
    """
    return _bce_cases(_dtype_strategy(dtype))


def binary_cross_entropy_with_logits_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``binary_cross_entropy_with_logits(input, target, reduction=)`` case.

    As ``binary_cross_entropy_cases``, with input ``"logits"`` or
    ``"logits_wide"`` (+-1e4 and beyond).
    """
    return _bce_logits_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {
    "binary_cross_entropy": binary_cross_entropy_cases,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits_cases,
}


# --------------------------------------------------------------------------- examples


def bce(op, shape, *, reduction="mean", values=None, seed=0) -> Case:
    g = () if reduction != "none" else shape
    return Case(op, {"input": shape, "target": shape, "grad_output": g}, {"reduction": reduction}, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "binary_cross_entropy": [
        bce("binary_cross_entropy", (2, 5), values={"input": "probabilities_edges", "target": "binary"}),
        bce("binary_cross_entropy", (2, 5), reduction="none", values={"input": "probabilities_edges", "target": "binary"}),
        bce("binary_cross_entropy", (4,), reduction="sum", values={"input": "probabilities_edges", "target": "soft"}),
    ],
    "binary_cross_entropy_with_logits": [
        bce("binary_cross_entropy_with_logits", (2, 5), values={"input": "logits_wide", "target": "binary"}),
        bce("binary_cross_entropy_with_logits", (6,), reduction="none", values={"input": "logits_wide", "target": "soft"}),
    ],
}


# --------------------------------------------------------------------------- mistakes


#: ATen's clamp of p(1 - p) in the BCE backward: a float32 constant (see refimpl.losses)
_EPSILON = np.float32(1e-12)


def binary_cross_entropy_scaffold(grad_output, input, target, *, reduction="mean", rule="right", divide="right"):
    """binary_cross_entropy_backward; the defaults are the right rule.

    rule    "right" g (p - y) / max(p(1-p), eps); "no_clamp" g (p - y) / (p(1-p)); "sign" g (y - p) / max(...);
            "collapsed" g (p - y) (the gradient w.r.t. the logits, used for the probabilities)
    divide  by the element count: "right" (for 'mean'), "never", "always" (also for 'sum'/'none')
    """
    _validated("binary_cross_entropy", grad_output, [input, target], {"reduction": reduction})
    dt = input.dtype.type
    with np.errstate(divide="ignore", invalid="ignore"):
        if rule == "collapsed":
            grad = grad_output * (input - target)
        else:
            denominator = (dt(1) - input) * input
            if rule != "no_clamp":
                denominator = np.maximum(denominator, dt(_EPSILON))
            difference = (target - input) if rule == "sign" else (input - target)
            grad = grad_output * difference / denominator
    if (divide == "right" and reduction == "mean") or divide == "always":
        grad = grad / dt(input.size)
    return np.asarray(grad, dtype=input.dtype)


def binary_cross_entropy_with_logits_scaffold(grad_output, input, target, *, reduction="mean", rule="right", divide="right"):
    """binary_cross_entropy_with_logits_backward; the defaults are the right rule, g (sigmoid(z) - y).

    rule    "right"; "no_sigmoid" g (z - y); "naive" the chain rule through a naive 1/(1+exp(-z)) and the
            unclamped probability form (NaN once sigmoid saturates); "clamped" the chain rule through the
            clamped probability form (wrong where p(1-p) < 1e-12, pytorch#103316)
    divide  by the element count: "right" (for 'mean') or "never"
    """
    _validated("binary_cross_entropy_with_logits", grad_output, [input, target], {"reduction": reduction})
    dt = input.dtype.type
    one = dt(1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if rule == "no_sigmoid":
            grad = grad_output * (input - target)
        elif rule == "naive":
            p = one / (one + np.exp(-input))
            d_p = -(target / p - (one - target) / (one - p))
            grad = grad_output * d_p * (p * (one - p))
        elif rule == "clamped":
            p = _sigmoid(input)
            slope = (one - p) * p
            grad = grad_output * (p - target) / np.maximum(slope, dt(_EPSILON)) * slope
        else:
            grad = grad_output * (_sigmoid(input) - target)
    if divide == "right" and reduction == "mean":
        grad = grad / dt(input.size)
    return np.asarray(grad, dtype=input.dtype)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {
    "binary_cross_entropy": binary_cross_entropy_scaffold,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits_scaffold,
}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- binary_cross_entropy
    ("bce_mean_not_divided", "binary_cross_entropy",
     "reduction='mean' not divided by the element count in the backward",
     dict(divide="never")),
    ("bce_sum_divided", "binary_cross_entropy",
     "the backward always divides by the element count, also for reduction='sum' and 'none'",
     dict(divide="always")),
    ("bce_no_epsilon_clamp", "binary_cross_entropy",
     "the backward without ATen's clamp max(p(1-p), 1e-12): inf or NaN at p = 0 or 1",
     dict(rule="no_clamp")),
    ("bce_grad_sign_flipped", "binary_cross_entropy",
     "the sign of the gradient flipped: (y - p) / (p(1-p)) instead of (p - y) / (p(1-p))",
     dict(rule="sign")),
    ("bce_collapsed_gradient", "binary_cross_entropy",
     "the collapsed sigmoid+BCE gradient (p - y) used for the probabilities, without the 1/(p(1-p)) factor",
     dict(rule="collapsed")),
    # ----------------------------------------------------------------- binary_cross_entropy_with_logits
    ("bce_logits_naive", "binary_cross_entropy_with_logits",
     "the logits form by the naive chain rule: 1/(1+exp(-z)) and the unclamped probability derivative, NaN once sigmoid saturates (|z| ~ 40 to 1e4)",
     dict(rule="naive")),
    ("bce_logits_clamped_chain", "binary_cross_entropy_with_logits",
     "the logits form through the clamped probability backward: far too small where p(1-p) < 1e-12 (|z| > ~28, pytorch#103316)",
     dict(rule="clamped")),
    ("bce_logits_sigmoid_missing", "binary_cross_entropy_with_logits",
     "the sigmoid left out of the logits gradient: z - y instead of sigmoid(z) - y",
     dict(rule="no_sigmoid")),
    ("bce_logits_mean_not_divided", "binary_cross_entropy_with_logits",
     "reduction='mean' not divided by the element count in the backward",
     dict(divide="never")),
])
