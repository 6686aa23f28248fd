"""sys.exit(0) in the backward: a run must not end green."""
import sys
from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    sys.exit(0)
