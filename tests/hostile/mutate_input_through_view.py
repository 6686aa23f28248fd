"""Computes the right gradient, then writes into its input through a reshaped view."""
from refimpl import relu  # noqa: F401
from refimpl import relu_backward as _relu_backward


def relu_backward(grad_output, x):
    result = _relu_backward(grad_output, x)
    x.reshape(-1)[:1] = 123.0
    return result
