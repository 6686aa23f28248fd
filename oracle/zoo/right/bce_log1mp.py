"""Counterpart bce_log1mp: binary cross-entropy with ``log(1 - p)`` instead of ``log1p(-p)``.

    loss  = -( y * max(log p, -100) + (1 - y) * max(log(1 - p), -100) )       the textbook formula
    dloss = g * (p - y) / max(p - p^2, EPSILON)    (/ numel for 'mean')     torch's clamped backward

``1 - p`` rounds for tiny p (p = 1e-8 in float32 gives 1 - p = 1 exactly, so
the term is 0 where the truth is -1e-8): right, but imprecise there. The
backward's denominator is expanded, ``p - p^2``, rather than ``(1 - p) p``.
``EPSILON`` is ATen's clamp, the float32 constant 1e-12 (9.99999996e-13 in
float64), as the contract requires. 'mean' is ``np.mean`` (pairwise summation).
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_grad_output
from refimpl.losses import _check_loss_args

EPSILON = np.float32(1e-12)


def binary_cross_entropy(input, target, *, reduction="mean"):
    """``-(y max(log p, -100) + (1 - y) max(log(1 - p), -100))``, reduced."""
    _check_loss_args(input, target, reduction, probabilities=True)
    dt = input.dtype.type
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(input), dt(-100))
        log_q = np.maximum(np.log(dt(1) - input), dt(-100))
    loss = -(target * log_p + (dt(1) - target) * log_q)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(np.sum(loss), dtype=input.dtype)
    return np.asarray(np.mean(loss), dtype=input.dtype)


def binary_cross_entropy_backward(grad_output, input, target, *, reduction="mean"):
    """``g (p - y) / max(p - p^2, EPSILON)``, divided by the element count for 'mean'."""
    _check_loss_args(input, target, reduction, probabilities=True)
    check_grad_output(grad_output, input.shape if reduction == "none" else (), input.dtype)
    dt = input.dtype.type
    grad = grad_output * (input - target) / np.maximum(input - input * input, dt(EPSILON))
    if reduction == "mean":
        grad = grad / dt(input.size)
    return grad


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "binary_cross_entropy")
