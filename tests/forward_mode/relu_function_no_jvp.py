"""A ``torch:`` module whose relu is a custom Function with a backward and no forward-mode rule (no ``jvp``)."""
import torch


class Relu(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return x.clamp(min=0)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0)


def relu(x):
    return Relu.apply(x)
