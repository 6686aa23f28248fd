"""os.abort(): SIGABRT from native code."""
import os

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    os.abort()
