"""A buggy "Convolution model: Step by Step" file: conv_backward takes dW's window without the stride.

Everything else is the correct file's (``dls_step_by_step.py``, imported). The window ``a_slice`` that
dW is accumulated from starts at ``h``, ``w`` instead of ``vert_start = h * stride``,
``horiz_start = w * stride``, while dA_prev's uses the right one: right at stride 1, wrong beyond.
``bpcheck verify --style dls examples/students/dls_buggy.py`` FAILs conv2d's backward and names it.
"""

import numpy as np

from dls_step_by_step import *  # noqa: F403 - the correct functions, all but the one below
from dls_step_by_step import zero_pad


def conv_backward(dZ, cache):
    (A_prev, W, b, hparameters) = cache
    (m, n_H_prev, n_W_prev, n_C_prev) = A_prev.shape
    (f, f, n_C_prev, n_C) = W.shape
    stride, pad = hparameters["stride"], hparameters["pad"]
    (m, n_H, n_W, n_C) = dZ.shape
    dA_prev = np.zeros(A_prev.shape, dtype=A_prev.dtype)
    dW = np.zeros(W.shape, dtype=W.dtype)
    db = np.zeros((1, 1, 1, n_C), dtype=b.dtype)
    A_prev_pad = zero_pad(A_prev, pad)
    dA_prev_pad = zero_pad(dA_prev, pad)
    for i in range(m):
        a_prev_pad = A_prev_pad[i]
        da_prev_pad = dA_prev_pad[i]
        for h in range(n_H):
            for w in range(n_W):
                for c in range(n_C):
                    vert_start, horiz_start = h * stride, w * stride
                    a_slice = a_prev_pad[h:h + f, w:w + f, :]  # BUG: the window of dW ignores the stride
                    da_prev_pad[vert_start:vert_start + f, horiz_start:horiz_start + f, :] += W[:, :, :, c] * dZ[i, h, w, c]
                    dW[:, :, :, c] += a_slice * dZ[i, h, w, c]
                    db[:, :, :, c] += dZ[i, h, w, c]
        dA_prev[i, :, :, :] = da_prev_pad[pad:pad + n_H_prev, pad:pad + n_W_prev, :]
    return dA_prev, dW, db
