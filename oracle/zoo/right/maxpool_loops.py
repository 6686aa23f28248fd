"""Counterpart maxpool_loops: max pooling as a student writes it, plain Python loops over every window and tap.

For each plane (n, c) and window (p, q), the taps (i, j) are scanned in
row-major order as torch's CPU kernel scans them:

    r = p*sH - padH + i*dH,   s = q*sW - padW + j*dW      (taps outside the input are skipped)
    the first tap inside the input seeds the arg-max; a tap replaces it if  x > max  or  x is NaN

so ties keep the first maximum and of several NaNs the last one wins. The
forward is the value at the arg-max; the backward adds each window's gradient
to its arg-max (overlapping windows add, in a Python float, i.e. float64, and
the result is rounded once to x's dtype). Every argument is validated by
refimpl's checks (a window made only of padding is rejected, as refimpl does).
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.pooling import _batched_grad_output, _parse_max_pooling, _restore_batch


def _argmax_windows(x4, pooling):
    """Per (n, c, p, q): the (row, column) of the window's arg-max, scanning as torch does."""
    n_img, n_ch, h, w = x4.shape
    ho, wo = pooling.out_hw
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pooling.kernel, pooling.stride, pooling.padding, pooling.dilation
    values = x4.tolist()
    winners = {}
    for n in range(n_img):
        for c in range(n_ch):
            plane = values[n][c]
            for p in range(ho):
                for q in range(wo):
                    best, where = -math.inf, None
                    for i in range(kh):
                        r = p * sh - ph + i * dh
                        if r < 0 or r >= h:
                            continue
                        for j in range(kw):
                            s = q * sw - pw + j * dw
                            if s < 0 or s >= w:
                                continue
                            v = plane[r][s]
                            if where is None:
                                where = (r, s)
                            if v > best or math.isnan(v):
                                best, where = v, (r, s)
                    winners[n, c, p, q] = where
    return winners


def max_pool2d(x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """The value at each window's arg-max."""
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    for (n, c, p, q), (r, s) in _argmax_windows(x4, pooling).items():
        y[n, c, p, q] = x4[n, c, r, s]
    return _restore_batch(y, unbatched)


def max_pool2d_backward(grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """``grad_x[argmax of window] += g[window]``, window by window."""
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    g_values = g.tolist()
    grad = [[[[0.0] * x4.shape[3] for _ in range(x4.shape[2])] for _ in range(x4.shape[1])] for _ in range(x4.shape[0])]
    for (n, c, p, q), (r, s) in _argmax_windows(x4, pooling).items():
        grad[n][c][r][s] += g_values[n][c][p][q]
    return _restore_batch(np.array(grad, dtype=x4.dtype).reshape(x4.shape), unbatched)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "max_pool2d")
