"""Counterpart batch_norm_chain_rule: the backward as the three-path chain rule, the forward in torch's fused form.

Per channel c, over the m = N * spatial values (``mu``, ``var`` two-pass, ``s = (var + eps)^(-1/2)``):

    forward     y = x * a + b,   a = gamma s,  b = beta - mu a         (one multiply-add per element, as torch's kernel)
    backward    dxhat = G gamma
                dvar  = sum dxhat (x - mu) * (-1/2) s^3
                dmu   = -s sum dxhat  +  dvar * (-2/m) sum (x - mu)
                dx    = dxhat s  +  dvar 2 (x - mu) / m  +  dmu / m
                dgamma = sum G xhat,  dbeta = sum G

The textbook derivation step by step (through the mean and the variance as
separate nodes) instead of the compact ``(s/m)(m gy - sum gy - xhat sum gy xhat)``;
``dmu`` keeps its ``sum (x - mu)`` term, 0 in exact arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.arguments import check_grad_output
from refimpl.normalization import _check_batch_norm_args


def _per_channel(p, ndim):
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def _statistics(x, axes, eps):
    dt = x.dtype.type
    m = dt(math.prod(x.shape[a] for a in axes))
    mu = x.mean(axis=axes, keepdims=True)
    centred = x - mu
    var = (centred * centred).mean(axis=axes, keepdims=True)
    return m, mu, centred, var, dt(1) / np.sqrt(var + dt(eps))


def batch_norm(x, weight=None, bias=None, *, eps=1e-5):
    """``x * a + b`` with ``a = gamma / sqrt(var + eps)``, ``b = beta - mean * a``, per channel."""
    axes = _check_batch_norm_args(x, weight, bias, eps)
    _, mu, _, _, s = _statistics(x, axes, eps)
    a = s if weight is None else s * _per_channel(weight, x.ndim)
    b = -mu * a if bias is None else _per_channel(bias, x.ndim) - mu * a
    return x * a + b


def batch_norm_backward(grad_output, x, weight=None, bias=None, *, eps=1e-5):
    """``(dx, dgamma or None, dbeta or None)`` through the nodes xhat, var and mu, one after the other."""
    axes = _check_batch_norm_args(x, weight, bias, eps)
    check_grad_output(grad_output, x.shape, x.dtype)
    dt = x.dtype.type
    m, _, centred, _, s = _statistics(x, axes, eps)
    dxhat = grad_output if weight is None else grad_output * _per_channel(weight, x.ndim)
    dvar = (dxhat * centred).sum(axis=axes, keepdims=True) * dt(-0.5) * s ** 3
    dmu = -s * dxhat.sum(axis=axes, keepdims=True) + dvar * dt(-2) * centred.sum(axis=axes, keepdims=True) / m
    dx = dxhat * s + dvar * dt(2) * centred / m + dmu / m
    dgamma = None if weight is None else np.asarray((grad_output * centred * s).sum(axis=axes), dtype=x.dtype)
    dbeta = None if bias is None else np.asarray(grad_output.sum(axis=axes), dtype=x.dtype)
    return dx, dgamma, dbeta


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "batch_norm")
