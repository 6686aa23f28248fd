"""``linear_function.py`` with its backward marked ``@once_differentiable``: a first order and no second.

    bpcheck verify torch:examples/native/linear_function_once_differentiable.py --ops linear   # "no double backward"

torch raises only if the engine runs the backward's ``Error`` node, and ``torch.autograd.grad(s, inputs)`` does
not (the inputs are not behind it): past it the second order comes back silently 0 (None with
``allow_unused=True``). bpcheck reports the row as not implemented, "no double backward", not as a number.
"""
import sys
from pathlib import Path

from torch.autograd.function import once_differentiable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import linear_function as _right  # noqa: E402


class Linear(_right.Linear):
    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        return _right.Linear.backward(ctx, grad_output)


def linear(x, weight, bias=None):
    return Linear.apply(x, weight, bias)
