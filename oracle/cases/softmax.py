"""The softmax family: ``softmax`` and ``log_softmax`` along one dimension.

Their records (``SPECS``), the strategies that draw their cases
(``softmax_cases``, ``log_softmax_cases``), their edge examples (``EXAMPLES``),
and their classic backward mistakes (``softmax_scaffold``,
``log_softmax_scaffold`` and the ``MISTAKES`` they catalogue).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _huge_logits, _label, _small_shapes, _values, recipes, reused, seeds
from oracle.cases.mistake import Mistake, _validated, mistakes
from oracle.cases.record import OpSpec


# --------------------------------------------------------------------------- records


def _dim_fan_in(case: Case) -> int:
    """The softmax's sum runs over the ``dim`` axis; a few more roundings (the shift, exp, the division)."""
    return case.shapes["x"][case.config["dim"]] + 3


def _negative_dim(case: Case) -> bool:
    return case.config.get("dim", 0) < 0


SPECS: list[OpSpec] = [
    OpSpec(name, inputs=("x",), differentiable=("x",), config=("dim",), fd_values={"x": "logits"},
           fan_in=_dim_fan_in, features=(("dim < 0", _negative_dim),))
    for name in ("softmax", "log_softmax")
]


# --------------------------------------------------------------------------- strategies


#: x of softmax/log_softmax: ordinary values, exact ties, and logits up to +-1e4 (a naive exp overflows)
SOFTMAX_RECIPES = {"normal": 2, "logits": 1, "ties": 1, "logits_wide": 2}


@reused
def _dims(ndim: int) -> st.SearchStrategy[int]:
    return st.integers(-ndim, ndim - 1)


def _softmax_cases(op: str):
    @st.composite
    def draw_case(draw, dtype: st.SearchStrategy[str]):
        shape = draw(_small_shapes(1, 4))
        dim = draw(_dims(len(shape)))
        recipe = draw(recipes(SOFTMAX_RECIPES))
        case = Case(
            op=op,
            shapes={"x": shape, "grad_output": shape},
            config={"dim": dim},
            dtype=draw(dtype),
            seed=draw(seeds()),
            values=_values(x=recipe),
        )
        x = case.arrays()["x"]
        label = _huge_logits(x)
        if label:
            _label(label)
        if x.size and (x == np.max(x, axis=dim, keepdims=True)).sum(axis=dim).max() > 1:
            _label(f"{op}: a tie at the maximum")
        if shape[dim] == 1:
            _label(f"{op}: dim of size 1")
        _label(f"{op}: {len(shape)}-d, dim {'negative' if dim < 0 else 'non-negative'}")
        _label(f"dtype: {case.dtype}")
        return case

    return draw_case


_softmax = _softmax_cases("softmax")
_log_softmax = _softmax_cases("log_softmax")


def softmax_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``softmax(x, dim=)`` case.

    x of 1-4 dimensions (sides 1-4); dim any of ``-ndim .. ndim - 1`` (negative
    ones included); x ``"normal"``, ``"logits"``, ``"ties"`` (exact ties, at the
    maximum too) or ``"logits_wide"`` (+-1e4 and beyond, where a naive exp
    overflows); grad_output of x's shape. ``dtype`` None draws it.
    """
    return _softmax(_dtype_strategy(dtype))


def log_softmax_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``log_softmax(x, dim=)`` case, drawn as ``softmax_cases``."""
    return _log_softmax(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"softmax": softmax_cases, "log_softmax": log_softmax_cases}


# --------------------------------------------------------------------------- examples


def along(op, shape, dim, values=None, seed=0) -> Case:
    return Case(op, {"x": shape, "grad_output": shape}, {"dim": dim}, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    op: [
        along(op, (2, 5), -1, values={"x": "logits_wide"}),
        along(op, (3, 4), 0, values={"x": "ties"}),
        along(op, (2, 3, 4), -2),
        along(op, (4, 1), 1),  # a dim of size 1: the output is constant, the gradient 0
    ]
    for op in ("softmax", "log_softmax")
}


# --------------------------------------------------------------------------- mistakes


def _shifted_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _naive_softmax(x, axis):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)
        return e / np.sum(e, axis=axis, keepdims=True)


def softmax_scaffold(grad_output, x, *, dim, rule="right", sum_axis="right"):
    """softmax_backward; the defaults are the right rule, s (g - sum_dim(g s)).

    rule      "right"; "diagonal" g s (1 - s) (the Jacobian's diagonal only); "naive" the right formula on
              s = exp(x) / sum exp(x) without the max shift (inf / inf = NaN once exp overflows)
    sum_axis  the axis of sum(g s): "right" (dim) or "last" (always -1, as code written for dim=-1)
    """
    _validated("softmax", grad_output, [x], {"dim": dim})
    s = _naive_softmax(x, dim) if rule == "naive" else _shifted_softmax(x, dim)
    if rule == "diagonal":
        return grad_output * s * (x.dtype.type(1) - s)
    axis = dim if sum_axis == "right" else -1
    return s * (grad_output - np.sum(grad_output * s, axis=axis, keepdims=True))


def log_softmax_scaffold(grad_output, x, *, dim, rule="right", sum_axis="right"):
    """log_softmax_backward; the defaults are the right rule, g - s sum_dim(g).

    rule      "right"; "no_sum" g - s g (= g (1 - s): the sum over dim left out); "softmax_rule" softmax's
              backward s (g - sum(g s)) used for log_softmax
    sum_axis  the axis of sum(g): "right" (dim) or "last" (always -1)
    """
    _validated("log_softmax", grad_output, [x], {"dim": dim})
    s = _shifted_softmax(x, dim)
    if rule == "no_sum":
        return grad_output - s * grad_output
    if rule == "softmax_rule":
        return s * (grad_output - np.sum(grad_output * s, axis=dim, keepdims=True))
    axis = dim if sum_axis == "right" else -1
    return grad_output - s * np.sum(grad_output, axis=axis, keepdims=True)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"softmax": softmax_scaffold, "log_softmax": log_softmax_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- softmax
    ("softmax_diagonal_only", "softmax",
     "only the Jacobian's diagonal: g s (1 - s) instead of s (g - sum(g s)) (the off-diagonal -s_i s_j terms left out)",
     dict(rule="diagonal")),
    ("softmax_sum_wrong_dim", "softmax",
     "sum(g s) taken over the last axis whatever dim is, instead of over dim",
     dict(sum_axis="last")),
    ("softmax_no_max_shift", "softmax",
     "softmax recomputed as exp(x) / sum exp(x) without subtracting the maximum: inf / inf = NaN once exp overflows (logits ~ 1e2 to 1e4)",
     dict(rule="naive")),
    # ----------------------------------------------------------------- log_softmax
    ("log_softmax_no_sum", "log_softmax",
     "g - softmax(x) * g (= g (1 - softmax)) instead of g - softmax(x) * sum(g): the sum over dim left out",
     dict(rule="no_sum")),
    ("log_softmax_softmax_rule", "log_softmax",
     "softmax's backward s (g - sum(g s)) used for log_softmax, instead of g - s sum(g)",
     dict(rule="softmax_rule")),
    ("log_softmax_sum_wrong_dim", "log_softmax",
     "sum(g) taken over the last axis whatever dim is, instead of over dim",
     dict(sum_axis="last")),
])
