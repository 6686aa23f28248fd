"""Correct, but prints 10 MB to stdout and stderr on its first call."""
import sys

from refimpl import relu, relu_backward as _relu_backward  # noqa: F401

_flooded = []


def relu_backward(grad_output, x):
    if not _flooded:
        _flooded.append(True)
        line = "x" * 1023 + "\n"
        for _ in range(5 * 1024):
            sys.stdout.write(line)
            sys.stderr.write(line)
    return _relu_backward(grad_output, x)
