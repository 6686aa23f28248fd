"""Element-wise activations and the flatten reshape, with their backward rules.

Semantics are those of ``torch.nn.functional.relu``, ``torch.sigmoid`` and
``torch.flatten(x, 1)``; every backward rule takes the forward *input* ``x``
and the upstream gradient ``grad_output`` (same shape as the forward output).
Pure NumPy; float32 stays float32; inputs are never modified.
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.arguments import check_array, check_grad_output


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


__all__ = ["relu", "relu_backward", "sigmoid", "sigmoid_backward", "flatten", "flatten_backward"]
