"""The activations family: ``relu``, ``sigmoid``, ``tanh``, ``leaky_relu`` and ``gelu``.

Their records (``SPECS``), the strategies that draw their cases
(``relu_cases``, ``sigmoid_cases``, ``tanh_cases``, ``leaky_relu_cases``,
``gelu_cases``, all from one elementwise builder), their edge examples
(``EXAMPLES``), and their classic backward mistakes (one scaffold per op and
the ``MISTAKES`` they catalogue).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _huge_logits, _label, _small_shapes, _values, recipes, reused, seeds
from oracle.cases.example import elementwise
from oracle.cases.mistake import Mistake, _sigmoid, _validated, mistakes
from oracle.cases.record import OpSpec, _differs, _flag
from refimpl.activations import GELU_APPROXIMATIONS
from refimpl.erf import erf


# --------------------------------------------------------------------------- records


SPECS: list[OpSpec] = [
    OpSpec("relu", inputs=("x",), differentiable=("x",), fd_values={"x": "gapped"}),
    OpSpec("sigmoid", inputs=("x",), differentiable=("x",), fd_values={"x": "logits"}, fan_in=lambda case: 4),
    # smooth, but at |x| >= 1e4 the rounding of x +- h is a relative 1e-6 of the step: differences use |x| <= 50
    OpSpec("tanh", inputs=("x",), differentiable=("x",), fd_values={"x": "tails"}, fan_in=lambda case: 4),
    # piecewise linear: the adjoint holds for the linearization at a point away from the kink at 0
    OpSpec("leaky_relu", inputs=("x",), differentiable=("x",), config=("negative_slope",), linearized_in=("x",),
           fd_values={"x": "gapped"}, features=(("negative_slope", _differs("negative_slope", 0.01)),)),
    OpSpec("gelu", inputs=("x",), differentiable=("x",), config=("approximate",), fd_values={"x": "tails"},
           fan_in=lambda case: 6,
           features=(("approximate='tanh'", _flag("approximate", "tanh")),)),
]


# --------------------------------------------------------------------------- strategies


#: x of relu: exact zeros (relu'(0)) and ties are the corners
RELU_RECIPES = {"normal": 2, "zeros": 2, "ties": 1, "gapped": 1}
#: x of sigmoid: saturation needs big logits
SIGMOID_RECIPES = {"normal": 1, "logits": 1, "logits_wide": 1}
#: x of tanh: saturation (``tails``: +-10 to +-40; ``logits_wide``: +-1e4 and beyond) and values near 0
TANH_RECIPES = {"normal": 1, "logits": 1, "tails": 2, "logits_wide": 1}
#: x of leaky_relu: exact zeros (the slope applies at 0) and ties, as relu's
LEAKY_RELU_RECIPES = RELU_RECIPES
#: x of gelu: near 0 and far in both tails (``tails``), +-1e4 and beyond, exact zeros
GELU_RECIPES = {"normal": 1, "tails": 3, "logits_wide": 1, "zeros": 1}

#: negative slopes torch's callers use or that break a rule: 0 (relu's), 1 (identity), negative, > 1
SPECIAL_SLOPES = (0.01, 0.0, 1.0, -0.5, 2.5, 0.2)


@reused
def negative_slopes() -> st.SearchStrategy[float]:
    """A ``negative_slope``: one of ``SPECIAL_SLOPES`` or a multiple of 1/64 in [-2, 3] (exact in float32)."""
    return st.one_of(st.sampled_from(SPECIAL_SLOPES), st.integers(-128, 192).map(lambda k: k / 64))


def _no_config(draw) -> dict:
    return {}


def _elementwise_cases(op: str, weights: dict[str, int], corner: Callable[[np.ndarray, dict], list[str]],
                       config: Callable[..., dict] = _no_config):
    """The strategy of an elementwise op: a shape, a recipe of ``weights`` for x, ``config(draw)``; ``corner(x, config)``
    names the corners the case reaches (recorded as events)."""

    @st.composite
    def draw_case(draw, dtype: st.SearchStrategy[str]):
        shape = draw(_small_shapes(1, 4))
        recipe = draw(recipes(weights))
        case = Case(
            op=op,
            shapes={"x": shape, "grad_output": shape},
            config=config(draw),
            dtype=draw(dtype),
            seed=draw(seeds()),
            values=_values(x=recipe),
        )
        for label in corner(case.arrays()["x"], case.config):
            _label(label)
        _label(f"{op}: {len(shape)}-d")
        _label(f"dtype: {case.dtype}")
        return case

    return draw_case


def _relu_corners(x, config) -> list[str]:
    return ["relu: exact zeros"] if (x == 0).any() else []


def _sigmoid_corners(x, config) -> list[str]:
    label = _huge_logits(x)
    return [label] if label else []


def _tanh_corners(x, config) -> list[str]:
    t = np.tanh(x)
    return [label for label, hit in (
        ("tanh: saturated (tanh(x) rounds to +-1)", (np.abs(t) == 1).any()),
        ("tanh: |x| < 1e-3", (np.abs(x) < 1e-3).any()),
        ("tanh: |x| >= 1e4", (np.abs(x) >= 1e4).any()),
    ) if hit]


def _leaky_relu_config(draw) -> dict:
    return {"negative_slope": draw(negative_slopes())}


def _leaky_relu_corners(x, config) -> list[str]:
    slope = config["negative_slope"]
    kind = "0" if slope == 0 else "1" if slope == 1 else "negative" if slope < 0 else "> 1" if slope > 1 else "in (0, 1)"
    return [f"leaky_relu: negative_slope {kind}"] + (["leaky_relu: exact zeros"] if (x == 0).any() else [])


def _gelu_config(draw) -> dict:
    return {"approximate": draw(st.sampled_from(GELU_APPROXIMATIONS))}


def _gelu_corners(x, config) -> list[str]:
    mode = config["approximate"]
    return [f"gelu {mode}: {label}" for label, hit in (
        ("|x| < 1e-3", (np.abs(x) < 1e-3).any()),
        ("x <= -10", (x <= -10).any()),
        ("x >= 10", (x >= 10).any()),
        ("exact zeros", (x == 0).any()),
    ) if hit]


_relu_cases = _elementwise_cases("relu", RELU_RECIPES, _relu_corners)
_sigmoid_cases = _elementwise_cases("sigmoid", SIGMOID_RECIPES, _sigmoid_corners)
_tanh_cases = _elementwise_cases("tanh", TANH_RECIPES, _tanh_corners)
_leaky_relu_cases = _elementwise_cases("leaky_relu", LEAKY_RELU_RECIPES, _leaky_relu_corners, _leaky_relu_config)
_gelu_cases = _elementwise_cases("gelu", GELU_RECIPES, _gelu_corners, _gelu_config)


def relu_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``relu(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"zeros"``, ``"ties"`` or ``"gapped"``."""
    return _relu_cases(_dtype_strategy(dtype))


def sigmoid_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``sigmoid(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"logits"`` or ``"logits_wide"``."""
    return _sigmoid_cases(_dtype_strategy(dtype))


def tanh_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``tanh(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"logits"``, ``"tails"`` (near 0 and
    saturated: +-10 to +-40) or ``"logits_wide"`` (+-1e4 and beyond)."""
    return _tanh_cases(_dtype_strategy(dtype))


def leaky_relu_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``leaky_relu(x, negative_slope=)`` case: x as relu's (exact zeros, ties, gapped); ``negative_slope``
    from ``negative_slopes()``: 0, 1, negative and > 1 included (torch accepts any real slope out of place)."""
    return _leaky_relu_cases(_dtype_strategy(dtype))


def gelu_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``gelu(x, approximate=)`` case, approximate ``'none'`` or ``'tanh'``: x of 1-4 dimensions (sides 1-4),
    ``"normal"``, ``"tails"`` (1e-6 to 50 in magnitude: near 0, and where the derivative's tail terms underflow
    or the tanh form saturates), ``"logits_wide"`` (+-1e4 and beyond) or ``"zeros"``."""
    return _gelu_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"relu": relu_cases, "sigmoid": sigmoid_cases, "tanh": tanh_cases, "leaky_relu": leaky_relu_cases,
         "gelu": gelu_cases}


# --------------------------------------------------------------------------- examples


def _configured(op, shape, config, values=None, seed=0) -> Case:
    return elementwise(op, shape, values, seed).with_(config=config)


EXAMPLES: dict[str, list[Case]] = {
    "relu": [elementwise("relu", (2, 3), values={"x": "ties"}), elementwise("relu", (1,), values={"x": "zeros"})],
    "sigmoid": [elementwise("sigmoid", (3, 4), values={"x": "logits_wide"})],
    "tanh": [elementwise("tanh", (4, 4), values={"x": "tails"}), elementwise("tanh", (2, 3), values={"x": "logits_wide"})],
    "leaky_relu": [
        _configured("leaky_relu", (2, 3), {"negative_slope": 0.01}, values={"x": "ties"}),
        _configured("leaky_relu", (5,), {"negative_slope": -0.5}, values={"x": "zeros"}),
        _configured("leaky_relu", (2, 2), {"negative_slope": 2.5}, values={"x": "gapped"}),
        _configured("leaky_relu", (3,), {"negative_slope": 0.0}, values={"x": "ties"}),
    ],
    "gelu": [
        _configured("gelu", (4, 4), {"approximate": "none"}, values={"x": "tails"}),
        _configured("gelu", (4, 4), {"approximate": "tanh"}, values={"x": "tails"}),
        _configured("gelu", (2, 3), {"approximate": "none"}, values={"x": "logits_wide"}),
        _configured("gelu", (2, 3), {"approximate": "tanh"}, values={"x": "zeros"}),
    ],
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


def tanh_scaffold(grad_output, x, *, rule="right"):
    """tanh_backward: "right" g * (1 - t^2), t = tanh(x); "from_x" g * (1 - x^2); "not_squared" g * (1 - t)."""
    _validated("tanh", grad_output, [x], {})
    one = x.dtype.type(1)
    if rule == "from_x":
        return grad_output * (one - x * x)
    t = np.tanh(x)
    if rule == "not_squared":
        return grad_output * (one - t)
    return grad_output * (one - t * t)


def leaky_relu_scaffold(grad_output, x, *, negative_slope=0.01, rule="right"):
    """leaky_relu_backward, s = negative_slope: "right" g if x > 0 else s g; "wrong_side" s g if x > 0 else g;
    "relu" g if x > 0 else 0; "zero_is_one" g if x >= 0 else s g (the slope not applied at x = 0)."""
    _validated("leaky_relu", grad_output, [x], {"negative_slope": negative_slope})
    slope = x.dtype.type(negative_slope)
    if rule == "wrong_side":
        return np.where(x > 0, grad_output * slope, grad_output)
    if rule == "relu":
        return np.where(x > 0, grad_output, x.dtype.type(0))
    if rule == "zero_is_one":
        return np.where(x >= 0, grad_output, grad_output * slope)
    return np.where(x > 0, grad_output, grad_output * slope)


_SQRT_HALF = 0.70710678118654752440
_INV_SQRT_2PI = 0.39894228040143267794
_SQRT_2_OVER_PI = 0.79788456080286535588
_KAPPA = 0.044715


def _gelu_exact_derivative(x, *, with_x_pdf=True):
    """Phi(x) + x phi(x) (without the second term: Phi(x) only)."""
    dt = x.dtype.type
    cdf = dt(0.5) * (dt(1) + erf(x * dt(_SQRT_HALF)))
    if not with_x_pdf:
        return cdf
    return cdf + x * (dt(_INV_SQRT_2PI) * np.exp(x * x * dt(-0.5)))


def _gelu_tanh_derivative(x, *, with_x_pdf=True):
    """0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 kappa x^2), t = tanh(sqrt(2/pi) (x + kappa x^3))
    (without the second term: 0.5 (1 + t) only)."""
    dt = x.dtype.type
    beta, kappa = dt(_SQRT_2_OVER_PI), dt(_KAPPA)
    t = np.tanh(beta * (x + kappa * (x * x * x)))
    left = dt(0.5) * (dt(1) + t)
    if not with_x_pdf:
        return left
    return left + dt(0.5) * x * (dt(1) - t * t) * (beta * (dt(1) + dt(3) * kappa * (x * x)))


def gelu_scaffold(grad_output, x, *, approximate="none", rule="right"):
    """gelu_backward: "right" the derivative of the asked form (exact Phi(x) + x phi(x), or the tanh form's);
    "exact_as_tanh" the tanh form's derivative for 'none'; "tanh_as_exact" the exact one for 'tanh';
    "no_x_pdf" the derivative without its second (x phi(x)) term."""
    _validated("gelu", grad_output, [x], {"approximate": approximate})
    swapped = rule == ("exact_as_tanh" if approximate == "none" else "tanh_as_exact")
    exact = (approximate == "none") != swapped
    derivative = _gelu_exact_derivative if exact else _gelu_tanh_derivative
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(grad_output * derivative(x, with_x_pdf=rule != "no_x_pdf"), dtype=x.dtype)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"relu": relu_scaffold, "sigmoid": sigmoid_scaffold, "tanh": tanh_scaffold, "leaky_relu": leaky_relu_scaffold,
             "gelu": gelu_scaffold}


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
    # ----------------------------------------------------------------- tanh
    ("tanh_derivative_from_x", "tanh",
     "the tanh derivative computed from the input as 1 - x^2 instead of from t = tanh(x) as 1 - t^2",
     dict(rule="from_x")),
    ("tanh_derivative_not_squared", "tanh",
     "the tanh derivative taken as 1 - t instead of 1 - t^2",
     dict(rule="not_squared")),
    # ----------------------------------------------------------------- leaky_relu
    ("leaky_relu_slope_wrong_side", "leaky_relu",
     "the negative slope applied on the positive side: slope * g where x > 0 and g elsewhere",
     dict(rule="wrong_side")),
    ("leaky_relu_negative_side_zero", "leaky_relu",
     "relu's backward: the gradient 0 where x <= 0 instead of negative_slope * g",
     dict(rule="relu")),
    ("leaky_relu_grad_at_zero_one", "leaky_relu",
     "leaky_relu'(0) = 1: g passed where x >= 0, where torch applies the slope at x = 0 (x > 0 ? g : slope * g)",
     dict(rule="zero_is_one")),
    # ----------------------------------------------------------------- gelu
    ("gelu_exact_as_tanh", "gelu",
     "approximate='none' differentiated with the tanh approximation's derivative instead of Phi(x) + x phi(x)",
     dict(rule="exact_as_tanh")),
    ("gelu_tanh_as_exact", "gelu",
     "approximate='tanh' differentiated with the exact derivative Phi(x) + x phi(x) instead of the tanh form's",
     dict(rule="tanh_as_exact")),
    ("gelu_missing_x_pdf", "gelu",
     "the gelu derivative without its x phi(x) term (Phi(x) only; for 'tanh' 0.5 (1 + t) only)",
     dict(rule="no_x_pdf")),
])
