"""KeyboardInterrupt raised by the implementation: not a user's Ctrl-C."""
from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    raise KeyboardInterrupt
