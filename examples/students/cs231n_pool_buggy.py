"""A buggy CS231n-style ``layers.py``: max_pool_backward_naive swaps the row and the column of the window's maximum.

Everything else is the correct file's (``cs231n_layers.py``, imported). The flat index of the maximum in a
``ph x pw`` window is unravelled as ``(first % pw, first // pw)``: in a 2x2 window a maximum in the top right
corner sends its gradient to the bottom left one. The forward is right.
"""

import numpy as np

from cs231n_layers import *  # noqa: F403 - the correct layers, all but the one below


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    n, c, _, _ = x.shape
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw].reshape(n, c, -1)
            first = window.argmax(axis=2)
            a, b = first % pw, first // pw  # BUG: row and column swapped (np.unravel_index(first, (ph, pw)))
            for k in range(n):
                for m in range(c):
                    dx[k, m, i * stride + a[k, m], j * stride + b[k, m]] += dout[k, m, i, j]
    return dx
