"""Asks for 80 TB: MemoryError."""
import numpy as np

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    return np.empty(10**13)
