"""Counterpart layer_norm_jacobian: the backward as the explicit Jacobian of each group applied to its gradient.

For one group of m values (``s = (var + eps)^(-1/2)``, ``xhat = (x - mu) s``), from
docs/normalization-derivation.md:

    d xhat_j / d x_i = s (delta_ij - 1/m - xhat_i xhat_j / m)         J = s (I - 11^T/m - xhat xhat^T/m)
    dx = J^T gy,  gy = G gamma                                       (J is symmetric)

built as an m x m matrix per group and applied with ``np.einsum``; the forward
is ``(x - mu) / sqrt(var + eps)`` with the variance from ``np.var`` (two-pass) and the
mean from ``np.mean``. dgamma and dbeta are einsum contractions over the leading axes.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_grad_output
from refimpl.normalization import _check_layer_norm_args


def _groups(x, normalized_shape):
    """x as (groups, m), and m."""
    m = int(np.prod(normalized_shape, dtype=np.int64))
    return x.reshape(-1, m), m


def layer_norm(x, weight=None, bias=None, *, normalized_shape, eps=1e-5):
    """``gamma (x - mean) / sqrt(var + eps) + beta`` over the trailing normalized_shape dims."""
    axes, _ = _check_layer_norm_args(x, weight, bias, normalized_shape, eps)
    y = (x - np.mean(x, axis=axes, keepdims=True)) / np.sqrt(np.var(x, axis=axes, keepdims=True) + x.dtype.type(eps))
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def layer_norm_backward(grad_output, x, weight=None, bias=None, *, normalized_shape, eps=1e-5):
    """``(J^T (G gamma), sum G xhat or None, sum G or None)``, J the group's m x m Jacobian."""
    axes, lead = _check_layer_norm_args(x, weight, bias, normalized_shape, eps)
    check_grad_output(grad_output, x.shape, x.dtype)
    dt = x.dtype.type
    shape = tuple(x.shape[a] for a in axes)
    x2, m = _groups(x, shape)
    s = dt(1) / np.sqrt(np.var(x2, axis=1, keepdims=True) + dt(eps))
    xhat = (x2 - np.mean(x2, axis=1, keepdims=True)) * s
    eye = np.eye(m, dtype=x.dtype)
    jacobian = s[:, :, None] * (eye - dt(1) / dt(max(m, 1)) - np.einsum("gi,gj->gij", xhat, xhat) / dt(max(m, 1)))
    gy = grad_output if weight is None else grad_output * weight
    dx = np.einsum("gij,gj->gi", jacobian, gy.reshape(-1, m)).reshape(x.shape)
    g2 = grad_output.reshape(-1, m)
    dgamma = None if weight is None else np.einsum("gi,gi->i", g2, xhat).reshape(shape)
    dbeta = None if bias is None else np.einsum("gi->i", g2).reshape(shape)
    return dx, dgamma, dbeta


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "layer_norm")
