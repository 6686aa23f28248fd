"""Counterpart bce_logits_rearranged: the textbook stable form of BCE on logits, differentiated term by term.

    loss  = max(z, 0) - z y + log1p(exp(-|z|))
    dloss = g * ( [z >= 0] - y - sign(z) e / (1 + e) ),   e = exp(-|z|),  sign(0) = +1   (/ numel for 'mean')

The derivative of each term of the rearranged loss: ``max(z, 0)`` gives the
step, ``-z y`` gives ``-y``, ``log1p(exp(-|z|))`` gives ``-sign(z) e / (1 + e)``
(at z = 0 the kinks of the first and last terms cancel: 1 - 1/2 = 1/2 = sigmoid(0)).
Right, but for z > 0 it computes ``sigmoid(z) - y`` as ``1 - e/(1+e) - y``,
which cancels when y = 1: imprecise (relative to the tiny true value e^-z)
for large positive z.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_grad_output
from refimpl.losses import _check_loss_args


def binary_cross_entropy_with_logits(input, target, *, reduction="mean"):
    """``max(z, 0) - z y + log1p(exp(-|z|))``, reduced (sum: ``np.sum``; mean: sum / numel)."""
    _check_loss_args(input, target, reduction, probabilities=False)
    dt = input.dtype.type
    loss = np.maximum(input, dt(0)) - input * target + np.log1p(np.exp(-np.abs(input)))
    if reduction == "none":
        return loss
    total = np.sum(loss)
    if reduction == "sum":
        return np.asarray(total, dtype=input.dtype)
    return np.asarray(total / dt(input.size), dtype=input.dtype)


def binary_cross_entropy_with_logits_backward(grad_output, input, target, *, reduction="mean"):
    """``g * (step(z) - y - sign(z) e / (1 + e))``, divided by the element count for 'mean'."""
    _check_loss_args(input, target, reduction, probabilities=False)
    check_grad_output(grad_output, input.shape if reduction == "none" else (), input.dtype)
    dt = input.dtype.type
    positive = input >= 0
    e = np.exp(-np.abs(input))
    step = positive.astype(input.dtype)
    sign = np.where(positive, dt(1), dt(-1))
    grad = grad_output * (step - target - sign * (e / (dt(1) + e)))
    if reduction == "mean":
        grad = grad / dt(input.size)
    return grad


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "binary_cross_entropy_with_logits")
