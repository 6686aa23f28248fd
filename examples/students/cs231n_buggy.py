"""A buggy CS231n-style ``layers.py``: conv_backward_naive forgets to crop the padding from dx.

Everything else is the correct file's (``cs231n_layers.py``, imported). ``dx`` is the gradient of the
padded input cut to x's size from the top-left corner (``dxp[:, :, :h, :wd]``) instead of from ``pad``:
the leading rows and columns of padding are kept and the last ``2 pad`` real ones dropped.
``bpcheck verify --style cs231n examples/students/cs231n_buggy.py`` FAILs conv2d's backward and names it.
"""

import numpy as np

from cs231n_layers import *  # noqa: F403 - the correct layers, all but the one below


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    _, _, h, wd = x.shape
    _, _, hh, ww = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + hh), slice(j * stride, j * stride + ww)
            g = dout[:, :, i, j]
            dw += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))
            dxp[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))
    dx = dxp[:, :, :h, :wd]  # BUG: the padding is not cropped (should be pad:pad + h, pad:pad + wd)
    return dx, dw, db
