"""A custom ``torch.autograd.Function`` for conv2d, its backward written by hand: what a kernel author checks.

    bpcheck verify torch:examples/native/conv2d_function.py

The backward follows the derivation: grad_x is the transposed convolution of the output gradient with the same
filter (``conv_transpose2d``, which dilates by the stride, pads and flips), grad_weight the correlation of the
input with the output gradient (``torch.nn.grad.conv2d_weight``), grad_bias the sum of the output gradient over
N, H, W. Its forward-mode rule (``jvp``) is the product rule of the bilinear forward,
``conv2d(dx, W) + conv2d(x, dW) + db``. ``examples/native/conv2d_function_buggy.py`` is the same Function with a
classic mistake in its backward, ``conv2d_function_jvp_buggy.py`` one with a wrong sign in its jvp.
"""
import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_weight


def _output_padding(x_shape, g_shape, weight_shape, stride, padding, dilation):
    """What conv_transpose2d must add at the end so that its output has x's size again (the rows a stride skips)."""
    return tuple(x_shape[2 + i] - ((g_shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight_shape[2 + i] - 1) + 1)
                 for i in range(2))


class Conv2d(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups):
        return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, stride, padding, dilation, groups = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.config = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.config
        grad_x = F.conv_transpose2d(
            grad_output, weight, stride=stride, padding=padding, dilation=dilation, groups=groups,
            output_padding=_output_padding(x.shape, grad_output.shape, weight.shape, stride, padding, dilation))
        grad_weight = conv2d_weight(x, weight.shape, grad_output, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups)
        grad_bias = grad_output.sum((0, 2, 3)) if ctx.has_bias else None
        return grad_x, grad_weight, grad_bias, None, None, None, None

    @staticmethod
    def jvp(ctx, dx, dweight, dbias, *_):
        """Forward mode: the product rule, dZ = conv2d(dx, W) + conv2d(x, dW) + db (a None tangent adds nothing)."""
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.config
        dz = 0
        if dx is not None:
            dz = dz + F.conv2d(dx, weight, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if dweight is not None:
            dz = dz + F.conv2d(x, dweight, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if dbias is not None:
            dz = dz + dbias[None, :, None, None]
        return dz


def conv2d(x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return Conv2d.apply(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)
