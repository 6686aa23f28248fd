"""os._exit(1) in the backward."""
import os
from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    os._exit(1)
