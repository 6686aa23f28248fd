"""Counterpart cross_entropy_jacobian: the backward as the explicit Jacobian-vector product of log_softmax.

    loss_n  = logaddexp.reduce(z_n) - z_n,t                        (NumPy's pairwise-stable logaddexp)
    J_n     = I - 1 s_n^T                                          (d log_softmax(z_n) / d z_n, C x C)
    grad_n  = J_n^T (-w_n e_t) = w_n (s_n - e_t),   w_n = g / N ('mean'), g ('sum'), g_n ('none')

refimpl subtracts 1 at the target from the scaled softmax; here each row's Jacobian
is formed and applied to the one-hot output gradient of ``-log_softmax[t]`` with an
``einsum``, and the forward never shifts by the maximum (``np.logaddexp`` is stable
on its own). Right, but it sums C products per element instead of one subtraction.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_array, check_class_target, check_grad_output
from refimpl.losses import check_reduction


def _checked(input, target, reduction) -> None:
    check_array(input, "input", ndim=2)
    check_class_target(target, input.shape[0], input.shape[1])
    check_reduction(reduction)


def _reduced(loss, reduction, dtype):
    if reduction == "none":
        return np.asarray(loss, dtype=dtype)
    total = np.sum(loss)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total if reduction == "sum" else total / dtype.type(loss.size), dtype=dtype)


def cross_entropy(input, target, *, reduction="mean"):
    """``logaddexp.reduce(z_n) - z_n,t`` per row, reduced."""
    _checked(input, target, reduction)
    if input.size == 0:
        return _reduced(np.zeros((0,), dtype=input.dtype), reduction, input.dtype)
    rows = np.arange(input.shape[0])
    return _reduced(np.logaddexp.reduce(input, axis=1) - input[rows, target], reduction, input.dtype)


def cross_entropy_backward(grad_output, input, target, *, reduction="mean"):
    """``J_n^T (-w_n e_t)`` with ``J_n = I - 1 s_n^T`` formed for every row."""
    _checked(input, target, reduction)
    n, c = input.shape
    check_grad_output(grad_output, (n,) if reduction == "none" else (), input.dtype)
    if input.size == 0:
        return np.zeros_like(input)
    dt = input.dtype.type
    s = np.exp(input - np.logaddexp.reduce(input, axis=1, keepdims=True))
    jacobian = np.eye(c, dtype=input.dtype)[None, :, :] - s[:, None, :]  # [n, i, j] = d log_softmax_i / d z_j
    weight = grad_output.reshape(-1) if reduction == "none" else np.broadcast_to(grad_output, (n,))
    if reduction == "mean":
        weight = weight / dt(n)
    upstream = np.zeros_like(input)
    upstream[np.arange(n), target] = -weight
    return np.einsum("nij,ni->nj", jacobian, upstream).astype(input.dtype, copy=False)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "cross_entropy")
