"""Counterpart avgpool_cumsum: average pooling through a summed-area table (integral image).

    S[a, b] = sum of x[:a, :b]                     (two cumulative sums, in x's dtype)
    window sum over input rows [r0, r1), columns [c0, c1)  (the window clipped to the input)
            = S[r1, c1] - S[r0, c1] - S[r1, c0] + S[r0, c0]
    y = window sum / divisor                       (divisor as torch: count_include_pad, divisor_override, ceil_mode)

The backward is the adjoint of that, written the same way: each window puts
``+-g/divisor`` on the four corners of a difference array D (``np.add.at``)
and ``grad_x[a, b] = sum of D[a', b'] over a' > a, b' > b`` (two reversed
cumulative sums). Right, but a float32 table accumulates rounding over the
whole plane, not one window: less precise than a direct sum.
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import check_bool
from refimpl.pooling import _batched_grad_output, _check_divisor_override, _parse_pooling, _restore_batch


def _geometry(pooling, count_include_pad, divisor_override):
    """``(r0, r1, c0, c1, divisor)``: per window row (p) and column (q), the input span and the (Ho, Wo) divisors."""
    h, w = pooling.in_hw
    ho, wo = pooling.out_hw
    (kh, kw), (sh, sw), (ph, pw) = pooling.kernel, pooling.stride, pooling.padding
    hstart, wstart = np.arange(ho) * sh - ph, np.arange(wo) * sw - pw
    r0, r1 = np.maximum(hstart, 0), np.minimum(hstart + kh, h)
    c0, c1 = np.maximum(wstart, 0), np.minimum(wstart + kw, w)
    if divisor_override is not None:
        divisor = np.full((ho, wo), divisor_override)
    elif count_include_pad:
        divisor = np.outer(np.minimum(hstart + kh, h + ph) - hstart, np.minimum(wstart + kw, w + pw) - wstart)
    else:
        divisor = np.outer(r1 - r0, c1 - c0)
    return r0, r1, c0, c1, divisor


def _parse(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    x4, unbatched, pooling = _parse_pooling(x, kernel_size, stride, padding, 1, ceil_mode, what="avg_pool2d")
    geometry = _geometry(pooling, check_bool(count_include_pad, "count_include_pad"), _check_divisor_override(divisor_override))
    return x4, unbatched, pooling, geometry


def avg_pool2d(x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Window sums from four corners of the summed-area table, divided by the divisors."""
    x4, unbatched, pooling, (r0, r1, c0, c1, divisor) = _parse(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    n, c, h, w = x4.shape
    table = np.zeros((n, c, h + 1, w + 1), dtype=x4.dtype)
    np.cumsum(np.cumsum(x4, axis=2), axis=3, out=table[:, :, 1:, 1:])
    R0, R1, C0, C1 = r0[:, None], r1[:, None], c0[None, :], c1[None, :]
    sums = table[:, :, R1, C1] - table[:, :, R0, C1] - table[:, :, R1, C0] + table[:, :, R0, C0]
    return _restore_batch(sums / divisor.astype(x4.dtype), unbatched)


def avg_pool2d_backward(grad_output, x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Corners of a difference array, then reversed cumulative sums: the adjoint of the summed-area table."""
    x4, unbatched, pooling, (r0, r1, c0, c1, divisor) = _parse(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    n, c, h, w = x4.shape
    share = g / divisor.astype(x4.dtype)
    corners = np.zeros((n, c, h + 1, w + 1), dtype=x4.dtype)
    R0, R1, C0, C1 = r0[:, None], r1[:, None], c0[None, :], c1[None, :]
    shape = share.shape
    for rows, cols, sign in ((R1, C1, 1), (R0, C1, -1), (R1, C0, -1), (R0, C0, 1)):
        rr, cc = np.broadcast_to(rows, shape[2:]), np.broadcast_to(cols, shape[2:])
        np.add.at(corners, (slice(None), slice(None), rr, cc), share if sign > 0 else -share)
    # grad_x[a, b] = sum of corners[a', b'] over a' >= a + 1, b' >= b + 1
    suffix = np.cumsum(np.cumsum(corners[:, :, ::-1, ::-1], axis=2), axis=3)[:, :, ::-1, ::-1]
    return _restore_batch(np.ascontiguousarray(suffix[:, :, 1:, 1:]), unbatched)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "avg_pool2d")
