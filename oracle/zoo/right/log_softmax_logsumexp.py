"""Counterpart log_softmax_logsumexp: log_softmax as ``x - logsumexp(x)``, its backward from the forward's output.

    lse         = m + log sum_j exp(x_j - m),    m = max_j x_j      (along dim)
    log_softmax = x - lse
    grad_x      = g - exp(log_softmax) * sum_j g_j

refimpl subtracts the maximum first and the log of the sum after, ``(x - m) - log sum``;
here the shift goes back into the logsumexp, which is subtracted from x in one step,
and the backward exponentiates the forward's output instead of recomputing the
softmax. Right, but at ``|x| ~ 1e4`` in float32 it is off by a rounding of ``|m|``
(the terms the magnitudes count: ``x``, ``m`` and ``log sum``), where refimpl's
``x - m`` is often exact.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_array, check_dim, check_grad_output


def _axis(x, dim) -> int:
    check_array(x, "x")
    return check_dim(dim, x.ndim)


def _logsumexp(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def log_softmax(x, *, dim):
    """``x - logsumexp(x)`` along ``dim`` (a 0-d x as one element, as torch)."""
    axis = _axis(x, dim)
    if x.size == 0:
        return np.empty_like(x)
    a = np.atleast_1d(x)
    with np.errstate(invalid="ignore"):
        return (a - _logsumexp(a, axis)).reshape(x.shape)


def log_softmax_backward(grad_output, x, *, dim):
    """``g - exp(log_softmax(x)) * sum(g)`` along ``dim``."""
    axis = _axis(x, dim)
    check_grad_output(grad_output, x.shape, x.dtype)
    if x.size == 0:
        return np.empty_like(x)
    g = np.atleast_1d(grad_output)
    probabilities = np.exp(np.atleast_1d(log_softmax(x, dim=dim)))
    return (g - probabilities * np.sum(g, axis=axis, keepdims=True)).reshape(x.shape)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "log_softmax")
