"""Counterpart sigmoid_logaddexp: the sigmoid in the log domain.

    log sigmoid(x)      = -logaddexp(0, -x)
    sigmoid(x)          = exp(-logaddexp(0, -x))
    sigmoid'(x)         = sigmoid(x) * sigmoid(-x) = exp(-logaddexp(0, -x) - logaddexp(0, x))

No overflow for any |x| (``logaddexp`` is computed stably), no cancellation
in the derivative (the product of the two sigmoids is one exponential of a
sum): more precise than ``s * (1 - s)`` for large |x|, where that form is 0 and
this one is e^-|x|.
"""

from __future__ import annotations

import numpy as np

from refimpl.activations import _check_elementwise_backward
from refimpl.arguments import check_array


def sigmoid(x):
    """``exp(-logaddexp(0, -x))``, in x's dtype."""
    check_array(x, "x")
    return np.exp(-np.logaddexp(x.dtype.type(0), -x))


def sigmoid_backward(grad_output, x):
    """``g * exp(-logaddexp(0, -x) - logaddexp(0, x))`` = ``g * sigmoid(x) * sigmoid(-x)``."""
    _check_elementwise_backward(grad_output, x)
    zero = x.dtype.type(0)
    return grad_output * np.exp(-np.logaddexp(zero, -x) - np.logaddexp(zero, x))


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "sigmoid")
