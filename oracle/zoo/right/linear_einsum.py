"""Counterpart linear_einsum: the fully connected layer and its three gradients as ``np.einsum`` contractions.

    y[..., o]  = sum_i x[..., i] W[o, i] + b[o]          einsum('...i,oi->...o')
    dX[..., i] = sum_o G[..., o] W[o, i]                  einsum('...o,oi->...i')
    dW[o, i]   = sum_n G[n, o] x[n, i]                    einsum('no,ni->oi')   (leading axes flattened into n)
    db[o]      = sum_n G[n, o]                            einsum('no->o')

``np.einsum`` without ``optimize`` sums in its own loops (no BLAS), in the
inputs' dtype.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_grad_output
from refimpl.dense import _check_linear_args


def linear(x, weight, bias=None):
    """``einsum('...i,oi->...o', x, W) + b``."""
    _check_linear_args(x, weight, bias)
    y = np.einsum("...i,oi->...o", x, weight)
    if bias is not None:
        y = y + bias
    return y


def linear_backward(grad_output, x, weight, bias=None):
    """``(dX, dW, db or None)``, each one einsum."""
    dtype = _check_linear_args(x, weight, bias)
    check_grad_output(grad_output, x.shape[:-1] + (weight.shape[0],), dtype)
    grad_x = np.einsum("...o,oi->...i", grad_output, weight)
    g2, x2 = grad_output.reshape(-1, weight.shape[0]), x.reshape(-1, weight.shape[1])  # leading axes as one batch axis
    grad_weight = np.einsum("no,ni->oi", g2, x2)
    grad_bias = None if bias is None else np.einsum("no->o", g2)
    return grad_x, grad_weight, grad_bias


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "linear")
