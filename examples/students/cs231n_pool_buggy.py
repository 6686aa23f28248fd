"""A buggy CS231n-style ``layers.py``: max_pool_backward_naive swaps the row and the column of the window's maximum.

Everything else is the correct file's (``cs231n_layers.py``, imported). The flat index of the maximum in a
``ph x pw`` window is unravelled as ``(column, row)`` instead of ``(row, column)``: in a 2x2 window a maximum in the top right
corner sends its gradient to the bottom left one. The forward is right.
"""

import numpy as np

from cs231n_layers import *  # noqa: F403 - the correct layers, all but the one below


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros_like(x)
    for k, m, i, j in np.ndindex(*dout.shape):
        window = x[k, m, i * s:i * s + ph, j * s:j * s + pw]
        col, row = divmod(int(window.argmax()), pw)  # BUG: divmod gives (row, col): the two are swapped
        dx[k, m, i * s + row, j * s + col] += dout[k, m, i, j]
    return dx
