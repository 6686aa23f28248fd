"""Reads address 0: a segmentation fault."""
import ctypes

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    ctypes.string_at(0)
