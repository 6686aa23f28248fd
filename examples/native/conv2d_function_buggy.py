"""``conv2d_function.py`` with a classic mistake in its hand-written backward: grad_x ignores the stride.

    bpcheck verify torch:examples/native/conv2d_function_buggy.py     # FAILs on the smallest stride-2 case

grad_x is computed as if the output gradient were not spread out by the stride (conv_transpose2d at stride 1,
then cut to x's size): right at stride 1, wrong at any stride > 1.
"""
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv2d_function as _right  # noqa: E402


class Conv2d(_right.Conv2d):
    @staticmethod
    def backward(ctx, grad_output):
        _, grad_weight, grad_bias, *rest = _right.Conv2d.backward(ctx, grad_output)
        x, weight = ctx.saved_tensors
        _, padding, dilation, groups = ctx.config
        full = F.conv_transpose2d(grad_output, weight, padding=padding, dilation=dilation, groups=groups)
        grad_x = torch.zeros_like(x)
        h, w = min(full.shape[2], x.shape[2]), min(full.shape[3], x.shape[3])
        grad_x[:, :, :h, :w] = full[:, :, :h, :w]
        return (grad_x, grad_weight, grad_bias, *rest)


def conv2d(x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return Conv2d.apply(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)
