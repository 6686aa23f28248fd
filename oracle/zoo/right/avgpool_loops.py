"""Counterpart avgpool_loops: average pooling with plain Python loops over every window and tap.

For each plane (n, c) and window (p, q), with ``hstart = p*sH - padH`` (wstart likewise):

    sum     = x summed over the window's taps inside the input (padding adds 0)
    divisor = divisor_override                                              if given
            = (min(hstart + kH, H + padH) - hstart) * (the same along w)    if count_include_pad
            = the number of the window's taps inside the input              otherwise
    y = sum / divisor;    backward: grad_x[tap] += g[p, q] / divisor, for every tap inside the input

Sums are Python floats (float64), rounded once to x's dtype. Every argument is
validated by refimpl's checks.
"""

from __future__ import annotations

import numpy as np

from refimpl.pooling import _batched_grad_output, _check_divisor_override, _parse_pooling, _restore_batch
from refimpl.arguments import check_bool


def _parse(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x4, unbatched, pooling = _parse_pooling(x, kernel_size, stride, padding, 1, ceil_mode, what="avg_pool2d")
    return x4, unbatched, pooling, check_bool(count_include_pad, "count_include_pad"), _check_divisor_override(divisor_override)


def _windows(pooling, count_include_pad, divisor_override):
    """Yield ``(p, q, taps, divisor)``: each window's in-input taps as (row, column), and its divisor."""
    h, w = pooling.in_hw
    ho, wo = pooling.out_hw
    (kh, kw), (sh, sw), (ph, pw) = pooling.kernel, pooling.stride, pooling.padding
    for p in range(ho):
        for q in range(wo):
            hstart, wstart = p * sh - ph, q * sw - pw
            taps = []
            for i in range(kh):
                for j in range(kw):
                    r, s = hstart + i, wstart + j
                    if 0 <= r < h and 0 <= s < w:
                        taps.append((r, s))
            if divisor_override is not None:
                divisor = divisor_override
            elif count_include_pad:
                divisor = (min(hstart + kh, h + ph) - hstart) * (min(wstart + kw, w + pw) - wstart)
            else:
                divisor = len(taps)
            yield p, q, taps, divisor


def avg_pool2d(x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Each window's sum over its in-input taps, divided by its divisor."""
    x4, unbatched, pooling, include, override = _parse(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    values = x4.tolist()
    y = np.empty(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    windows = list(_windows(pooling, include, override))
    for n in range(x4.shape[0]):
        for c in range(x4.shape[1]):
            plane = values[n][c]
            for p, q, taps, divisor in windows:
                total = 0.0
                for r, s in taps:
                    total += plane[r][s]
                y[n, c, p, q] = total / divisor
    return _restore_batch(y, unbatched)


def avg_pool2d_backward(grad_output, x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """``grad_x[tap] += g[window] / divisor`` for every window and every in-input tap of it."""
    x4, unbatched, pooling, include, override = _parse(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    g = _batched_grad_output(grad_output, x4, unbatched, pooling).tolist()
    n_img, n_ch, h, w = x4.shape
    grad = [[[[0.0] * w for _ in range(h)] for _ in range(n_ch)] for _ in range(n_img)]
    windows = list(_windows(pooling, include, override))
    for n in range(n_img):
        for c in range(n_ch):
            plane = grad[n][c]
            for p, q, taps, divisor in windows:
                share = g[n][c][p][q] / divisor
                for r, s in taps:
                    plane[r][s] += share
    return _restore_batch(np.array(grad, dtype=x4.dtype).reshape(x4.shape), unbatched)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "avg_pool2d")
