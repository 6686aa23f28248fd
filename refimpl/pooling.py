"""2-D max and average pooling, forward and backward, with ``torch.nn.functional`` semantics.

Layout is NCHW (a 3-D CHW input is treated as a batch of one).

Coordinates: window ``(p, q)`` starts at input position ``(p*sH - padH, q*sW - padW)``
and its kernel offset ``(i, j)`` is input element

    (p*sH - padH + i*dH,  q*sW - padW + j*dW)

or padding if that lies outside the input. Offsets are numbered row-major,
``k = i*kW + j``, which is the order torch's CPU kernels scan a window in.

Every function loops only over the ``kH * kW`` kernel offsets. For one offset,
the windows whose element lies inside the input form a block of the output,
and their elements form a strided block of the input (see ``_OffsetBlock``),
so the whole offset is one vectorized NumPy operation and the input is never
padded or copied. Within one offset no two windows share an input element, so
``grad_x[block] += ...`` is a correct scatter-add; running over all offsets
accumulates where windows overlap. (Max pooling's backward instead scatters
every window's gradient to its arg-max's flat index with ``np.bincount``, unless
no two windows overlap; see ``_scatter_by_offset``.)

For speed only, every function runs over cache-sized chunks of the ``N*C``
planes (``_plane_chunks``); planes pool independently, so results are the same.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from refimpl.arguments import as_pair, check_array, check_bool, check_grad_output, check_pool_input_not_empty, output_hw

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward"]


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _OffsetBlock:
    """For one kernel offset ``(i, j)``: the windows whose element there is an input element.

    ``x[:, :, *input_block]`` are those elements, in the layout of
    ``y[:, :, *output_block]``.
    """

    k: int
    output_block: tuple[slice, slice]
    input_block: tuple[slice, slice]


@dataclass(frozen=True)
class _Pooling:
    """Validated geometry of one pooling call (pairs are (h, w))."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]

    def window_starts(self, axis: int) -> np.ndarray:
        """Input coordinate of each window's first element (negative inside the left padding)."""
        return np.arange(self.out_hw[axis]) * self.stride[axis] - self.padding[axis]

    def _overlap(self, axis: int, offset: int) -> tuple[slice, slice] | None:
        """``(windows, input elements)`` along ``axis`` where kernel ``offset`` lands inside the input."""
        s, size, n_windows = self.stride[axis], self.in_hw[axis], self.out_hw[axis]
        shift = offset * self.dilation[axis] - self.padding[axis]  # input coordinate for window 0
        first = max(0, -(shift // s))  # ceil(-shift / s): first window landing at coordinate >= 0
        last = min(n_windows - 1, (size - 1 - shift) // s)  # last window landing at coordinate < size
        if last < first:
            return None
        start = first * s + shift
        return slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)

    def offset_blocks(self) -> list[_OffsetBlock]:
        """One block per kernel offset that reaches the input, in row-major offset order."""
        kh, kw = self.kernel
        blocks = []
        for i in range(kh):
            rows = self._overlap(0, i)
            for j in range(kw):
                cols = self._overlap(1, j)
                if rows is not None and cols is not None:
                    blocks.append(_OffsetBlock(i * kw + j, (rows[0], cols[0]), (rows[1], cols[1])))
        return blocks


def _parse_pooling(x, kernel_size, stride, padding, dilation, ceil_mode, *, what: str):
    """``(x as NCHW, whether a batch axis was added, _Pooling)`` after validating every argument."""
    check_array(x, "x", ndim=(3, 4))
    check_pool_input_not_empty(x, what)
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    stride_pair = kernel if stride is None else as_pair(stride, "stride", minimum=1)
    padding_pair = as_pair(padding, "padding", minimum=0)
    dilation_pair = as_pair(dilation, "dilation", minimum=1)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    # torch compares padding with half the *undilated* kernel, even for dilated max pooling.
    if any(padding_pair[a] > kernel[a] // 2 for a in (0, 1)):
        raise ValueError(
            f"{what}: padding must be at most half of kernel_size on each axis (padding <= kernel_size // 2), "
            f"got padding={padding!r} with kernel_size={kernel_size!r}"
        )
    unbatched = x.ndim == 3
    x4 = x[np.newaxis] if unbatched else x
    in_hw = (x4.shape[2], x4.shape[3])
    out_hw = output_hw(in_hw, kernel, stride_pair, padding_pair, dilation_pair, ceil_mode, what=what)
    return x4, unbatched, _Pooling(kernel, stride_pair, padding_pair, dilation_pair, in_hw, out_hw)


def _batched_grad_output(grad_output, x4: np.ndarray, unbatched: bool, pooling: _Pooling) -> np.ndarray:
    """``grad_output`` as NCHW after checking it matches the forward output's shape and dtype."""
    n, c = x4.shape[:2]
    expected = ((c,) if unbatched else (n, c)) + pooling.out_hw
    check_grad_output(grad_output, expected, x4.dtype)
    return grad_output[np.newaxis] if unbatched else grad_output


def _restore_batch(a: np.ndarray, unbatched: bool) -> np.ndarray:
    return a[0] if unbatched else a


def _at(a: np.ndarray, block: tuple[slice, slice]) -> np.ndarray:
    """View of the NCHW array ``a`` restricted to a spatial block."""
    return a[:, :, block[0], block[1]]


_CHUNK_BYTES = 1 << 20


def _as_planes(a: np.ndarray) -> np.ndarray:
    """The NCHW array ``a`` as ``(N*C, 1, H, W)``: every (n, c) plane pools independently."""
    return a.reshape((-1, 1) + a.shape[2:])


def _plane_chunks(planes: np.ndarray) -> list[slice]:
    """Slices of about ``_CHUNK_BYTES`` of input planes each.

    Pure performance: every offset makes a strided pass over the input, and a
    chunk small enough for the CPU cache is read from memory once, not per pass.
    """
    plane_bytes = planes[0].nbytes if len(planes) else 1
    step = max(1, _CHUNK_BYTES // max(1, plane_bytes))
    return [slice(a, a + step) for a in range(0, len(planes), step)]


# --------------------------------------------------------------------------- max pooling


def _first_input_offset(pooling: _Pooling, axis: int) -> np.ndarray:
    """Per window along ``axis``: the first kernel offset landing inside the input, or -1 if none does."""
    starts = pooling.window_starts(axis)
    d, k, size = pooling.dilation[axis], pooling.kernel[axis], pooling.in_hw[axis]
    first = np.maximum(0, -(starts // d))  # ceil(-start / d) for start < 0, else 0
    inside = (first < k) & (starts + first * d < size)
    return np.where(inside, first, -1)


def _check_windows_overlap_input(pooling: _Pooling) -> None:
    """Reject a (dilated) max pooling in which some window holds padding only.

    torch returns -inf for such a window and its backward then writes the
    gradient to an out-of-range flat index (into another channel, or past the
    end of the buffer); pytorch#114216 calls this an invalid parameter set that
    torch fails to reject. Without dilation it cannot happen.
    """
    for axis, name in ((0, "height"), (1, "width")):
        first = _first_input_offset(pooling, axis)
        if (first < 0).any():
            window = int(np.argmax(first < 0))
            raise ValueError(
                f"max_pool2d: window {window} along the {name} holds only padding (no input element): "
                f"input size {pooling.in_hw[axis]}, kernel_size {pooling.kernel[axis]}, dilation "
                f"{pooling.dilation[axis]}, padding {pooling.padding[axis]}, stride {pooling.stride[axis]}"
            )


def _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode):
    x4, unbatched, pooling = _parse_pooling(x, kernel_size, stride, padding, dilation, ceil_mode, what="max_pool2d")
    _check_windows_overlap_input(pooling)
    return x4, unbatched, pooling


def _window_max(x4: np.ndarray, pooling: _Pooling, out: np.ndarray | None = None) -> np.ndarray:
    """Maximum of every window, ``(N, C, Ho, Wo)``; padding counts as -inf.

    ``np.maximum`` propagates NaN, as torch does (a NaN in the window makes the
    max NaN). On a tie it returns its second argument, here the earlier element,
    so even a -0.0/+0.0 tie keeps the sign torch reports (tested).
    """
    best = np.empty(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype) if out is None else out
    best.fill(-np.inf)
    for block in pooling.offset_blocks():
        running = _at(best, block.output_block)
        np.maximum(_at(x4, block.input_block), running, out=running)
    return best


def _window_winner(x4: np.ndarray, pooling: _Pooling) -> np.ndarray:
    """Offset index ``k`` of every window's arg-max, ``(N, C, Ho, Wo)``, as torch's CPU kernel picks it.

    torch seeds the arg-max with the window's first input element and the max
    with -inf, then scans the window row-major, letting an element replace the
    running max if ``value > max or isnan(value)``. So ties keep the first
    maximum (a window of -inf's keeps its first input element, never padding),
    a NaN always wins, and of several NaNs the last one wins.
    """
    kh, kw = pooling.kernel
    out_shape = x4.shape[:2] + pooling.out_hw
    index_dtype = np.min_scalar_type(kh * kw - 1)
    best = np.full(out_shape, -np.inf, dtype=x4.dtype)
    winner = np.empty(out_shape, dtype=index_dtype)
    winner[...] = _first_input_offset(pooling, 0)[:, None] * kw + _first_input_offset(pooling, 1)[None, :]
    replaces_buffer = np.zeros(out_shape, dtype=bool)
    k_if_replaces = np.empty(out_shape, dtype=index_dtype)
    has_nan = _has_nan(x4)
    for block in pooling.offset_blocks():
        values = _at(x4, block.input_block)
        running, replaces = _at(best, block.output_block), _at(replaces_buffer, block.output_block)
        if replaces.size != replaces_buffer.size:
            replaces_buffer.fill(False)  # outside the block nothing replaces
        np.greater(values, running, out=replaces)
        if has_nan:
            np.logical_or(replaces, np.isnan(values), out=replaces)
        np.maximum(values, running, out=running)
        # The winner is the last offset that replaced the running max. Offsets only
        # grow and the seed is the smallest in-input offset, so a running maximum of
        # "k if replaced else 0" tracks it; masked writes would be ~10x slower. These two
        # run on the whole (contiguous) buffers, ~5x faster than on the block's view.
        np.multiply(replaces_buffer, index_dtype.type(block.k), out=k_if_replaces)
        np.maximum(winner, k_if_replaces, out=winner)
    return winner


def _windows_overlap(pooling: _Pooling) -> bool:
    """Whether some input element lies in two windows (the window extent exceeds the stride)."""
    return any((pooling.kernel[a] - 1) * pooling.dilation[a] + 1 > pooling.stride[a] for a in (0, 1))


def _windows_tile_input(pooling: _Pooling) -> bool:
    """Whether every input element lies in exactly one window (back-to-back windows, exact fit)."""
    return all(
        pooling.dilation[a] == 1
        and pooling.padding[a] == 0
        and pooling.stride[a] == pooling.kernel[a]
        and pooling.out_hw[a] * pooling.stride[a] == pooling.in_hw[a]
        for a in (0, 1)
    )


def _has_nan(a: np.ndarray) -> bool:
    # np.max propagates NaN, so one fast reduction answers it without a boolean temporary.
    return a.size > 0 and bool(np.isnan(np.max(a)))


def _flat_argmax_index(winner: np.ndarray, pooling: _Pooling, x_shape: tuple[int, ...]) -> np.ndarray:
    """Flat index into the NCHW input of every window's arg-max, from its kernel offset ``winner``.

        index = (n*C + c)*H*W + (p*sH - padH + i*dH)*W + (q*sW - padW + j*dW),   (i, j) = divmod(k, kW)
    """
    n, c, h, w = x_shape
    kh, kw = pooling.kernel
    i, j = np.divmod(np.arange(kh * kw, dtype=np.int64), kw)
    offset_shift = i * pooling.dilation[0] * w + j * pooling.dilation[1]
    window_start = pooling.window_starts(0)[:, None] * w + pooling.window_starts(1)[None, :]
    plane_start = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    index = offset_shift[winner]
    index += window_start
    index += plane_start
    return index


def max_pool2d(x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> np.ndarray:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

        y[n, c, p, q] = max over i < kH, j < kW of x[n, c, p*sH - padH + i*dH, q*sW - padW + j*dW]

    where elements outside ``x`` (padding, ``ceil_mode`` overhang) count as
    -inf. A NaN in the window makes the result NaN. ``stride=None`` means
    ``stride = kernel_size``. ``x`` is NCHW or CHW, float32 or float64; the
    result has ``x``'s dtype.

    Deviation from torch: a configuration in which some window holds padding
    only (possible only with ``dilation > 1``) is a ValueError; torch returns
    -inf there and its backward writes out of bounds (pytorch#114216).
    """
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    x_planes, y_planes = _as_planes(x4), _as_planes(y)
    for chunk in _plane_chunks(x_planes):
        _window_max(x_planes[chunk], pooling, out=y_planes[chunk])
    return _restore_batch(y, unbatched)


def max_pool2d_backward(
    grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False
) -> np.ndarray:
    """Gradient of ``max_pool2d`` with respect to ``x``.

        grad_x[argmax of window (p, q)] += g[p, q]     for every window (p, q)

    The arg-max is the element torch's CPU kernel picks: the first maximum in
    row-major window order, or the last NaN if the window has one; never a
    padding element. Windows sharing an arg-max (overlapping windows) add their
    gradients, summed in float64 and rounded once to ``x``'s dtype.
    ``grad_output`` must have the forward output's shape and ``x``'s dtype.
    Rejects the same configurations as ``max_pool2d``.
    """
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    grad_x = np.empty(x4.shape, dtype=x4.dtype)
    x_planes, g_planes, grad_planes = _as_planes(x4), _as_planes(g), _as_planes(grad_x)
    scatter = _scatter_by_offset if not _windows_overlap(pooling) else _scatter_by_bincount
    for chunk in _plane_chunks(x_planes):
        x_chunk = x_planes[chunk]
        scatter(_window_winner(x_chunk, pooling), g_planes[chunk], pooling, grad_planes[chunk])
    return _restore_batch(grad_x, unbatched)


def _scatter_by_bincount(winner, g, pooling: _Pooling, grad_x: np.ndarray) -> None:
    """``grad_x[argmax of window] += g[window]``, into ``grad_x`` (overwritten)."""
    flat_argmax = _flat_argmax_index(winner, pooling, grad_x.shape)
    # bincount adds every window's gradient into its arg-max's bin, in window order (torch's
    # summation order), accumulating in float64: one pass, where a loop over offsets takes ~5.
    grad_x[...] = np.bincount(flat_argmax.ravel(), weights=g.ravel(), minlength=grad_x.size).reshape(grad_x.shape)


def _scatter_by_offset(winner, g, pooling: _Pooling, grad_x: np.ndarray) -> None:
    """Like ``_scatter_by_bincount``, valid only if no input element lies in two windows.

    Then nothing is summed, so each offset's winners take their window's
    gradient directly, in ``x``'s dtype, and the offsets write disjoint elements.
    """
    if not _windows_tile_input(pooling):
        grad_x.fill(0)
    bits = np.dtype(f"i{g.dtype.itemsize}")
    g_bits = (g + 0).view(bits)  # + 0 turns -0.0 into +0.0, as adding it to a zero gradient would
    share_bits = np.empty(winner.shape, dtype=bits)
    share = share_bits.view(g.dtype)
    is_winner = np.empty(winner.shape, dtype=bool)
    for block in pooling.offset_blocks():
        # share = g where this offset won the window, else +0.0 (the bits of g and'ed with all
        # ones or all zeros: np.where and masked ufuncs branch per element, ~5x slower here).
        mask, masked = _at(is_winner, block.output_block), _at(share_bits, block.output_block)
        np.equal(_at(winner, block.output_block), block.k, out=mask)
        np.negative(mask.view(np.int8), out=masked, casting="unsafe")
        np.bitwise_and(masked, _at(g_bits, block.output_block), out=masked)
        _at(grad_x, block.input_block)[...] = _at(share, block.output_block)


# --------------------------------------------------------------------------- average pooling


def _check_divisor_override(divisor_override) -> int | None:
    if divisor_override is None:
        return None
    if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(divisor_override, numbers.Integral):
        raise TypeError(
            f"divisor_override must be None or a nonzero int, got {type(divisor_override).__name__} "
            f"{divisor_override!r}"
        )
    if divisor_override == 0:
        raise ValueError("divisor_override must be nonzero (it divides every window sum), got 0")
    return int(divisor_override)


def _window_sizes(pooling: _Pooling, axis: int, *, count_include_pad: bool) -> np.ndarray:
    """Per window along ``axis``: how many of its elements count towards the divisor.

    With ``count_include_pad`` the window is clipped to input + padding (so a
    ``ceil_mode`` window overhanging the right padding counts only the part
    inside it); otherwise it is clipped to the input.
    """
    starts = pooling.window_starts(axis)
    k, p, size = pooling.kernel[axis], pooling.padding[axis], pooling.in_hw[axis]
    if count_include_pad:
        return np.minimum(starts + k, size + p) - starts
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


def _divisors(pooling: _Pooling, count_include_pad: bool, divisor_override: int | None, dtype) -> np.ndarray:
    """``(Ho, Wo)`` divisor of every window, in ``dtype`` (broadcasts over N and C)."""
    if divisor_override is not None:
        return np.full(pooling.out_hw, divisor_override, dtype=dtype)
    rows = _window_sizes(pooling, 0, count_include_pad=count_include_pad)
    cols = _window_sizes(pooling, 1, count_include_pad=count_include_pad)
    return np.outer(rows, cols).astype(dtype)


def _parse_avg_pooling(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Like ``_parse_pooling``, plus the ``(Ho, Wo)`` divisors."""
    x4, unbatched, pooling = _parse_pooling(x, kernel_size, stride, padding, 1, ceil_mode, what="avg_pool2d")
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor_override(divisor_override)
    return x4, unbatched, pooling, _divisors(pooling, count_include_pad, divisor_override, x4.dtype)


def avg_pool2d(
    x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

        y[n, c, p, q] = (sum of x over the input elements of window (p, q)) / divisor(p, q)

    where, with ``hstart = p*sH - padH`` (``wstart`` likewise),

        divisor = divisor_override                                          if given, else
                  (min(hstart + kH, H + padH) - hstart) * (same along w)    if count_include_pad, else
                  number of the window's elements inside the input.

    So padding adds zeros to the sum, and a ``ceil_mode`` window that overhangs
    the right padding never counts the overhang. ``stride=None`` means
    ``stride = kernel_size``. ``x`` is NCHW or CHW, float32 or float64; the
    result has ``x``'s dtype.
    """
    x4, unbatched, pooling, divisors = _parse_avg_pooling(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    total = np.zeros(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    x_planes, total_planes = _as_planes(x4), _as_planes(total)
    for chunk in _plane_chunks(x_planes):
        x_chunk, total_chunk = x_planes[chunk], total_planes[chunk]
        for block in pooling.offset_blocks():
            _at(total_chunk, block.output_block)[...] += _at(x_chunk, block.input_block)
        total_chunk /= divisors
    return _restore_batch(total, unbatched)


def avg_pool2d_backward(
    grad_output,
    x,
    *,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
) -> np.ndarray:
    """Gradient of ``avg_pool2d`` with respect to ``x``.

        grad_x[e] = sum over windows (p, q) containing input element e of g[p, q] / divisor(p, q)

    with ``divisor`` as in ``avg_pool2d``; padding receives nothing. ``x``
    supplies only the shape and dtype. ``grad_output`` must have the forward
    output's shape and ``x``'s dtype.
    """
    x4, unbatched, pooling, divisors = _parse_avg_pooling(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    tiles = _windows_tile_input(pooling)
    grad_x = np.empty(x4.shape, dtype=x4.dtype) if tiles else np.zeros(x4.shape, dtype=x4.dtype)
    g_planes, grad_planes = _as_planes(g), _as_planes(grad_x)
    for chunk in _plane_chunks(grad_planes):
        share, grad_chunk = g_planes[chunk] / divisors, grad_planes[chunk]
        if tiles:
            # Fast path, valid because every input element lies in exactly one window: each
            # gets its window's share, which "+ 0" turns from -0.0 into +0.0 as a sum would.
            share += 0
            for block in pooling.offset_blocks():
                _at(grad_chunk, block.input_block)[...] = _at(share, block.output_block)
            continue
        # Reverse offset order = ascending window order per input element: torch's summation order.
        for block in reversed(pooling.offset_blocks()):
            _at(grad_chunk, block.input_block)[...] += _at(share, block.output_block)
    return _restore_batch(grad_x, unbatched)
