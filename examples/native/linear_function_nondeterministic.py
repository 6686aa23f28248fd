"""linear as a custom ``torch.autograd.Function`` whose backward sums over the batch in a random order each call.

    bpcheck verify torch:examples/native/linear_function_nondeterministic.py --ops linear

This is what a GPU kernel with atomic adds does: ``grad_weight = sum_n G[n]^T x[n]`` and ``grad_bias = sum_n G[n]``
are right, but two calls round their sums differently (a few ulps). bpcheck passes the gradients and says
"not deterministic: two identical calls of the backward differ by up to ... ulps"; with ``--strict``
(``--bpcheck-strict`` under pytest) that is a failure. ``linear_function.py`` is the same Function, deterministic.
"""
import torch


def _sum_in_random_order(terms):
    """``terms.sum(0)``, the terms added one by one in a fresh random order."""
    total = torch.zeros_like(terms[0])
    for n in torch.randperm(terms.shape[0]).tolist():
        total = total + terms[n]
    return total


class Linear(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, bias):
        out = x @ weight.T
        return out if bias is None else out + bias

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias = inputs
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_weight = _sum_in_random_order(grad_output[:, :, None] * x[:, None, :])  # sum_n outer(G[n], x[n])
        grad_bias = _sum_in_random_order(grad_output) if ctx.has_bias else None
        return grad_output @ weight, grad_weight, grad_bias


def linear(x, weight, bias=None):
    return Linear.apply(x, weight, bias)
