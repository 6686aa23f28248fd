"""Returns a list of floats instead of an ndarray."""
from refimpl import relu  # noqa: F401
from refimpl import relu_backward as _relu_backward


def relu_backward(grad_output, x):
    return _relu_backward(grad_output, x).tolist()
