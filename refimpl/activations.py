"""Element-wise activations and the flatten reshape, with their backward rules.

Semantics are those of ``torch.nn.functional.relu``, ``leaky_relu``, ``gelu``,
``torch.sigmoid``, ``torch.tanh`` and ``torch.flatten(x, 1)``; every backward
rule takes the upstream gradient ``grad_output`` (same shape as the forward
output), then the forward's arguments with the same keywords.
Pure NumPy; float32 stays float32; inputs are never modified.
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.arguments import check_array, check_choice, check_grad_output, check_real, check_tangents, unpack_jvp
from refimpl.erf import erf


def _check_elementwise_backward(grad_output, x) -> None:
    check_array(x, "x")
    check_grad_output(grad_output, x.shape, x.dtype)


def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit, element-wise.

        relu(x) = max(x, 0)

    As in torch: ``relu(nan) = nan`` (NaN propagates) and ``relu(-0.0) = -0.0``
    (only values strictly below zero are replaced).
    """
    check_array(x, "x")
    return np.where(x < 0, x.dtype.type(0), x)


def relu_backward(grad_output: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``relu`` w.r.t. its input ``x``.

        grad_x = g * (x > 0)        relu'(0) = 0 exactly

    Written as torch's ``threshold_backward``: ``0 if x <= 0 else g``. So a
    non-finite ``g`` at ``x <= 0`` gives 0 (not NaN), and at ``x = nan`` the
    gradient passes through (``nan <= 0`` is false), as in torch.
    """
    _check_elementwise_backward(grad_output, x)
    return np.where(x <= 0, x.dtype.type(0), grad_output)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) never overflows; for x >= 0: 1 / (1 + e^-x), for x < 0: e^x / (1 + e^x).
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, element-wise, computed without overflow for any |x|.

        sigmoid(x) = 1 / (1 + exp(-x))
                   = 1 / (1 + exp(-|x|))            for x >= 0
                   = exp(-|x|) / (1 + exp(-|x|))    for x < 0

    NaN propagates; sigmoid(+inf) = 1, sigmoid(-inf) = 0.
    """
    check_array(x, "x")
    return _sigmoid(x)


def sigmoid_backward(grad_output: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``sigmoid`` w.r.t. its input ``x``.

        grad_x = g * (1 - s) * s,   s = sigmoid(x)

    Evaluated in torch's order (``sigmoid_backward``: ``g * (1 - s) * s``). Like
    torch it is 0 where ``s`` rounds to 1 (x > ~37 in float64, > ~17 in
    float32) although the exact derivative ``exp(-x)`` is not.
    """
    _check_elementwise_backward(grad_output, x)
    s = _sigmoid(x)
    # np.asarray: on 0-d operands NumPy's arithmetic returns a scalar, the contract an ndarray
    return np.asarray(grad_output * (x.dtype.type(1) - s) * s, dtype=x.dtype)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent, element-wise.

        tanh(x) = (e^x - e^-x) / (e^x + e^-x)

    ``np.tanh``: no overflow for any |x| (tanh(+-1e4) = +-1), NaN propagates, tanh(-0.0) = -0.0.
    """
    check_array(x, "x")
    return np.asarray(np.tanh(x))


def tanh_backward(grad_output: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``tanh`` w.r.t. its input ``x``.

        grad_x = g * (1 - t^2),   t = tanh(x)

    In torch's form (``tanh_backward`` from the saved output ``t``): 0 where ``t``
    rounds to +-1 (|x| > ~19 in float64, > ~9 in float32).
    """
    _check_elementwise_backward(grad_output, x)
    t = np.tanh(x)
    return np.asarray(grad_output * (x.dtype.type(1) - t * t), dtype=x.dtype)


def _check_negative_slope(negative_slope) -> float:
    return check_real(negative_slope, "negative_slope")


def leaky_relu(x: np.ndarray, *, negative_slope: float = 0.01) -> np.ndarray:
    """Leaky rectified linear unit, element-wise.

        leaky_relu(x) = x                    if x > 0
                      = negative_slope * x   otherwise

    As torch's kernel (``x > 0 ? x : x * slope``, the slope in ``x``'s dtype):
    ``leaky_relu(-0.0) = -0.0``, NaN propagates (``nan * slope``).
    """
    check_array(x, "x")
    slope = x.dtype.type(_check_negative_slope(negative_slope))
    return np.where(x > 0, x, x * slope)


def leaky_relu_backward(grad_output: np.ndarray, x: np.ndarray, *, negative_slope: float = 0.01) -> np.ndarray:
    """Gradient of ``leaky_relu`` w.r.t. its input ``x``.

        grad_x = g                    if x > 0
               = negative_slope * g   otherwise      (so at x = 0 and x = -0.0: slope * g)

    As torch's ``leaky_relu_backward`` (``x > 0 ? g : g * slope``): at x = NaN the
    test ``x > 0`` is false, so the gradient is ``slope * g``, not NaN.
    """
    _check_elementwise_backward(grad_output, x)
    slope = x.dtype.type(_check_negative_slope(negative_slope))
    return np.where(x > 0, grad_output, grad_output * slope)


GELU_APPROXIMATIONS = ("none", "tanh")

_SQRT1_2 = 0.70710678118654752440  # M_SQRT1_2
_GELU_PDF = 0.39894228040143267794  # M_2_SQRTPI * M_SQRT1_2 * 0.5 = 1 / sqrt(2 pi)
_GELU_TANH_BETA = 0.79788456080286535588  # M_SQRT2 * M_2_SQRTPI * 0.5 = sqrt(2 / pi)
_GELU_TANH_KAPPA = 0.044715


def _check_gelu_args(x, approximate) -> str:
    check_array(x, "x")
    return check_choice(approximate, "approximate", GELU_APPROXIMATIONS)


def gelu(x: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """Gaussian error linear unit, element-wise: ``x`` times the standard normal CDF of ``x``.

        approximate='none':  gelu(x) = x * Phi(x) = x * 0.5 * (1 + erf(x / sqrt(2)))
        approximate='tanh':  gelu(x) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))

    Evaluated in ATen's order (``GeluKernel.cpp``), with ``refimpl.erf.erf``
    (at most 1 ulp). So, like torch, in the left tail ``1 + erf`` cancels: it
    loses relative accuracy as x falls and rounds to 0 below x = -8.37 in
    float64 (-5.54 in float32), where gelu(x) is -0.0 although the exact value
    is a tiny negative number; gelu(+-1e4) = (1e4, -0.0); gelu(+inf) = +inf,
    gelu(-inf) = NaN (``-inf * 0``), as torch's float64 kernel gives (torch's
    vectorized float32 kernel gives NaN at +inf, and inf at 3e38 with 'none').
    """
    approximate = _check_gelu_args(x, approximate)
    dt = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):  # x^3 beyond the dtype's range: tanh(+-inf) = +-1
        if approximate == "tanh":
            inner = dt(_GELU_TANH_BETA) * (x + dt(_GELU_TANH_KAPPA) * (x * x * x))
            out = dt(0.5) * x * (dt(1) + np.tanh(inner))
        else:
            out = x * dt(0.5) * (dt(1) + erf(x * dt(_SQRT1_2)))
    return np.asarray(out, dtype=x.dtype)


def gelu_backward(grad_output: np.ndarray, x: np.ndarray, *, approximate: str = "none") -> np.ndarray:
    """Gradient of ``gelu`` w.r.t. its input ``x``.

        approximate='none':  grad_x = g * (Phi(x) + x * phi(x)),
                             Phi(x) = 0.5 * (1 + erf(x / sqrt(2))),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
        approximate='tanh':  grad_x = g * (0.5 * (1 + t) + 0.5 * x * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2)),
                             t = tanh(sqrt(2/pi) * (x + 0.044715 x^3))

    In ATen's order; grad at +-1e4 is (g, 0); at +-inf it is NaN (``inf * 0``), as torch's.
    """
    approximate = _check_gelu_args(x, approximate)
    check_grad_output(grad_output, x.shape, x.dtype)
    dt = x.dtype.type
    half = dt(0.5)
    with np.errstate(over="ignore", invalid="ignore"):  # x^2, x^3 beyond the dtype's range
        if approximate == "tanh":
            x_sq = x * x
            beta, kappa = dt(_GELU_TANH_BETA), dt(_GELU_TANH_KAPPA)
            t = np.tanh(beta * (x + kappa * (x_sq * x)))
            left_derivative = half * (dt(1) + t)
            right_derivative = half * x * (dt(1) - t * t) * (beta * (dt(1) + dt(3) * kappa * x_sq))
            grad = grad_output * (left_derivative + right_derivative)
        else:
            cdf = half * (dt(1) + erf(x * dt(_SQRT1_2)))
            pdf = dt(_GELU_PDF) * np.exp(x * x * dt(-0.5))
            grad = grad_output * (cdf + x * pdf)
    return np.asarray(grad, dtype=x.dtype)


def _check_flatten_input(x) -> None:
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(
            f"x must be at least 2-dimensional for flatten (dimension 0 is kept, the rest are joined), "
            f"got shape {x.shape}"
        )


def _flat_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    return (shape[0], math.prod(shape[1:]))


def flatten(x: np.ndarray) -> np.ndarray:
    """Join every dimension after the first, as ``torch.flatten(x, 1)``.

        flatten(x)[n, k] = x[n, i1, i2, ...]    with k the C-order (row-major) index of (i1, i2, ...)

    (N, d1, d2, ...) -> (N, d1*d2*...). Returns a new array (never a view of ``x``).
    """
    _check_flatten_input(x)
    return x.reshape(_flat_shape(x.shape)).copy()


def flatten_backward(grad_output: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Gradient of ``flatten`` w.r.t. ``x``: the inverse reshape.

        grad_x = g.reshape(x.shape)
    """
    _check_flatten_input(x)
    check_grad_output(grad_output, _flat_shape(x.shape), x.dtype)
    return grad_output.reshape(x.shape).copy()



# ----------------------------------------------------------------------------- forward mode (JVP)


def _elementwise_jvp(primals, tangents, forward, derivative, what: str):
    """``(f(x), f'(x) dx)`` of an element-wise ``f``: ``derivative(dx, x)`` is the backward rule with
    the tangent in the gradient's place (element-wise, the Jacobian is diagonal, its own transpose)."""
    (x,), (dx,) = unpack_jvp(primals, tangents, ("x",), 1, what=what)
    y = forward(x)
    check_tangents((x,), (dx,), ("x",))
    return y, derivative(np.zeros_like(x) if dx is None else dx, x)


def relu_jvp(primals, tangents):
    """Forward mode of ``relu``: ``(relu(x), dx * (x > 0))``, relu'(0) = 0 (``0 if x <= 0 else dx``, as
    torch's ``threshold_backward``; the tangent passes at x = NaN). ``primals = (x,)``, ``tangents = (dx,)``."""
    return _elementwise_jvp(primals, tangents, relu, relu_backward, "relu_jvp")


def sigmoid_jvp(primals, tangents):
    """Forward mode of ``sigmoid``: ``(s, dx * (1 - s) * s)``, s = sigmoid(x), in torch's order."""
    return _elementwise_jvp(primals, tangents, sigmoid, sigmoid_backward, "sigmoid_jvp")


def tanh_jvp(primals, tangents):
    """Forward mode of ``tanh``: ``(t, dx * (1 - t^2))``, t = tanh(x)."""
    return _elementwise_jvp(primals, tangents, tanh, tanh_backward, "tanh_jvp")


def leaky_relu_jvp(primals, tangents, *, negative_slope=0.01):
    """Forward mode of ``leaky_relu``: ``(leaky_relu(x), dx if x > 0 else negative_slope * dx)``
    (the slope at x = 0, -0.0 and NaN, as torch)."""
    return _elementwise_jvp(
        primals, tangents,
        lambda x: leaky_relu(x, negative_slope=negative_slope),
        lambda d, x: leaky_relu_backward(d, x, negative_slope=negative_slope),
        "leaky_relu_jvp",
    )


def gelu_jvp(primals, tangents, *, approximate="none"):
    """Forward mode of ``gelu``: ``(gelu(x), gelu'(x) dx)``, gelu' as in ``gelu_backward``:

        'none':  dx * (Phi(x) + x phi(x))
        'tanh':  dx * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),  t = tanh(sqrt(2/pi)(x + 0.044715 x^3))
    """
    return _elementwise_jvp(
        primals, tangents,
        lambda x: gelu(x, approximate=approximate),
        lambda d, x: gelu_backward(d, x, approximate=approximate),
        "gelu_jvp",
    )


def flatten_jvp(primals, tangents):
    """Forward mode of ``flatten``: linear, its own JVP: ``(flatten(x), flatten(dx))``."""
    (x,), (dx,) = unpack_jvp(primals, tangents, ("x",), 1, what="flatten_jvp")
    y = flatten(x)
    check_tangents((x,), (dx,), ("x",))
    return y, np.zeros_like(y) if dx is None else flatten(dx)


__all__ = [
    "relu", "relu_backward", "sigmoid", "sigmoid_backward", "flatten", "flatten_backward",
    "tanh", "tanh_backward", "leaky_relu", "leaky_relu_backward", "gelu", "gelu_backward",
    "relu_jvp", "sigmoid_jvp", "tanh_jvp", "leaky_relu_jvp", "gelu_jvp", "flatten_jvp",
]
