"""linear as a custom ``torch.autograd.Function`` whose backward sums over the batch in an order that changes each call.

    bpcheck verify torch:examples/native/linear_function_nondeterministic.py --ops linear

This is what a GPU kernel with atomic adds does (the order is whichever block finishes first; here it alternates,
first to last then last to first, so that two consecutive calls always differ in order and the outcome of a
derandomized run does not depend on luck): ``grad_weight = sum_n G[n]^T x[n]`` and ``grad_bias = sum_n G[n]`` are
right, but two calls round their sums differently (a few ulps). bpcheck passes the gradients and says
"not deterministic: two identical calls of the backward differ by up to ... ulps"; with ``--strict``
(``--bpcheck-strict`` under pytest) that is a failure. ``linear_function.py`` is the same Function, deterministic.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import linear_function as _right  # noqa: E402

_calls = [0]


def _sum_in_changing_order(terms):
    """``terms.sum(0)``, the terms added one by one, first to last on one call and last to first on the next."""
    _calls[0] += 1
    order = range(terms.shape[0]) if _calls[0] % 2 else reversed(range(terms.shape[0]))
    total = torch.zeros_like(terms[0])
    for n in order:
        total = total + terms[n]
    return total


class Linear(_right.Linear):
    """``linear_function.Linear``'s forward and context; only the backward's sums change order."""

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_weight = _sum_in_changing_order(grad_output[:, :, None] * x[:, None, :])  # sum_n outer(G[n], x[n])
        grad_bias = _sum_in_changing_order(grad_output) if ctx.has_bias else None
        return grad_output @ weight, grad_weight, grad_bias


def linear(x, weight, bias=None):
    return Linear.apply(x, weight, bias)
