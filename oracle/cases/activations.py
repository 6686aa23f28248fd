"""The activations family: ``relu`` and ``sigmoid``.

Their records (``SPECS``), the strategies that draw their cases
(``relu_cases``, ``sigmoid_cases``), their edge examples (``EXAMPLES``), and
their classic backward mistakes (``relu_scaffold``, ``sigmoid_scaffold`` and
the ``MISTAKES`` they catalogue).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _huge_logits, _label, _small_shapes, _values, recipes, seeds
from oracle.cases.example import elementwise
from oracle.cases.mistake import Mistake, _sigmoid, _validated, mistakes
from oracle.cases.record import OpSpec


# --------------------------------------------------------------------------- records


SPECS: list[OpSpec] = [
    OpSpec("relu", inputs=("x",), differentiable=("x",), fd_values={"x": "gapped"}),
    OpSpec("sigmoid", inputs=("x",), differentiable=("x",), fd_values={"x": "logits"}, fan_in=lambda case: 4),
]


# --------------------------------------------------------------------------- strategies


#: x of relu: exact zeros (relu'(0)) and ties are the corners
RELU_RECIPES = {"normal": 2, "zeros": 2, "ties": 1, "gapped": 1}
#: x of sigmoid: saturation needs big logits
SIGMOID_RECIPES = {"normal": 1, "logits": 1, "logits_wide": 1}


def _elementwise_cases(op: str, weights: dict[str, int], corner: Callable[[np.ndarray], str | None]):
    @st.composite
    def draw_case(draw, dtype: st.SearchStrategy[str]):
        shape = draw(_small_shapes(1, 4))
        recipe = draw(recipes(weights))
        case = Case(
            op=op,
            shapes={"x": shape, "grad_output": shape},
            config={},
            dtype=draw(dtype),
            seed=draw(seeds()),
            values=_values(x=recipe),
        )
        label = corner(case.arrays()["x"])
        if label:
            _label(label)
        _label(f"{op}: {len(shape)}-d")
        _label(f"dtype: {case.dtype}")
        return case

    return draw_case


_relu_cases = _elementwise_cases("relu", RELU_RECIPES, lambda x: "relu: exact zeros" if (x == 0).any() else None)
_sigmoid_cases = _elementwise_cases("sigmoid", SIGMOID_RECIPES, _huge_logits)


def relu_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``relu(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"zeros"``, ``"ties"`` or ``"gapped"``."""
    return _relu_cases(_dtype_strategy(dtype))


def sigmoid_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``sigmoid(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"logits"`` or ``"logits_wide"``."""
    return _sigmoid_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"relu": relu_cases, "sigmoid": sigmoid_cases}


# --------------------------------------------------------------------------- examples


EXAMPLES: dict[str, list[Case]] = {
    "relu": [elementwise("relu", (2, 3), values={"x": "ties"}), elementwise("relu", (1,), values={"x": "zeros"})],
    "sigmoid": [elementwise("sigmoid", (3, 4), values={"x": "logits_wide"})],
}


# --------------------------------------------------------------------------- mistakes


def relu_scaffold(grad_output, x, *, rule="right"):
    """relu_backward: "right" g * (x > 0); "zero_is_one" g * (x >= 0); "times_output" g * relu(x); "gradient_sign" relu(g)."""
    _validated("relu", grad_output, [x], {})
    zero = x.dtype.type(0)
    if rule == "right":
        return np.where(x <= 0, zero, grad_output)
    if rule == "zero_is_one":
        return np.where(x < 0, zero, grad_output)
    if rule == "times_output":
        return grad_output * np.where(x < 0, zero, x)
    return np.where(grad_output > 0, grad_output, zero)


def sigmoid_scaffold(grad_output, x, *, rule="right"):
    """sigmoid_backward: "right" g * (1 - s) * s; "s_only" g * s; "from_x" g * x * (1 - x)."""
    _validated("sigmoid", grad_output, [x], {})
    one = x.dtype.type(1)
    if rule == "from_x":
        return grad_output * x * (one - x)
    s = _sigmoid(x)
    if rule == "s_only":
        return grad_output * s
    return grad_output * (one - s) * s


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"relu": relu_scaffold, "sigmoid": sigmoid_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- relu
    ("relu_grad_at_zero_one", "relu",
     "relu'(0) = 1: the gradient passed where x >= 0 instead of x > 0",
     dict(rule="zero_is_one")),
    ("relu_grad_times_output", "relu",
     "the output gradient multiplied by the activation relu(x) instead of its derivative (x > 0)",
     dict(rule="times_output")),
    ("relu_mask_from_gradient", "relu",
     "the mask taken from the output gradient instead of the input: relu(g) instead of g * (x > 0)",
     dict(rule="gradient_sign")),
    # ----------------------------------------------------------------- sigmoid
    ("sigmoid_derivative_s", "sigmoid",
     "the sigmoid derivative taken as s instead of s(1 - s)",
     dict(rule="s_only")),
    ("sigmoid_derivative_from_x", "sigmoid",
     "the sigmoid derivative computed from the input as x(1 - x) instead of from s = sigmoid(x) as s(1 - s)",
     dict(rule="from_x")),
])
