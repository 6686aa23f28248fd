"""Max and average pooling as their formulas state them: the readable rules ``refimpl.pooling`` computes faster.

Each rule loops over the kernel offsets ``(i, j)`` in row-major order; for one
offset, the windows whose element there lies inside the input are a block of
the output and their elements a strided block of the input
(``_Pooling.offset_blocks``), so an offset is one NumPy operation. No phase
layout, no chunks, no threads, no bit tricks: ``refimpl.pooling`` must give
the same bits (tests/test_pooling.py), and ``bpcheck verify refimpl.derivation``
checks these against torch like any implementation.
"""

from __future__ import annotations

import numpy as np

from refimpl.pooling import (
    _at, _batched_grad_output, _first_input_offset, _parse_avg_pooling, _parse_max_pooling, _restore_batch,
)

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


def max_pool2d(x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> np.ndarray:
    """``y[n, c, p, q] = max over i, j of x[n, c, p*sH - padH + i*dH, q*sW - padW + j*dW]``, padding -inf.

    ``np.maximum`` propagates NaN and, on a tie, returns its second argument:
    the earlier element (so a -0.0/+0.0 tie keeps the first zero, as torch).
    """
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.full(x4.shape[:2] + pooling.out_hw, -np.inf, dtype=x4.dtype)
    for block in pooling.offset_blocks():
        running = _at(y, block.output_block)
        np.maximum(_at(x4, block.input_block), running, out=running)
    return _restore_batch(y, unbatched)


def _winner(x4: np.ndarray, pooling) -> np.ndarray:
    """Offset ``k = i*kW + j`` of every window's arg-max, scanning the window as torch's CPU kernel does:

        k* = first input element;  max = -inf
        for k in row-major order:  if x_k > max or isnan(x_k):  k*, max = k, x_k
    """
    kw = pooling.kernel[1]
    best = np.full(x4.shape[:2] + pooling.out_hw, -np.inf, dtype=x4.dtype)
    winner = np.empty(best.shape, dtype=np.int64)
    winner[...] = _first_input_offset(pooling, 0)[:, None] * kw + _first_input_offset(pooling, 1)[None, :]
    for block in pooling.offset_blocks():
        values, running = _at(x4, block.input_block), _at(best, block.output_block)
        replaces = (values > running) | np.isnan(values)
        np.copyto(_at(winner, block.output_block), block.k, where=replaces)
        np.maximum(values, running, out=running)
    return winner


def max_pool2d_backward(
    grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False
) -> np.ndarray:
    """``grad_x[argmax of window (p, q)] += g[p, q]`` for every window, in row-major window order.

    The arg-max is ``_winner``'s; the sums are taken in float64 and rounded once
    to ``x``'s dtype (``np.add.at`` adds in index order: window order).
    """
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    i, j = np.divmod(_winner(x4, pooling), pooling.kernel[1])
    rows = pooling.window_starts(0)[:, None] + i * pooling.dilation[0]
    cols = pooling.window_starts(1)[None, :] + j * pooling.dilation[1]
    n, c = np.indices(x4.shape[:2], sparse=True)
    grad_x = np.zeros(x4.shape, dtype=np.float64)
    np.add.at(grad_x, (n[..., None, None], c[..., None, None], rows, cols), g.astype(np.float64))
    return _restore_batch(grad_x.astype(x4.dtype), unbatched)


def avg_pool2d(
    x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
) -> np.ndarray:
    """``y[n, c, p, q] = (sum of the window's input elements, row-major) / divisor(p, q)``.

    ``divisor`` as in ``refimpl.pooling.avg_pool2d`` (``divisor_override``, or the
    window clipped to input + padding, or to the input).
    """
    x4, unbatched, pooling, divisors = _parse_avg_pooling(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    total = np.zeros(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    for block in pooling.offset_blocks():
        _at(total, block.output_block)[...] += _at(x4, block.input_block)
    return _restore_batch(total / divisors, unbatched)


def avg_pool2d_backward(
    grad_output, x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
) -> np.ndarray:
    """``grad_x[e] = sum over the windows (p, q) containing e of g[p, q] / divisor(p, q)``, in window order.

    Offsets in reverse are windows in ascending order for every element (torch's summation order).
    """
    x4, unbatched, pooling, divisors = _parse_avg_pooling(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    share = _batched_grad_output(grad_output, x4, unbatched, pooling) / divisors
    grad_x = np.zeros(x4.shape, dtype=x4.dtype)
    for block in reversed(pooling.offset_blocks()):
        _at(grad_x, block.input_block)[...] += _at(share, block.output_block)
    return _restore_batch(grad_x, unbatched)
