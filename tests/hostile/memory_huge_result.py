"""Returns 3 GiB of zeros (never touched): more than the judge accepts in one answer."""
import numpy as np

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    return np.zeros((3 << 30) // 8)
