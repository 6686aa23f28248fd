"""A busy loop that never returns to the caller."""
from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    while True:
        pass
