"""Counterpart leaky_relu_maxmin: leaky relu as a positive and a negative part.

    leaky_relu(x)  = max(x, 0) + s min(x, 0)                      (s = negative_slope)
    leaky_relu'(x) = s + (1 - s) [x > 0]                          (s at x = 0, as torch)

Right; the derivative rounds ``1 - s`` and adds it back to ``s`` (one or two
roundings where x > 0, where torch passes ``g`` exactly).
"""

from __future__ import annotations

import numpy as np

from refimpl.activations import _check_elementwise_backward
from refimpl.arguments import check_array, check_real


def leaky_relu(x, *, negative_slope=0.01):
    """``max(x, 0) + s min(x, 0)``, in x's dtype (NaN propagates)."""
    check_array(x, "x")
    s = x.dtype.type(check_real(negative_slope, "negative_slope"))
    zero = x.dtype.type(0)
    return np.asarray(np.maximum(x, zero) + s * np.minimum(x, zero), dtype=x.dtype)


def leaky_relu_backward(grad_output, x, *, negative_slope=0.01):
    """``g (s + (1 - s) [x > 0])``."""
    _check_elementwise_backward(grad_output, x)
    s = x.dtype.type(check_real(negative_slope, "negative_slope"))
    step = (x > 0).astype(x.dtype)
    return np.asarray(grad_output * (s + (x.dtype.type(1) - s) * step), dtype=x.dtype)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "leaky_relu")
