"""Counterpart bce_logits_logaddexp: binary cross-entropy on logits through ``np.logaddexp``.

    loss  = softplus(z) - z y = logaddexp(0, z) - z * y
    dloss = g * (sigmoid(z) - y),  sigmoid(z) = exp(z - logaddexp(0, z))       (/ numel for 'mean')

Stable for every |z| (``logaddexp`` never overflows). 'mean' is ``np.mean``.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_grad_output
from refimpl.losses import _check_loss_args


def binary_cross_entropy_with_logits(input, target, *, reduction="mean"):
    """``logaddexp(0, z) - z * y``, reduced."""
    _check_loss_args(input, target, reduction, probabilities=False)
    loss = np.logaddexp(input.dtype.type(0), input) - input * target
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(np.sum(loss), dtype=input.dtype)
    return np.asarray(np.mean(loss), dtype=input.dtype)


def binary_cross_entropy_with_logits_backward(grad_output, input, target, *, reduction="mean"):
    """``g * (exp(z - logaddexp(0, z)) - y)``, divided by the element count for 'mean'."""
    _check_loss_args(input, target, reduction, probabilities=False)
    check_grad_output(grad_output, input.shape if reduction == "none" else (), input.dtype)
    dt = input.dtype.type
    grad = grad_output * (np.exp(input - np.logaddexp(dt(0), input)) - target)
    if reduction == "mean":
        grad = grad / dt(input.size)
    return grad


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "binary_cross_entropy_with_logits")
