"""The pooling family: ``max_pool2d`` and ``avg_pool2d``.

Their records (``SPECS``), the strategies that draw their cases
(``max_pool2d_cases``, ``avg_pool2d_cases``, from ``pool_geometry``), their edge
examples and field bugs (``EXAMPLES``, built by ``pool``), and their classic
backward mistakes (``max_pool2d_scaffold`` and ``avg_pool2d_scaffold``, plain
loops over the windows as a student writes them, and the ``MISTAKES`` they
catalogue).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import (
    Geometry, _dtype_strategy, _input_hw, _label, _label_geometry, _values, pairs, recipes, reused, seeds, sometimes,
    spatial_sizes,
)
from oracle.cases.mistake import Mistake, _axes, _validated, mistakes
from oracle.cases.record import OpSpec, _differs, _flag, _pair
from refimpl.arguments import as_pair, window_count


#: largest input side a pooling case draws (a larger one only when the dilated kernel needs it)
POOL_MAX_SIDE = 12


# --------------------------------------------------------------------------- records


def _window_fan_in(case: Case) -> int:
    kh, kw = case.config["kernel_size"]
    return kh * kw + 1


def _pool_stride(case: Case) -> bool:
    """An explicit stride that is not the kernel size (the default)."""
    stride = case.config.get("stride")
    return stride is not None and _pair(stride) != _pair(case.config["kernel_size"])


SPECS: list[OpSpec] = [
    OpSpec(
        "max_pool2d",
        inputs=("x",),
        differentiable=("x",),
        config=("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
        linearized_in=("x",),
        fd_values={"x": "gapped"},
        fan_in=_window_fan_in,
        features=(
            ("stride != kernel_size", _pool_stride),
            ("padding", _differs("padding", 0)),
            ("dilation", _differs("dilation", 1)),
            ("ceil_mode", _flag("ceil_mode", True)),
        ),
    ),
    OpSpec(
        "avg_pool2d",
        inputs=("x",),
        differentiable=("x",),
        config=("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
        linear_in=("x",),
        fan_in=_window_fan_in,
        features=(
            ("stride != kernel_size", _pool_stride),
            ("padding", _differs("padding", 0)),
            ("ceil_mode", _flag("ceil_mode", True)),
            ("count_include_pad=False", _flag("count_include_pad", False)),
            ("divisor_override", _differs("divisor_override", None)),
        ),
    ),
]


# --------------------------------------------------------------------------- strategies


@reused
def pool_geometry(kind: str, max_side: int = POOL_MAX_SIDE) -> st.SearchStrategy[Geometry]:
    """The window geometry of a ``max_pool2d`` (``kind="max"``) or ``avg_pool2d`` (``kind="avg"``) call.

    Per axis: kernel 1-4; stride 1-4 or left to its default (the kernel);
    padding 0 to ``kernel // 2`` (torch rejects more, also when dilated: it
    checks the undilated kernel); dilation 1-3 for max pooling (avg_pool2d has
    none); ``ceil_mode`` on or off; an input length with at least one window.
    Never a window that reads padding only (see below).
    """
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    # A window made of padding only is left out on purpose:
    # * max_pool2d: torch returns -inf there (the max of nothing) and routes no
    #   gradient, although every argument passes its checks - pytorch/pytorch#114216.
    #   With dilation such a window happens even with pad <= kernel // 2: the taps
    #   can straddle a short input (input length 2, pad 1, kernel 2, dilation 3
    #   reads indices -1 and 2).
    # * avg_pool2d with count_include_pad=False: the divisor is the number of
    #   real elements, 0 for such a window, and torch divides by zero (NaN) -
    #   the bug of pytorch/pytorch#36977, fixed by #41368 by dropping the last
    #   ceil-mode window when it starts in the right padding. Without dilation,
    #   pad <= kernel // 2 plus that rule already exclude it, so for avg this
    #   filter is a guard that never rejects (tests/test_strategies.py checks).
    return _any_pool_geometry(kind, max_side).filter(Geometry.every_window_reads_input)


@st.composite
def _any_pool_geometry(draw, kind: str, max_side: int) -> Geometry:
    kernel = draw(pairs(1, 4))
    default_stride = draw(st.booleans())
    stride = kernel if default_stride else draw(pairs(1, 4))
    dilation = draw(pairs(1, 3)) if kind == "max" else (1, 1)
    if not default_stride and draw(st.booleans()):
        # overlapping windows on one axis (stride < kernel, at least two windows): where the backward must add.
        # Small inputs shrink to a single window per axis, so without this branch overlap is rare.
        axis = draw(st.integers(0, 1))
        k = draw(st.integers(2, 4))
        kernel = tuple(k if a == axis else kernel[a] for a in (0, 1))
        stride = tuple(draw(st.integers(1, k - 1)) if a == axis else stride[a] for a in (0, 1))
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        span = dilation[axis] * (kernel[axis] - 1) + 1 - 2 * padding[axis] + stride[axis]
        other = draw(spatial_sizes(kernel[1 - axis], padding[1 - axis], dilation[1 - axis], max_side))
        along = draw(st.integers(max(1, span), max(span, max_side)))
        input_hw = (along, other) if axis == 0 else (other, along)
    else:
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        input_hw = draw(_input_hw(kernel, padding, dilation, max_side))
    ceil_mode = draw(st.booleans())
    return Geometry(input_hw, kernel, stride, padding, dilation, ceil_mode, default_stride)


def _label_pool_geometry(op: str, g: Geometry) -> None:
    _label_geometry(op, g)
    if g.ceil_adds_window():
        _label("pool: ceil_mode adds a window")
    if g.overlapping():
        _label("pool: overlapping windows")
    if g.default_stride:
        _label("pool: default stride")


@reused
def _pool_batch() -> st.SearchStrategy[tuple[int, int]]:
    """(N, C) of a pooling input: 1-3 each."""
    return st.tuples(st.integers(1, 3), st.integers(1, 3))


def _max_has_tie(x: np.ndarray, g: Geometry) -> bool:
    """Some window's maximum is attained at two or more of its input elements."""
    if np.isnan(x).any():
        return False
    rows, cols = g.windows(0), g.windows(1)
    for r in rows:
        if len(r) * max(map(len, cols)) < 2:
            continue
        for c in cols:
            block = x[:, :, list(r)][:, :, :, list(c)].reshape(x.shape[0], x.shape[1], -1)
            if block.shape[-1] > 1 and ((block == block.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).any():
                return True
    return False


#: x of max_pool2d: ties often (the tie rule), NaN rarely
MAX_POOL_RECIPES = {"normal": 3, "ties": 5, "gapped": 2, "nan": 1}


@st.composite
def _max_pool2d_cases(draw, dtype: st.SearchStrategy[str]):
    g = draw(pool_geometry("max"))
    n, c = draw(_pool_batch())
    recipe = draw(recipes(MAX_POOL_RECIPES))
    case = Case(
        op="max_pool2d",
        shapes={"x": (n, c, *g.input_hw), "grad_output": (n, c, *g.output_hw)},
        config={
            "kernel_size": g.kernel,
            "stride": g.stride_arg,
            "padding": g.padding,
            "dilation": g.dilation,
            "ceil_mode": g.ceil_mode,
        },
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(x=recipe),
    )
    _label_pool_geometry("max_pool2d", g)
    if recipe == "nan":
        _label("max_pool2d: nan")
    elif _max_has_tie(case.arrays()["x"], g):
        _label("max_pool2d: ties")
    _label(f"dtype: {case.dtype}")
    return case


def max_pool2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``max_pool2d(x, kernel_size=, stride=, padding=, dilation=, ceil_mode=)`` case.

    Geometry from ``pool_geometry("max")`` (no all-padding window); x is
    ``(N, C, H, W)`` with N, C 1-3, filled ``"ties"`` often, ``"normal"`` or
    ``"gapped"`` otherwise and rarely ``"nan"``. ``dtype`` None draws it.
    """
    return _max_pool2d_cases(_dtype_strategy(dtype))


@st.composite
def _avg_pool2d_cases(draw, dtype: st.SearchStrategy[str]):
    g = draw(pool_geometry("avg"))
    n, c = draw(_pool_batch())
    count_include_pad = draw(st.booleans())
    divisor_override = draw(sometimes(st.integers(1, 5)))
    case = Case(
        op="avg_pool2d",
        shapes={"x": (n, c, *g.input_hw), "grad_output": (n, c, *g.output_hw)},
        config={
            "kernel_size": g.kernel,
            "stride": g.stride_arg,
            "padding": g.padding,
            "ceil_mode": g.ceil_mode,
            "count_include_pad": count_include_pad,
            "divisor_override": divisor_override,
        },
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    _label_pool_geometry("avg_pool2d", g)
    if divisor_override is not None:
        _label("avg_pool2d: divisor_override")
    elif any(g.padding):
        _label(f"avg_pool2d: padding {'counted in' if count_include_pad else 'left out of'} the divisor")
    if g.overhangs() and count_include_pad and divisor_override is None:
        _label("avg_pool2d: ceil window past the padding, divisor clipped")
    _label(f"dtype: {case.dtype}")
    return case


def avg_pool2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """An ``avg_pool2d(x, kernel_size=, stride=, padding=, ceil_mode=, count_include_pad=, divisor_override=)`` case.

    Geometry from ``pool_geometry("avg")``; x ``(N, C, H, W)`` with N, C 1-3,
    ``"normal"`` values; ``count_include_pad`` either way; ``divisor_override``
    ``None`` mostly, else 1-5. ``dtype`` None draws it.
    """
    return _avg_pool2d_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"max_pool2d": max_pool2d_cases, "avg_pool2d": avg_pool2d_cases}


# --------------------------------------------------------------------------- examples


def pool(op, x, kernel, *, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
         divisor_override=None, values=None, seed=0) -> Case:
    k, p, d = _pair(kernel), _pair(padding), _pair(dilation)
    s = k if stride is None else _pair(stride)
    out = tuple(window_count(x[2 + a], k[a], s[a], p[a], d[a] if op == "max_pool2d" else 1, ceil_mode) for a in (0, 1))
    config = {"kernel_size": k, "stride": None if stride is None else s, "padding": p}
    if op == "max_pool2d":
        config.update(dilation=d, ceil_mode=ceil_mode)
    else:
        config.update(ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)
    return Case(op, {"x": x, "grad_output": x[:2] + out}, config, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "max_pool2d": [
        pool("max_pool2d", (1, 1, 4, 4), 2),
        pool("max_pool2d", (1, 1, 4, 4), 2, values={"x": "ties"}),  # ties inside one window
        pool("max_pool2d", (1, 1, 6, 7), 1, stride=2, ceil_mode=True),  # #45357 extra -inf row
        # #114216 used (1, 1, 1, 224): on its H axis the only window reads padding alone (torch returns -inf and
        # its backward writes out of bounds); refimpl rejects that (tests/test_pooling.py). H = 3 keeps the W axis.
        pool("max_pool2d", (1, 1, 3, 224), 3, stride=6, padding=1, dilation=2, ceil_mode=True),
        pool("max_pool2d", (1, 1, 1, 8), 2, stride=2, padding=1, ceil_mode=True, values={"x": "ties"}),  # #114219
        pool("max_pool2d", (1, 1, 5, 5), 3, stride=2, padding=1, values={"x": "ties"}),  # #122024 shared arg-max adds
        pool("max_pool2d", (1, 1, 1, 1), 1),  # 1x1
        pool("max_pool2d", (2, 2, 5, 5), 2, stride=2, ceil_mode=True),  # a ceil_mode window hanging over the edge
    ],
    "avg_pool2d": [
        pool("avg_pool2d", (1, 16, 4, 4), (1, 2), stride=(2, 2), padding=(0, 1), ceil_mode=True),  # #36977 NaN
        pool("avg_pool2d", (1, 1, 5, 5), 2, stride=2, padding=1, ceil_mode=True),  # #198119 overhanging divisor
        pool("avg_pool2d", (1, 2, 4, 4), 2, stride=1, padding=1),  # #188344
        pool("avg_pool2d", (1, 1, 4, 4), 2, stride=1, padding=1, divisor_override=3),  # #62636
        pool("avg_pool2d", (1, 1, 5, 5), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        pool("avg_pool2d", (1, 1, 1, 1), 1),
    ],
}


# --------------------------------------------------------------------------- mistakes


def _batched(a: np.ndarray) -> np.ndarray:
    return a[np.newaxis] if a.ndim == 3 else a


def _pool_geometry(kernel_size, stride, padding, dilation):
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    return (
        kernel,
        kernel if stride is None else as_pair(stride, "stride", minimum=1),
        as_pair(padding, "padding", minimum=0),
        as_pair(dilation, "dilation", minimum=1),
    )


def max_pool2d_scaffold(
    grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
    tie="first", accumulate=True, padding_value=None, dilation_used="right", ceil_windows=True, stride_used="right",
):
    """max_pool2d_backward as a loop over the windows; the defaults are the right rule (torch's).

    tie            "first" maximum in row-major window order (right), "last", or "all" tied maxima
    accumulate     overlapping windows add their gradients (right) or overwrite (``=``)
    padding_value  None: padding is never a candidate (right); a number: padding competes with that value
    dilation_used  "right" or "ignored" (taps at i instead of i*d)
    stride_used    "right" or "ignored" (window p starting at p - pad instead of p*s - pad)
    ceil_windows   whether the windows ``ceil_mode`` adds receive their gradient
    """
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    _validated("max_pool2d", grad_output, [x], config)
    (kh, kw), (sh, sw), (ph, pw), d = _pool_geometry(kernel_size, stride, padding, dilation)
    dh, dw = _axes(d, dilation_used)
    floor_h = window_count(x.shape[-2], kh, sh, ph, d[0]) if not ceil_windows else None
    floor_w = window_count(x.shape[-1], kw, sw, pw, d[1]) if not ceil_windows else None
    sh, sw = _axes((sh, sw), stride_used)
    x4, g4 = _batched(x), _batched(grad_output)
    n, c, h, w = x4.shape
    ho, wo = g4.shape[2:]
    grad_x = np.zeros_like(x4)
    for p in range(ho if floor_h is None else min(ho, floor_h)):
        for q in range(wo if floor_w is None else min(wo, floor_w)):
            taps = [(p * sh - ph + i * dh, q * sw - pw + j * dw) for i in range(kh) for j in range(kw)]
            inside = [0 <= r < h and 0 <= s < w for r, s in taps]
            if padding_value is None:
                taps = [t for t, ok in zip(taps, inside) if ok]
                inside = [True] * len(taps)
            if not taps:
                continue
            values = np.stack(
                [x4[:, :, r, s] if ok else np.full((n, c), padding_value, x4.dtype) for (r, s), ok in zip(taps, inside)],
                axis=-1,
            )
            g = g4[:, :, p, q]
            if tie == "all":
                chosen = values == values.max(axis=-1, keepdims=True)
            else:
                best = np.full((n, c), -np.inf, dtype=x4.dtype)
                winner = np.zeros((n, c), dtype=np.intp)
                for t in range(len(taps)):
                    v = values[..., t]
                    replaces = (v > best) if tie == "first" else (v >= best)
                    replaces |= np.isnan(v)
                    winner = np.where(replaces, t, winner)
                    best = np.where(replaces, v, best)
                chosen = winner[..., np.newaxis] == np.arange(len(taps))
            for t, ((r, s), ok) in enumerate(zip(taps, inside)):
                if not ok:
                    continue
                here = chosen[..., t]
                if accumulate:
                    grad_x[:, :, r, s] += np.where(here, g, x4.dtype.type(0))
                else:
                    grad_x[:, :, r, s] = np.where(here, g, grad_x[:, :, r, s])
    return grad_x[0] if x.ndim == 3 else grad_x


def avg_pool2d_scaffold(
    grad_output, x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None,
    divisor="right", use_override=True, accumulate=True, padding_offset=True, stride_used="right",
):
    """avg_pool2d_backward as a loop over the windows; the defaults are the right rule (torch's).

    divisor         "right"; "include_pad_always" (count_include_pad ignored); "real_elements" (padding never
                    counted, whatever count_include_pad); "kernel_area" (kH*kW where count_include_pad
                    counts the window clipped to input + padding)
    use_override    whether divisor_override replaces the divisor
    accumulate      overlapping windows add their shares (right) or overwrite
    padding_offset  windows start at p*s - pad (right) or at p*s (the padding offset forgotten)
    stride_used     "right" or "ignored" (window p starting at p - pad instead of p*s - pad)
    """
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    _validated("avg_pool2d", grad_output, [x], config)
    (kh, kw), (sh, sw), (ph, pw), _ = _pool_geometry(kernel_size, stride, padding, 1)
    sh, sw = _axes((sh, sw), stride_used)
    x4, g4 = _batched(x), _batched(grad_output)
    h, w = x4.shape[2:]
    ho, wo = g4.shape[2:]
    grad_x = np.zeros_like(x4)
    for p in range(ho):
        for q in range(wo):
            h0, w0 = p * sh - ph, q * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            r0, r1, c0, c1 = max(h0, 0), min(h1, h), max(w0, 0), min(w1, w)
            if divisor_override is not None and use_override:
                div = divisor_override
            elif (count_include_pad and divisor != "real_elements") or divisor == "include_pad_always":
                div = kh * kw if divisor == "kernel_area" else (h1 - h0) * (w1 - w0)
            else:
                div = (r1 - r0) * (c1 - c0)
            share = (g4[:, :, p, q] / x4.dtype.type(div))[:, :, np.newaxis, np.newaxis]
            if not padding_offset:
                r0, r1 = p * sh, min(p * sh + kh, h)
                c0, c1 = q * sw, min(q * sw + kw, w)
            if r1 <= r0 or c1 <= c0:
                continue
            if accumulate:
                grad_x[:, :, r0:r1, c0:c1] += share
            else:
                grad_x[:, :, r0:r1, c0:c1] = share
    return grad_x[0] if x.ndim == 3 else grad_x


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"max_pool2d": max_pool2d_scaffold, "avg_pool2d": avg_pool2d_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- max_pool2d
    ("maxpool_ties_all", "max_pool2d",
     "every tied maximum of a window receives the gradient instead of only the first (torch routes it to one element)",
     dict(tie="all")),
    ("maxpool_last_max", "max_pool2d",
     "the last maximum of a tied window receives the gradient instead of the first (>= instead of > in the scan)",
     dict(tie="last")),
    ("maxpool_overlap_overwrite", "max_pool2d",
     "overlapping windows overwrite the gradient of a shared arg-max (grad_x[argmax] = g) instead of accumulating (+=)",
     dict(accumulate=False)),
    ("maxpool_zero_padding", "max_pool2d",
     "padding taken as zeros instead of -inf: in a padded window whose inputs are all negative, the padding wins and no input gets the gradient",
     dict(padding_value=0.0)),
    ("maxpool_dilation_ignored", "max_pool2d",
     "the backward ignores the dilation: each window's arg-max searched among adjacent elements (taps at i instead of i*d)",
     dict(dilation_used="ignored")),
    ("maxpool_stride_ignored", "max_pool2d",
     "the backward ignores the stride: window (p, q) taken at (p, q) - pad instead of (p*s, q*s) - pad when routing the gradient",
     dict(stride_used="ignored")),
    ("maxpool_ceil_window_ignored", "max_pool2d",
     "the windows ceil_mode adds at the end get no gradient: the backward loops over the floor-mode windows only",
     dict(ceil_windows=False)),
    # ----------------------------------------------------------------- avg_pool2d
    ("avgpool_count_include_pad_ignored", "avg_pool2d",
     "count_include_pad ignored: padded windows always divided by their size including padding, even with count_include_pad=False",
     dict(divisor="include_pad_always")),
    ("avgpool_padding_never_counted", "avg_pool2d",
     "padding never counted in the divisor: the number of real elements used even with count_include_pad=True (the default)",
     dict(divisor="real_elements")),
    ("avgpool_ceil_full_kernel_divisor", "avg_pool2d",
     "a ceil_mode window overhanging the padding divided by the full kernel area kH*kW instead of its clipped size",
     dict(divisor="kernel_area")),
    ("avgpool_divisor_override_ignored", "avg_pool2d",
     "divisor_override ignored in the backward: each window's share divided by the window size instead",
     dict(use_override=False)),
    ("avgpool_overlap_overwrite", "avg_pool2d",
     "overlapping windows overwrite each other's share (grad_x[window] = g / n) instead of accumulating (+=)",
     dict(accumulate=False)),
    ("avgpool_stride_ignored", "avg_pool2d",
     "the backward ignores the stride: window (p, q) spread over rows from p - pad instead of p*s - pad",
     dict(stride_used="ignored")),
    ("avgpool_padding_offset_ignored", "avg_pool2d",
     "the padding offset forgotten in the backward: window (p, q) spread over rows from p*s instead of p*s - pad",
     dict(padding_offset=False)),
])
