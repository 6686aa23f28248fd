"""linear as a custom ``torch.autograd.Function`` whose backward is itself differentiable: its second order is right.

    bpcheck verify torch:examples/native/linear_function.py --ops linear

The backward (``grad_x = G W``, ``grad_weight = G^T x``, ``grad_bias = sum_n G``) is written in torch ops, so with
``create_graph=True`` autograd differentiates it (a Hessian-vector product, a WGAN-GP gradient penalty): the
``double_backward`` row passes. ``linear_function_detached.py`` returns grad_weight detached (a silently wrong
second order that ``torch.autograd.gradgradcheck`` passes); ``linear_function_once_differentiable.py`` marks the
backward ``@once_differentiable`` (no second order: "no double backward").
"""
import torch


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
        grad_bias = grad_output.sum(0) if ctx.has_bias else None
        return grad_output @ weight, grad_output.T @ x, grad_bias


def linear(x, weight, bias=None):
    return Linear.apply(x, weight, bias)
