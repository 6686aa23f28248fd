"""2-D max and average pooling, forward and backward, with ``torch.nn.functional`` semantics.

Layout is NCHW (a 3-D CHW input is treated as a batch of one).

Coordinates: window ``(p, q)`` starts at input position ``(p*sH - padH, q*sW - padW)``
and its kernel offset ``(i, j)`` is input element

    (p*sH - padH + i*dH,  q*sW - padW + j*dW)

or padding if that lies outside the input. Offsets are numbered row-major,
``k = i*kW + j``, which is the order torch's CPU kernels scan a window in.

Every function loops only over the ``kH * kW`` kernel offsets, each one
vectorized NumPy operation over all windows of a chunk of planes. The windows'
elements at one offset are a strided block of the input; NumPy is slow on
strided blocks, so the input is first split by stride phase (``_PhaseLayout``:
one copy), in which the elements of every offset are one contiguous slice.
Within one offset no two windows share an input element, so ``grad[slice] +=
share`` is a correct scatter-add; running over all offsets accumulates where
windows overlap. When no two windows overlap, backward passes write each
offset's block of the input directly (``_OffsetBlock``: ``_scatter_by_offset``,
the tiling average pool).

For speed only, every function runs over cache-sized chunks of the ``N*C``
planes (``_plane_chunks``); planes pool independently, so results are the same.
"""

from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from refimpl.arguments import (
    as_pair, check_array, check_bool, check_grad_output, check_pool_input_not_empty, check_tangents, output_hw, span,
    unpack_jvp,
)

__all__ = [
    "max_pool2d", "max_pool2d_backward", "max_pool2d_jvp", "avg_pool2d", "avg_pool2d_backward", "avg_pool2d_jvp",
]


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
        shift = offset * self.dilation[axis] - self.padding[axis]  # input coordinate for window 0
        return span(self.out_hw[axis], self.stride[axis], shift, self.in_hw[axis])

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


def _planes_per_chunk(planes: np.ndarray) -> int:
    """About ``_CHUNK_BYTES`` of input planes (at least one, at most all of them).

    Pure performance: every offset makes a pass over the chunk, and a chunk
    small enough for the CPU cache is read from memory once, not per pass. The
    chunk's scratch buffers are sized by this count, so a small input must not
    get buffers for a megabyte of planes it does not have.
    """
    return max(1, min(len(planes), _CHUNK_BYTES // max(1, planes[0].nbytes if len(planes) else 1)))


def _plane_chunks(planes: np.ndarray) -> list[slice]:
    """Slices of ``_planes_per_chunk`` input planes each."""
    step = _planes_per_chunk(planes)
    return [slice(a, a + step) for a in range(0, len(planes), step)]


def _thread_count() -> int:
    """As many threads as NumPy's BLAS may use (``OPENBLAS_NUM_THREADS``, else ``OMP_NUM_THREADS``, else
    the cores), at most 4."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return min(4, int(value))
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


_THREADS = _thread_count()
_POOL: ThreadPoolExecutor | None = None  # made on first use; a forked child makes its own


def _executor() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="refimpl-pooling")
    return _POOL


def _forget_executor() -> None:
    global _POOL
    _POOL = None  # its threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executor)


def _for_each_chunk(planes: np.ndarray, worker: Callable[[], Callable[[slice], None]]) -> None:
    """``run(chunk)`` for every chunk of ``planes``, ``run = worker()`` made once per thread.

    Pure performance: chunks are independent (each writes its own planes of the
    result), and NumPy releases the GIL inside its loops, so up to ``_THREADS``
    threads, each with its own scratch buffers (made by ``worker``), share the
    chunks. The result does not depend on the split.
    """
    chunks = _plane_chunks(planes)
    threads = min(_THREADS, len(chunks))

    def run_every(share: list[slice]) -> None:
        run = worker()
        for chunk in share:
            run(chunk)

    if threads <= 1:
        run_every(chunks)
        return
    list(_executor().map(run_every, [chunks[t::threads] for t in range(threads)]))


@dataclass(frozen=True)
class _Tap:
    """Kernel offset ``k = i*kW + j`` in the phase layout: its phase ``(a, b)`` and flat shift."""

    k: int
    phase: tuple[int, int]
    shift: int


class _PhaseLayout:
    """A chunk of input planes, padded and split by stride phase: every kernel offset one contiguous slice.

    Pure performance (the sums and maxima are the formulas', element for element,
    in the same order). Window ``p``, kernel row ``i`` reads padded row
    ``p*sH + i*dH = (p + r_i)*sH + a_i`` with ``(r_i, a_i) = divmod(i*dH, sH)``;
    columns likewise with ``(c_j, b_j)``. Phase ``(a, b)`` of a plane is the grid

        phase[a, b][u, v] = xpad[u*sH + a, v*sW + b],    u < Hq = Ho + max r_i,  v < Wq = Wo + max c_j

    (``fill`` where that is padding or beyond the input), stored flat, one plane
    after the other. A *window grid* of the same ``Hq x Wq`` shape per plane
    (windows ``p >= Ho`` or ``q >= Wo`` are scratch, discarded) then finds kernel
    offset ``(i, j)`` of every window at flat position ``window + r_i*Wq + c_j``
    of phase ``(a_i, b_j)``: for all windows of the chunk, one contiguous slice
    of that phase (``at``), where the plain layout gives a strided 2-D block per
    offset (NumPy's slow, unvectorized case). A real window never reads outside
    its own plane; a scratch window may. So a scatter-add through ``at`` is
    correct as long as the scratch windows add zeros.
    """

    def __init__(self, pooling: _Pooling, planes: int):
        (kh, kw), (sh, sw), (dh, dw) = pooling.kernel, pooling.stride, pooling.dilation
        rows = [divmod(i * dh, sh) for i in range(kh)]  # (r_i, a_i)
        cols = [divmod(j * dw, sw) for j in range(kw)]  # (c_j, b_j)
        self.out_hw = pooling.out_hw
        self.grid = (pooling.out_hw[0] + max(r for r, _ in rows), pooling.out_hw[1] + max(c for c, _ in cols))
        hq, wq = self.grid
        # (grid rows, input rows) and (grid columns, input columns) of each phase that holds input elements
        row_spans = {a: span(hq, sh, a - pooling.padding[0], pooling.in_hw[0]) for _, a in rows}
        col_spans = {b: span(wq, sw, b - pooling.padding[1], pooling.in_hw[1]) for _, b in cols}
        self.spans = {
            (a, b): (rs, cs) for a, rs in row_spans.items() for b, cs in col_spans.items() if rs and cs
        }
        # offsets in a phase of padding only read ``fill`` everywhere: they change no max and no sum
        self.taps = [
            _Tap(i * kw + j, (a, b), r * wq + c)
            for i, (r, a) in enumerate(rows)
            for j, (c, b) in enumerate(cols)
            if (a, b) in self.spans
        ]
        self.planes = planes
        self.size = planes * hq * wq  # elements of one phase, or of one window grid, of a full chunk
        self._slack = max(tap.shift for tap in self.taps)

    def phases(self, dtype, fill) -> dict[tuple[int, int], np.ndarray]:
        """Buffers for the phases of a chunk, ``fill`` everywhere (``load`` rewrites only input elements)."""
        return {phase: np.full(self.size + self._slack, fill, dtype=dtype) for phase in self.spans}

    def windows(self, dtype) -> np.ndarray:
        """A window grid for a chunk, flat, zero (so its scratch windows stay zero if only ``real`` is written)."""
        return np.zeros(self.size, dtype=dtype)

    def _grid(self, flat: np.ndarray, m: int) -> np.ndarray:
        return flat[: m * self.grid[0] * self.grid[1]].reshape((m,) + self.grid)

    def real(self, windows: np.ndarray, m: int) -> np.ndarray:
        """The real windows ``(m, Ho, Wo)`` of a window grid holding ``m`` planes."""
        return self._grid(windows, m)[:, : self.out_hw[0], : self.out_hw[1]]

    def load(self, phases: dict, planes: np.ndarray) -> int:
        """Copy the ``(m, 1, H, W)`` input planes into their phases; returns ``m``."""
        m = len(planes)
        for phase, (rows, cols) in self.spans.items():
            self._grid(phases[phase], m)[:, rows[0], cols[0]] = planes[:, 0, rows[1], cols[1]]
        return m

    def store(self, phases: dict, planes: np.ndarray) -> None:
        """The inverse of ``load``: the input elements of the phases into the ``(m, 1, H, W)`` planes.

        Input elements in no phase (never in a window) are left as they are.
        """
        m = len(planes)
        for phase, (rows, cols) in self.spans.items():
            planes[:, 0, rows[1], cols[1]] = self._grid(phases[phase], m)[:, rows[0], cols[0]]

    def at(self, phases: dict, tap: _Tap, m: int) -> np.ndarray:
        """Kernel offset ``tap`` of every window of the first ``m`` planes, in window-grid layout (a view)."""
        start = tap.shift
        return phases[tap.phase][start : start + m * self.grid[0] * self.grid[1]]

    def width(self, m: int) -> int:
        """Elements of a phase or window grid holding ``m`` planes."""
        return m * self.grid[0] * self.grid[1]


def _scatter_add(layout: _PhaseLayout, grads: dict, m: int, share_of) -> None:
    """``grads[element] = sum of share_of(tap)[window]`` over the (window, offset) pairs reading each element.

    ``grads`` are phase buffers; ``share_of(tap)`` is a window grid of ``m`` planes, zero at
    scratch windows. Offsets run in reverse, which is ascending window order for every
    element (within a phase, a later offset has a larger shift, so it reaches the element
    from an earlier window): torch's summation order. The zeros of non-contributing windows
    change no sum (a sum from +0.0 is never -0.0, and x + 0.0 is x for every other x).
    """
    for buffer in grads.values():
        buffer.fill(0)
    for tap in reversed(layout.taps):
        acc = layout.at(grads, tap, m)
        acc += share_of(tap)


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


def _window_max(layout: _PhaseLayout, phases: dict, m: int, best: np.ndarray) -> None:
    """Maximum of every window into the window grid ``best``; padding counts as -inf (the phases' fill).

    ``np.maximum`` propagates NaN, as torch does (a NaN in the window makes the
    max NaN). On a tie it returns its second argument, here the earlier element,
    so even a -0.0/+0.0 tie keeps the sign torch reports (tested).
    """
    running = best[: layout.width(m)]
    running.fill(-np.inf)
    for tap in layout.taps:
        np.maximum(layout.at(phases, tap, m), running, out=running)


def _window_winner(layout: _PhaseLayout, phases: dict, m: int, seed: np.ndarray, has_nan: bool) -> np.ndarray:
    """Offset index ``k`` of every window's arg-max, as torch's CPU kernel picks it: a window grid.

    torch seeds the arg-max with the window's first input element (``seed``, per
    real window) and the max with -inf, then scans the window row-major, letting
    an element replace the running max if ``value > max or isnan(value)``. So
    ties keep the first maximum (a window of -inf's keeps its first input
    element, never padding, which is -inf too and so never replaces), a NaN
    always wins, and of several NaNs the last one wins.
    """
    n = layout.width(m)
    index_dtype = np.min_scalar_type(max(tap.k for tap in layout.taps))
    best = np.full(n, -np.inf, dtype=phases[layout.taps[0].phase].dtype)
    winner = np.zeros(n, dtype=index_dtype)
    layout.real(winner, m)[...] = seed
    replaces = np.empty(n, dtype=bool)
    k_if_replaces = np.empty(n, dtype=index_dtype)
    for tap in layout.taps:
        values = layout.at(phases, tap, m)
        np.greater(values, best, out=replaces)
        if has_nan:
            np.logical_or(replaces, np.isnan(values), out=replaces)
        np.maximum(values, best, out=best)
        # The winner is the last offset that replaced the running max. Offsets only grow and
        # the seed is the smallest in-input offset, so a running maximum of "k if replaced
        # else 0" tracks it (masked writes would be ~10x slower).
        np.multiply(replaces, index_dtype.type(tap.k), out=k_if_replaces)
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


def _masked(is_winner: np.ndarray, bits: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The float whose bits are ``out``: ``bits`` where ``is_winner``, else +0.0.

    The bits and'ed with all ones or all zeros: no ``0 * inf`` or ``0 * NaN``, and
    ~5x faster than ``np.where`` or a masked ufunc, which branch per element.
    """
    np.negative(is_winner.view(np.int8), out=out, casting="unsafe")
    np.bitwise_and(out, bits, out=out)
    return out.view(np.dtype(f"f{out.itemsize}"))


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
    layout = _PhaseLayout(pooling, _planes_per_chunk(x_planes))

    def worker():
        phases, best = layout.phases(x4.dtype, -np.inf), layout.windows(x4.dtype)

        def run(chunk):
            m = layout.load(phases, x_planes[chunk])
            _window_max(layout, phases, m, best)
            y_planes[chunk, 0] = layout.real(best, m)

        return run

    _for_each_chunk(x_planes, worker)
    return _restore_batch(y, unbatched)


def max_pool2d_backward(
    grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False
) -> np.ndarray:
    """Gradient of ``max_pool2d`` with respect to ``x``.

        grad_x[argmax of window (p, q)] += g[p, q]     for every window (p, q)

    The arg-max is the element torch's CPU kernel picks: the first maximum in
    row-major window order, or the last NaN if the window has one; never a
    padding element. Windows sharing an arg-max (overlapping windows) add their
    gradients in window order (torch's), summed in float64 and rounded once to
    ``x``'s dtype. ``grad_output`` must have the forward output's shape and
    ``x``'s dtype. Rejects the same configurations as ``max_pool2d``.
    """
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    g = _batched_grad_output(grad_output, x4, unbatched, pooling)
    grad_x = np.zeros(x4.shape, dtype=x4.dtype)
    x_planes, g_planes, grad_planes = _as_planes(x4), _as_planes(g), _as_planes(grad_x)
    layout = _PhaseLayout(pooling, _planes_per_chunk(x_planes))
    kw = pooling.kernel[1]
    seed = _first_input_offset(pooling, 0)[:, None] * kw + _first_input_offset(pooling, 1)[None, :]
    overlap = _windows_overlap(pooling)

    def worker():
        phases = layout.phases(x4.dtype, -np.inf)
        if overlap:
            grads, g64 = layout.phases(np.float64, 0), layout.windows(np.float64)
            g_bits, share_bits = g64.view(np.int64), np.empty(layout.size, dtype=np.int64)
            is_winner = np.empty(layout.size, dtype=bool)

        def run(chunk):
            x_chunk, g_chunk, grad_chunk = x_planes[chunk], g_planes[chunk], grad_planes[chunk]
            m = layout.load(phases, x_chunk)
            winner = _window_winner(layout, phases, m, seed, _has_nan(x_chunk))
            if not overlap:
                _scatter_by_offset(layout.real(winner, m)[:, np.newaxis], g_chunk, pooling, grad_chunk)
                return
            # Each window's gradient goes to the element of its winning offset, in float64.
            n = layout.width(m)
            layout.real(g64, m)[...] = g_chunk[:, 0]  # scratch windows stay 0

            def share_of(tap):
                return _masked(np.equal(winner[:n], tap.k, out=is_winner[:n]), g_bits[:n], share_bits[:n])

            _scatter_add(layout, grads, m, share_of)
            layout.store(grads, grad_chunk)

        return run

    _for_each_chunk(x_planes, worker)
    return _restore_batch(grad_x, unbatched)


def _scatter_by_offset(winner, g, pooling: _Pooling, grad_x: np.ndarray) -> None:
    """``grad_x[argmax of window] = g[window]``, valid only if no input element lies in two windows.

    Then nothing is summed, so each offset's winners take their window's
    gradient directly, in ``x``'s dtype, and the offsets write disjoint
    elements (``grad_x`` is zero elsewhere).
    """
    bits = np.dtype(f"i{g.dtype.itemsize}")
    g_bits = (g + 0).view(bits)  # + 0 turns -0.0 into +0.0, as adding it to a zero gradient would
    share_bits = np.empty(winner.shape, dtype=bits)
    is_winner = np.empty(winner.shape, dtype=bool)
    for block in pooling.offset_blocks():
        # share = g where this offset won the window, else +0.0
        mask, masked = _at(is_winner, block.output_block), _at(share_bits, block.output_block)
        np.equal(_at(winner, block.output_block), block.k, out=mask)
        share = _masked(mask, _at(g_bits, block.output_block), masked)
        _at(grad_x, block.input_block)[...] = share


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
    y = np.empty(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    x_planes, y_planes = _as_planes(x4), _as_planes(y)
    layout = _PhaseLayout(pooling, _planes_per_chunk(x_planes))

    def worker():
        phases, total = layout.phases(x4.dtype, 0), layout.windows(x4.dtype)

        def run(chunk):
            m = layout.load(phases, x_planes[chunk])
            running = total[: layout.width(m)]
            running.fill(0)
            for tap in layout.taps:  # row-major offset order, torch's; padding adds +0.0, which changes no sum
                running += layout.at(phases, tap, m)
            np.divide(layout.real(total, m), divisors, out=y_planes[chunk, 0])

        return run

    _for_each_chunk(x_planes, worker)
    return _restore_batch(y, unbatched)


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
    grad_x = np.zeros(x4.shape, dtype=x4.dtype)
    g_planes, grad_planes = _as_planes(g), _as_planes(grad_x)
    if _windows_tile_input(pooling):
        # Fast path, valid because every input element lies in exactly one window: each gets
        # its window's share, which "+ 0" turns from -0.0 into +0.0 as a sum would.
        def tiles(chunk):
            share, grad_chunk = g_planes[chunk] / divisors, grad_planes[chunk]
            share += 0
            for block in pooling.offset_blocks():
                _at(grad_chunk, block.input_block)[...] = _at(share, block.output_block)

        _for_each_chunk(grad_planes, lambda: tiles)
        return _restore_batch(grad_x, unbatched)
    layout = _PhaseLayout(pooling, _planes_per_chunk(grad_planes))

    def worker():
        grads, share = layout.phases(x4.dtype, 0), layout.windows(x4.dtype)

        def run(chunk):
            m = len(g_planes[chunk])
            np.divide(g_planes[chunk, 0], divisors, out=layout.real(share, m))  # scratch windows stay 0
            _scatter_add(layout, grads, m, lambda tap: share[: layout.width(m)])
            layout.store(grads, grad_planes[chunk])

        return run

    _for_each_chunk(grad_planes, worker)
    return _restore_batch(grad_x, unbatched)


# --------------------------------------------------------------------------- forward mode (JVP)


def max_pool2d_jvp(primals, tangents, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Forward mode of ``max_pool2d``: ``(y, dy)``, the tangent routed through each window's arg-max.

        dy[p, q] = dx[argmax of window (p, q)]

    the arg-max the backward routes gradients to (``_window_winner``: torch's CPU kernel's,
    the first maximum in row-major window order, the last NaN if the window has one; never
    padding), so ``<dy, g> = <dx, max_pool2d_backward(g)>`` exactly. ``primals = (x,)``,
    ``tangents = (dx,)`` (None: a zero tangent). Rejects the same configurations as ``max_pool2d``.
    """
    (x,), (dx,) = unpack_jvp(primals, tangents, ("x",), 1, what="max_pool2d_jvp")
    x4, unbatched, pooling = _parse_max_pooling(x, kernel_size, stride, padding, dilation, ceil_mode)
    check_tangents((x,), (dx,), ("x",))
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    y = max_pool2d(x, **config)
    dy = np.zeros(x4.shape[:2] + pooling.out_hw, dtype=x4.dtype)
    if dx is None:
        return y, _restore_batch(dy, unbatched)
    x_planes, dx_planes, dy_planes = _as_planes(x4), _as_planes(dx[np.newaxis] if unbatched else dx), _as_planes(dy)
    layout = _PhaseLayout(pooling, _planes_per_chunk(x_planes))
    kw = pooling.kernel[1]
    seed = _first_input_offset(pooling, 0)[:, None] * kw + _first_input_offset(pooling, 1)[None, :]

    def worker():
        phases, tangent_phases = layout.phases(x4.dtype, -np.inf), layout.phases(x4.dtype, 0)
        routed, is_winner = layout.windows(x4.dtype), np.empty(layout.size, dtype=bool)

        def run(chunk):
            m = layout.load(phases, x_planes[chunk])
            winner = _window_winner(layout, phases, m, seed, _has_nan(x_planes[chunk]))
            layout.load(tangent_phases, dx_planes[chunk])
            n = layout.width(m)
            for tap in layout.taps:  # each window takes the tangent at its winning offset
                np.equal(winner[:n], tap.k, out=is_winner[:n])
                np.copyto(routed[:n], layout.at(tangent_phases, tap, m), where=is_winner[:n])
            dy_planes[chunk, 0] = layout.real(routed, m)

        return run

    _for_each_chunk(x_planes, worker)
    return y, _restore_batch(dy, unbatched)


def avg_pool2d_jvp(
    primals, tangents, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None,
):
    """Forward mode of ``avg_pool2d``: ``(y, dy)``. The forward is linear in x, so it is its own JVP:

        dy = avg_pool2d(dx)        (same configuration; None: a zero tangent)
    """
    (x,), (dx,) = unpack_jvp(primals, tangents, ("x",), 1, what="avg_pool2d_jvp")
    config = dict(
        kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
        count_include_pad=count_include_pad, divisor_override=divisor_override,
    )
    y = avg_pool2d(x, **config)
    check_tangents((x,), (dx,), ("x",))
    return y, np.zeros_like(y) if dx is None else avg_pool2d(dx, **config)
