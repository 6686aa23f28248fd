"""``conv2d_function.py`` with a wrong sign in its forward-mode rule: the weight's term is subtracted.

    bpcheck verify torch:examples/native/conv2d_function_jvp_buggy.py --ops conv2d     # the jvp row FAILs

    dZ = conv2d(dx, W) - conv2d(x, dW) + db        (right: + conv2d(x, dW))

Its backward is right, so every reverse-mode row passes; only the jvp row (against torch.func.jvp, finite
differences of the forward, and <J v, w> = <v, J^T w> with its own backward) sees the mistake.
"""
import sys
from pathlib import Path

import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv2d_function as _right  # noqa: E402


class Conv2d(_right.Conv2d):
    @staticmethod
    def jvp(ctx, dx, dweight, dbias, *_):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.config
        dz = 0
        if dx is not None:
            dz = dz + F.conv2d(dx, weight, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if dweight is not None:
            dz = dz - F.conv2d(x, dweight, None, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if dbias is not None:
            dz = dz + dbias[None, :, None, None]
        return dz


def conv2d(x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return Conv2d.apply(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)
