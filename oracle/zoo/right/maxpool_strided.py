"""Counterpart maxpool_strided: max pooling on a strided window view of the padded input.

The input is padded with -inf (``padH`` rows on top, enough at the bottom for
the windows ``ceil_mode`` adds) and viewed as windows with
``numpy.lib.stride_tricks.sliding_window_view``, subsampled by the stride and the
dilation: ``win[n, c, p, q, k]``, ``k = i*kW + j``, the k-th tap of window (p, q).
A second, boolean view of the same shape says which taps are input (not padding).

    arg-max k = the last NaN tap, if the window has a NaN;
                else the first input tap equal to the window's maximum over its input taps
    forward   = win[..., arg-max]
    backward  = grad_xpad[row(arg-max), col(arg-max)] += g     (np.add.at, in x's dtype), then crop the padding

which is torch's choice: first maximum on ties, never a padding tap, NaN
propagates. Every argument is validated by refimpl's checks.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from refimpl.pooling import _batched_grad_output, _parse_max_pooling, _restore_batch


def _windows(x4, pooling):
    """``(win, is_input, rows, cols, pad_before, padded_hw)``: the taps of every window, flattened to K = kH*kW."""
    n, c, h, w = x4.shape
    ho, wo = pooling.out_hw
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pooling.kernel, pooling.stride, pooling.padding, pooling.dilation
    ext_h, ext_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    after_h = max(ph, (ho - 1) * sh + ext_h - h - ph)
    after_w = max(pw, (wo - 1) * sw + ext_w - w - pw)
    widths = [(0, 0), (0, 0), (ph, after_h), (pw, after_w)]
    xp = np.pad(x4, widths, constant_values=-np.inf)
    inside = np.pad(np.ones((1, 1, h, w), dtype=bool), widths, constant_values=False)

    def view(a):
        v = sliding_window_view(a, (ext_h, ext_w), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]
        return v.reshape(v.shape[:4] + (kh * kw,))

    # padded coordinates of tap k of window (p, q)
    i, j = np.divmod(np.arange(kh * kw), kw)
    rows = np.arange(ho)[:, None, None] * sh + i * dh  # (Ho, 1, K)
    cols = np.arange(wo)[None, :, None] * sw + j * dw  # (1, Wo, K)
    return view(xp), view(inside), rows, cols, (ph, pw), xp.shape[2:]


def _arg_max(win, is_input):
    """Tap index of each window's arg-max, as torch's CPU kernel picks it."""
    k = win.shape[-1]
    nan = np.isnan(win)
    last_nan = k - 1 - np.argmax(nan[..., ::-1], axis=-1)
    masked = np.where(is_input, win, -np.inf)
    with np.errstate(invalid="ignore"):
        top = np.max(np.where(nan, -np.inf, masked), axis=-1, keepdims=True)
        first_max = np.argmax(is_input & (win == top), axis=-1)
    return np.where(nan.any(axis=-1), last_nan, first_max)


def max_pool2d(x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """``win[..., arg-max]`` of every window."""
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    win, is_input, *_ = _windows(x4, pooling)
    y = np.take_along_axis(win, _arg_max(win, is_input)[..., None], axis=-1)[..., 0]
    return _restore_batch(np.ascontiguousarray(y), unbatched)


def max_pool2d_backward(grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Scatter-add of every window's gradient onto its arg-max (``np.add.at``), padding cropped."""
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    win, is_input, rows, cols, (ph, pw), (hp, wp) = _windows(x4, pooling)
    k = _arg_max(win, is_input)  # (N, C, Ho, Wo)
    n, c = x4.shape[:2]
    ho, wo = pooling.out_hw
    r = np.take_along_axis(np.broadcast_to(rows, (n, c, ho, wo, rows.shape[-1])), k[..., None], axis=-1)[..., 0]
    s = np.take_along_axis(np.broadcast_to(cols, (n, c, ho, wo, cols.shape[-1])), k[..., None], axis=-1)[..., 0]
    grad_pad = np.zeros((n, c, hp, wp), dtype=x4.dtype)
    plane_n = np.arange(n)[:, None, None, None]
    plane_c = np.arange(c)[None, :, None, None]
    np.add.at(grad_pad, (plane_n, plane_c, r, s), g)
    h, w = x4.shape[2:]
    return _restore_batch(np.ascontiguousarray(grad_pad[:, :, ph : ph + h, pw : pw + w]), unbatched)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "max_pool2d")
