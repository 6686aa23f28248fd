"""Counterpart adaptive_loops: adaptive average pooling as a student writes it, a loop over the output's bins.

    bin i of an axis of size H pooled to Ho:  rows floor(i H / Ho) <= h < ceil((i + 1) H / Ho)
    y[..., i, j] = mean of x[..., rows_i, cols_j]
    dx[..., rows_i, cols_j] += g[..., i, j] / (|rows_i| |cols_j|)          (overlapping bins add)

Right; the loops are over the (few) bins, each slice vectorized over N and C.
"""

from __future__ import annotations

import numpy as np

from refimpl.adaptive_pooling import _check
from refimpl.arguments import check_grad_output


def _spans(size: int, out: int) -> list[slice]:
    return [slice((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def adaptive_avg_pool2d(x, *, output_size):
    """Each output element the mean of its bin."""
    ho, wo = _check(x, output_size)
    rows, cols = _spans(x.shape[-2], ho), _spans(x.shape[-1], wo)
    y = np.empty(x.shape[:-2] + (ho, wo), dtype=x.dtype)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            y[..., i, j] = x[..., r, c].mean(axis=(-2, -1))
    return y


def adaptive_avg_pool2d_backward(grad_output, x, *, output_size):
    """Each bin's gradient divided by its size and added to each of its elements."""
    ho, wo = _check(x, output_size)
    check_grad_output(grad_output, x.shape[:-2] + (ho, wo), x.dtype)
    rows, cols = _spans(x.shape[-2], ho), _spans(x.shape[-1], wo)
    grad = np.zeros(x.shape, dtype=x.dtype)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            count = x.dtype.type((r.stop - r.start) * (c.stop - c.start))
            grad[..., r, c] += (grad_output[..., i, j] / count)[..., None, None]
    return grad


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "adaptive_avg_pool2d")
