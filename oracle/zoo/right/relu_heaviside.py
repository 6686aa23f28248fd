"""Counterpart relu_heaviside: relu as ``np.maximum``, its derivative as the Heaviside step.

    relu(x)  = maximum(x, 0)                     (NaN propagates, as in torch)
    relu'(x) = heaviside(x, 0)                   (the step, with the value 0 at x = 0: relu'(0) = 0)

At x = NaN, ``heaviside`` gives NaN where torch passes the gradient through
(its ``threshold_backward`` only zeroes x <= 0): the step is set to 1 there.
"""

from __future__ import annotations

import numpy as np

from refimpl.activations import _check_elementwise_backward
from refimpl.arguments import check_array


def relu(x):
    """``np.maximum(x, 0)``, in x's dtype."""
    check_array(x, "x")
    return np.maximum(x, x.dtype.type(0))


def relu_backward(grad_output, x):
    """``g * heaviside(x, 0)`` (1 where x > 0 or x is NaN, else 0)."""
    _check_elementwise_backward(grad_output, x)
    step = np.heaviside(x, x.dtype.type(0))
    step[np.isnan(x)] = 1
    return grad_output * step


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "relu")
