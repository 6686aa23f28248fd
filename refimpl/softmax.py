"""Softmax and log-softmax along one dimension, with their backward rules.

Semantics are those of ``torch.nn.functional.softmax(x, dim)`` and
``log_softmax(x, dim)``: any ``ndim >= 0`` (a 0-d ``x`` has one usable
dimension, ``dim`` 0 or -1, as in torch), negative ``dim`` counts from the end,
an empty ``x`` gives an empty result. Both shift by the maximum along ``dim``
first, so no ``exp`` overflows whatever the logits (+-1e4 and beyond). A row
holding NaN or +inf is all NaN, a row of -inf only is all NaN (``-inf - -inf``),
as in torch. Pure NumPy; float32 stays float32; inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_array, check_dim, check_grad_output, check_tangents, unpack_jvp

__all__ = ["softmax", "softmax_backward", "softmax_jvp", "log_softmax", "log_softmax_backward", "log_softmax_jvp"]


def _as_1d_if_0d(a: np.ndarray) -> np.ndarray:
    """A 0-d array as shape (1,) (torch treats it as one element along dim 0 or -1); others unchanged."""
    return a.reshape(1) if a.ndim == 0 else a


def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """x - max(x, axis): every entry <= 0 (NaN where the row holds NaN or +inf, or is all -inf).

    A difference beyond the dtype's range (-3e38 - 3e38 in float32) is -inf, whose exp is exactly 0.
    """
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf = nan, as torch; -huge - huge = -inf
        return x - np.max(x, axis=axis, keepdims=True)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(_shifted(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = _shifted(x, axis)
    with np.errstate(divide="ignore"):  # never log(0): the maximum's own term is exp(0) = 1 (or NaN)
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _check_x_dim(x, dim) -> int:
    check_array(x, "x")
    return check_dim(dim, x.ndim)


def softmax(x: np.ndarray, *, dim: int) -> np.ndarray:
    """Softmax along ``dim``: non-negative entries summing to 1 along ``dim``.

        softmax(x)_i = exp(x_i - m) / sum_j exp(x_j - m),    m = max_j x_j    (i, j along dim)
    """
    axis = _check_x_dim(x, dim)
    if x.size == 0:
        return np.empty_like(x)
    return _softmax(_as_1d_if_0d(x), axis).reshape(x.shape)


def _backward_operands(grad_output, x, dim) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Both backwards' checked operands: ``(s, g, axis)``, s = softmax(x) along ``dim`` (a 0-d x and g as 1-d);
    None for an empty x (nothing to compute)."""
    axis = _check_x_dim(x, dim)
    check_grad_output(grad_output, x.shape, x.dtype)
    if x.size == 0:
        return None
    return _softmax(_as_1d_if_0d(x), axis), _as_1d_if_0d(grad_output), axis


def softmax_backward(grad_output: np.ndarray, x: np.ndarray, *, dim: int) -> np.ndarray:
    """Gradient of ``softmax`` w.r.t. ``x`` (the Jacobian diag(s) - s s^T applied to g).

        grad_x = s * (g - sum_j g_j s_j),    s = softmax(x, dim), the sum along dim
    """
    operands = _backward_operands(grad_output, x, dim)
    if operands is None:
        return np.empty_like(x)
    s, g, axis = operands
    return (s * (g - np.sum(g * s, axis=axis, keepdims=True))).reshape(x.shape)


def log_softmax(x: np.ndarray, *, dim: int) -> np.ndarray:
    """Log of the softmax along ``dim``, without forming the softmax (no log(0) for tiny probabilities).

        log_softmax(x)_i = (x_i - m) - log sum_j exp(x_j - m),    m = max_j x_j
    """
    axis = _check_x_dim(x, dim)
    if x.size == 0:
        return np.empty_like(x)
    return _log_softmax(_as_1d_if_0d(x), axis).reshape(x.shape)


def log_softmax_backward(grad_output: np.ndarray, x: np.ndarray, *, dim: int) -> np.ndarray:
    """Gradient of ``log_softmax`` w.r.t. ``x`` (the Jacobian I - 1 s^T applied to g).

        grad_x = g - softmax(x, dim) * sum_j g_j     (the sum along dim)
    """
    operands = _backward_operands(grad_output, x, dim)
    if operands is None:
        return np.empty_like(x)
    s, g, axis = operands
    return (g - s * np.sum(g, axis=axis, keepdims=True)).reshape(x.shape)


# ----------------------------------------------------------------------------- forward mode (JVP)


def _jvp_operands(primals, tangents, dim, what):
    """``(x, dx, axis)`` of a checked JVP call (a 0-d x and dx as 1-d; dx zeros for a None tangent)."""
    (x,), (dx,) = unpack_jvp(primals, tangents, ("x",), 1, what=what)
    axis = _check_x_dim(x, dim)
    check_tangents((x,), (dx,), ("x",))
    return x, np.zeros_like(x) if dx is None else dx, axis


def softmax_jvp(primals, tangents, *, dim):
    """Forward mode of ``softmax``: ``(s, ds)``, the Jacobian diag(s) - s s^T (symmetric) applied to dx:

        ds = s * (dx - sum_j s_j dx_j),    s = softmax(x, dim), the sum along dim
    """
    x, dx, axis = _jvp_operands(primals, tangents, dim, "softmax_jvp")
    if x.size == 0:
        return np.empty_like(x), np.empty_like(x)
    s, d = _softmax(_as_1d_if_0d(x), axis), _as_1d_if_0d(dx)
    return s.reshape(x.shape), (s * (d - np.sum(s * d, axis=axis, keepdims=True))).reshape(x.shape)


def log_softmax_jvp(primals, tangents, *, dim):
    """Forward mode of ``log_softmax``: ``(log s, d log s)``, the Jacobian I - 1 s^T applied to dx:

        d log s = dx - sum_j s_j dx_j,    s = softmax(x, dim), the sum along dim
    """
    x, dx, axis = _jvp_operands(primals, tangents, dim, "log_softmax_jvp")
    if x.size == 0:
        return np.empty_like(x), np.empty_like(x)
    x1, d = _as_1d_if_0d(x), _as_1d_if_0d(dx)
    s = _softmax(x1, axis)
    return _log_softmax(x1, axis).reshape(x.shape), (d - np.sum(s * d, axis=axis, keepdims=True)).reshape(x.shape)
