"""``linear_function.py`` whose backward returns grad_weight detached: first order right, second order silently wrong.

    bpcheck verify torch:examples/native/linear_function_detached.py --ops linear     # double_backward FAILs

With ``create_graph=True`` autograd hands back a grad_weight that does not require grad, so whatever a Hessian-vector
product or a gradient penalty differentiates through it is missing, without an error. ``torch.autograd.gradgradcheck``
passes this Function: it skips the outputs that do not require grad, and compares the rest with the Function's own
first order. bpcheck compares with torch's double backward of ``F.linear`` and finds the missing part.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import linear_function as _right  # noqa: E402


class Linear(_right.Linear):
    @staticmethod
    def backward(ctx, grad_output):
        grad_x, grad_weight, grad_bias = _right.Linear.backward(ctx, grad_output)
        return grad_x, grad_weight.detach(), grad_bias


def linear(x, weight, bias=None):
    return Linear.apply(x, weight, bias)
