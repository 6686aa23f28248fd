"""``conv2d_function.py`` with a classic mistake in its hand-written backward: grad_x ignores the stride.

    bpcheck verify torch:examples/native/conv2d_function_buggy.py     # FAILs on the smallest stride-2 case

grad_x is computed as if the output gradient were not spread out by the stride (conv_transpose2d at stride 1,
then cropped or padded to x's size): right at stride 1, wrong at any stride > 1.
"""
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight


class Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups):
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(x, weight)
        ctx.config = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.config
        full = F.conv_transpose2d(grad_output, weight, padding=padding, dilation=dilation, groups=groups)
        grad_x = torch.zeros_like(x)
        h, w = min(full.shape[2], x.shape[2]), min(full.shape[3], x.shape[3])
        grad_x[:, :, :h, :w] = full[:, :, :h, :w]
        grad_weight = conv2d_weight(x, weight.shape, grad_output, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups)
        grad_bias = grad_output.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_x, grad_weight, grad_bias, None, None, None, None


def conv2d(x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return Conv2d.apply(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)
