"""The dense family: ``linear`` and ``flatten``.

Their records (``SPECS``), the strategies that draw their cases
(``linear_cases``, ``flatten_cases``), their edge examples (``EXAMPLES``), and
their classic backward mistakes (``linear_scaffold``, ``flatten_scaffold`` and
the ``MISTAKES`` they catalogue).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _label, _small_shapes, seeds
from oracle.cases.example import elementwise
from oracle.cases.mistake import Mistake, _validated, mistakes
from oracle.cases.record import OpSpec, _no


# --------------------------------------------------------------------------- records


def _linear_fan_in(case: Case) -> int:
    x, w = case.shapes["x"], case.shapes["weight"]
    return max(x[-1] + 1, w[0], math.prod(x[:-1]))


SPECS: list[OpSpec] = [
    OpSpec(
        "linear",
        inputs=("x", "weight", "bias"),
        differentiable=("x", "weight", "bias"),
        optional=("bias",),
        linear_in=("x", "weight"),
        fan_in=_linear_fan_in,
        features=(("bias=None", _no("bias")),),
    ),
    OpSpec("flatten", inputs=("x",), differentiable=("x",), linear_in=("x",)),
]


# --------------------------------------------------------------------------- strategies


@st.composite
def _linear_cases(draw, dtype: st.SearchStrategy[str]):
    n = draw(st.integers(1, 5))
    d_in = draw(st.integers(1, 6))
    d_out = draw(st.integers(1, 6))
    has_bias = draw(st.booleans())
    case = Case(
        op="linear",
        shapes={
            "x": (n, d_in),
            "weight": (d_out, d_in),
            "bias": (d_out,) if has_bias else None,
            "grad_output": (n, d_out),
        },
        config={},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    if not has_bias:
        _label("linear: no bias")
    if 1 in (n, d_in, d_out):
        _label("linear: a dimension of 1")
    _label(f"dtype: {case.dtype}")
    return case


def linear_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``linear(x, weight, bias)`` case: x ``(N, in)``, weight ``(out, in)``, bias ``(out,)`` or ``None``; N 1-5, in/out 1-6."""
    return _linear_cases(_dtype_strategy(dtype))


@st.composite
def _flatten_cases(draw, dtype: st.SearchStrategy[str]):
    shape = draw(_small_shapes(2, 4))
    case = Case(
        op="flatten",
        shapes={"x": shape, "grad_output": (shape[0], math.prod(shape[1:]))},
        config={},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    _label(f"flatten: {len(shape)}-d")
    _label(f"dtype: {case.dtype}")
    return case


def flatten_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``flatten(x)`` case (``torch.flatten(x, 1)``): x of 2-4 dimensions (sides 1-4), grad_output ``(N, prod(rest))``."""
    return _flatten_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"linear": linear_cases, "flatten": flatten_cases}


# --------------------------------------------------------------------------- examples


EXAMPLES: dict[str, list[Case]] = {
    "linear": [
        Case("linear", {"x": (1, 1), "weight": (1, 1), "bias": (1,), "grad_output": (1, 1)}, {}),
        Case("linear", {"x": (3, 4), "weight": (2, 4), "bias": None, "grad_output": (3, 2)}, {}),
    ],
    "flatten": [elementwise("flatten", (2, 3, 2, 2)) .with_(shapes={"x": (2, 3, 2, 2), "grad_output": (2, 12)})],
}


# --------------------------------------------------------------------------- mistakes


def _linear_2d(grad_output, x, weight):
    out_features, in_features = weight.shape
    return grad_output.reshape(-1, out_features), x.reshape(-1, in_features)


def linear_scaffold(grad_output, x, weight, bias=None, *, grad_weight="right", grad_bias="right"):
    """linear_backward; the defaults are the right rule.

    grad_weight  "right" (G^T X), "transposed" ((X^T G) reshaped to W's shape), "batch_mean" (G^T X / N)
    grad_bias    "right" (sum of G over the batch), "mean", "all_axes" (sum of all of G, broadcast)
    """
    _validated("linear", grad_output, [x, weight, bias], {})
    g2, x2 = _linear_2d(grad_output, x, weight)
    grad_x = grad_output @ weight
    if grad_weight == "right":
        gw = g2.T @ x2
    elif grad_weight == "transposed":
        gw = np.ascontiguousarray(x2.T @ g2).reshape(weight.shape)
    else:
        gw = g2.T @ x2 / x.dtype.type(max(g2.shape[0], 1))
    if bias is None:
        gb = None
    elif grad_bias == "right":
        gb = g2.sum(axis=0)
    elif grad_bias == "mean":
        gb = g2.mean(axis=0) if g2.shape[0] else g2.sum(axis=0)
    else:
        gb = np.full(bias.shape, g2.sum(), dtype=bias.dtype)
    return grad_x, gw, gb


def flatten_scaffold(grad_output, x, *, order="right"):
    """flatten_backward: "right" g.reshape(x.shape); "column_major" (order='F'); "transposed" g.T.reshape(x.shape)."""
    _validated("flatten", grad_output, [x], {})
    if order == "column_major":
        return grad_output.reshape(x.shape, order="F").copy()
    if order == "transposed":
        return np.ascontiguousarray(grad_output.T).reshape(x.shape)
    return grad_output.reshape(x.shape).copy()


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"linear": linear_scaffold, "flatten": flatten_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- linear
    ("linear_grad_weight_transposed", "linear",
     "grad_W transposed: X^T G (in x out) reshaped to W's (out x in) shape instead of G^T X",
     dict(grad_weight="transposed")),
    ("linear_grad_weight_batch_mean", "linear",
     "grad_W averaged over the batch (G^T X / N) instead of summed: the loss's 1/N applied a second time",
     dict(grad_weight="batch_mean")),
    ("linear_bias_grad_mean", "linear",
     "the bias gradient averaged over the batch instead of summed",
     dict(grad_bias="mean")),
    ("linear_bias_grad_all_axes", "linear",
     "the bias gradient summed over the wrong axes: the sum of all of G, broadcast to every output, instead of the sum over the batch",
     dict(grad_bias="all_axes")),
    # ----------------------------------------------------------------- flatten
    ("flatten_column_major", "flatten",
     "flatten undone in the wrong order: the gradient reshaped column-major (order='F') instead of row-major",
     dict(order="column_major")),
    ("flatten_transposed", "flatten",
     "flatten undone through a transpose: G.T reshaped to x's shape instead of G",
     dict(order="transposed")),
])
