"""The convolution family: ``conv2d``.

Everything the harness knows about it, in one place: its record (``SPECS``),
the strategy that draws its cases (``conv2d_cases``, from ``conv_geometry`` and
``conv_channels``), its edge examples and field bugs (``EXAMPLES``, built by
``conv``), and its classic backward mistakes (``conv2d_scaffold``, written from
refimpl's named steps, and the ``MISTAKES`` it catalogues).

The building blocks are stated for any spatial rank (``conv_fan_in``, ``conv_geometry``,
``conv_cases``, ``conv``, ``conv_scaffold``): ``oracle.cases.convolution_nd`` draws
conv1d and conv3d with them.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import Geometry, _dtype_strategy, _input_hw, _label, _label_geometry, reused, seeds, tuples
from oracle.cases.mistake import Mistake, _axes, mistakes
from oracle.cases.record import OpSpec, _differs, _no
from refimpl.arguments import check_grad_output, window_count
from refimpl.convolution import ConvConfig, conv_config
from refimpl.correlation import correlate, crop, dilate, flip, pad, swap_filter_channels


#: largest input side a convolution case draws (a larger one only when the dilated kernel needs it)
CONV_MAX_SIDE = 16


# --------------------------------------------------------------------------- record


def conv_fan_in(case: Case) -> int:
    """The longest sum of a convolution of any rank: the forward's ``Cg*prod(k) + 1`` (the bias), dX's
    ``Og*prod(k)``, dW's (and db's) ``N*prod(out)``."""
    n = case.shapes["x"][0]
    c_out, cg, *kernel = case.shapes["weight"]
    taps = int(np.prod(kernel))
    og = c_out // case.config.get("groups", 1)
    return max(cg * taps + 1, og * taps, n * int(np.prod(case.shapes["grad_output"][2:])))


#: the configuration features of a convolution of any rank
CONV_FEATURES = (
    ("groups", lambda case: case.config.get("groups", 1) > 1),
    ("dilation", _differs("dilation", 1)),
    ("stride", _differs("stride", 1)),
    ("padding", _differs("padding", 0)),
    ("bias=None", _no("bias")),
)


SPECS: list[OpSpec] = [
    OpSpec(
        "conv2d",
        inputs=("x", "weight", "bias"),
        differentiable=("x", "weight", "bias"),
        config=("stride", "padding", "dilation", "groups"),
        optional=("bias",),
        linear_in=("x", "weight"),
        fan_in=conv_fan_in,
        features=CONV_FEATURES,
    ),
]


# --------------------------------------------------------------------------- strategy


@reused
@st.composite
def conv_geometry(
    draw, max_side: int = CONV_MAX_SIDE, rank: int = 2,
    max_kernel: int = 5, max_stride: int = 4, max_padding: int = 3, max_dilation: int = 3,
) -> Geometry:
    """The window geometry of a convolution of spatial rank ``rank`` (conv2d's by default), each axis drawn independently.

    kernel 1-``max_kernel`` (5), stride 1-``max_stride`` (4), padding 0-``max_padding`` (3),
    dilation 1-``max_dilation`` (3), and an input length (``spatial_sizes``, up to
    ``max_side``) with at least one output position. Output lengths of exactly 1, dilated
    kernels wider than the unpadded input, strides larger than the kernel and strides that
    leave rows unread at the end all come up often.
    """
    kernel = draw(tuples(rank, 1, max_kernel))
    stride = draw(tuples(rank, 1, max_stride))
    padding = draw(tuples(rank, 0, max_padding))
    dilation = draw(tuples(rank, 1, max_dilation))
    input_hw = draw(_input_hw(kernel, padding, dilation, max_side))
    return Geometry(input_hw, kernel, stride, padding, dilation)


@reused
@st.composite
def conv_channels(draw, max_groups: int = 4, max_per_group: int = 3) -> tuple[int, int, int]:
    """``(groups, in_channels, out_channels)``: groups 1-``max_groups``, each group 1-``max_per_group`` channels in and out."""
    groups = draw(st.integers(1, max_groups))
    cg = draw(st.integers(1, max_per_group))
    og = draw(st.integers(1, max_per_group))
    return groups, groups * cg, groups * og


@st.composite
def conv_cases(draw, op: str, dtype: st.SearchStrategy[str], geometry: st.SearchStrategy[Geometry],
               channels: st.SearchStrategy[tuple[int, int, int]], max_batch: int = 4):
    """A case of convolution ``op`` (conv1d, conv2d or conv3d: the rank is the geometry's), corners labelled."""
    g = draw(geometry)
    groups, c_in, c_out = draw(channels)
    n = draw(st.integers(1, max_batch))
    has_bias = draw(st.booleans())
    case = Case(
        op=op,
        shapes={
            "x": (n, c_in, *g.input_hw),
            "weight": (c_out, c_in // groups, *g.kernel),
            "bias": (c_out,) if has_bias else None,
            "grad_output": (n, c_out, *g.output_hw),
        },
        config={"stride": g.stride, "padding": g.padding, "dilation": g.dilation, "groups": groups},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    _label_geometry(op, g)
    label_filter(case, g.stride, g.kernel, groups, c_in, has_bias)
    return case


def label_filter(case: Case, stride, kernel, groups: int, c_in: int, has_bias: bool) -> None:
    """The corners a convolution's filter and channels reach, as Hypothesis events (any rank, transposed too)."""
    op = case.op
    if any(s > k for s, k in zip(stride, kernel)):
        _label(f"{op}: stride > kernel")
    if groups > 1:
        _label(f"{op}: groups>1")
        if c_in == groups:
            _label(f"{op}: depthwise")
    if not has_bias:
        _label(f"{op}: no bias")
    _label(f"dtype: {case.dtype}")


def conv2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``conv2d(x, weight, bias, stride=, padding=, dilation=, groups=)`` case.

    Geometry from ``conv_geometry``; batch 1-4; channels from ``conv_channels``
    (``weight`` is ``(C_out, C_in // groups, kh, kw)``); bias ``(C_out,)`` or
    ``None``; all values ``"normal"``. ``dtype`` None draws it.
    """
    return conv_cases("conv2d", _dtype_strategy(dtype), conv_geometry(), conv_channels())


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"conv2d": conv2d_cases}


# --------------------------------------------------------------------------- examples


def _spatial(value, rank: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def conv(x, weight, *, bias=True, stride=1, padding=0, dilation=1, groups=1, values=None, seed=0) -> Case:
    """A convolution case of x's rank (``x`` (N, C, *size): conv1d, conv2d or conv3d)."""
    rank = len(x) - 2
    s, p, d = _spatial(stride, rank), _spatial(padding, rank), _spatial(dilation, rank)
    out = tuple(window_count(x[2 + a], weight[2 + a], s[a], p[a], d[a]) for a in range(rank))
    shapes = {"x": x, "weight": weight, "bias": (weight[0],) if bias else None, "grad_output": (x[0], weight[0]) + out}
    config = {"stride": s, "padding": p, "dilation": d, "groups": groups}
    return Case(f"conv{rank}d", shapes, config, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "conv2d": [
        conv((1, 1, 6, 6), (1, 1, 3, 3)),  # the derivation's worked example: 6x6 input, 3x3 filter
        conv((1, 1, 1, 1), (1, 1, 1, 1)),  # 1x1 input and kernel
        conv((1, 2, 3, 3), (3, 2, 3, 3)),  # output of size 1
        conv((1, 1, 2, 2), (1, 1, 4, 4), padding=1),  # kernel wider than the unpadded input
        conv((1, 1, 7, 7), (1, 1, 3, 3), stride=2),  # the stride > 1 derivation
        conv((1, 24, 6, 6), (24, 1, 3, 3), stride=2, padding=1, groups=24, values={"x": "ones"}),  # #50042 depthwise dW
        conv((1, 9, 32, 32), (3, 9, 5, 5), stride=3, padding=1, values={"x": "ones"}),  # #25101 grad_x at the last columns
        conv((2, 4, 5, 5), (6, 2, 3, 3), groups=2),  # #51430 grouped weight gradients
        conv((1, 2, 9, 9), (2, 2, 1, 1), stride=4, padding=2),  # 1x1 kernel, stride >> 1, padded input
        conv((1, 2, 8, 9), (2, 2, 3, 2), stride=(3, 2), padding=(1, 0), dilation=(2, 3)),  # every axis different
    ],
}


# --------------------------------------------------------------------------- mistakes


def _fit(a: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``a`` cut or zero-extended at the end of its last ``len(size)`` axes to exactly ``size``: how a mistake is made to fit."""
    rank = len(size)
    out = np.zeros(a.shape[: a.ndim - rank] + tuple(size), dtype=a.dtype)
    common = (...,) + tuple(slice(0, min(n, m)) for n, m in zip(size, a.shape[a.ndim - rank :]))
    out[common] = a[common]
    return out


def _stride1_gradient(grad_output: np.ndarray, cfg: ConvConfig, mode: str) -> np.ndarray:
    """The stride-1 output gradient G1 the rule works from.

    right    dilate(G, s): s - 1 zeros between neighbours, zeros after the last
    dense    G placed as it is (the strided subsampling ignored), zero-extended to the stride-1 size
    swapped  G dilated by the stride with its axes reversed ((s_w, s_h) in 2-D), fitted to the stride-1 size
    """
    size = cfg.stride1_out_size
    if mode == "right":
        return dilate(grad_output, cfg.stride, size=size)
    if mode == "dense":
        return _fit(grad_output, size)
    return _fit(dilate(grad_output, _axes(cfg.stride, mode)), size)


def _conv_grad_x(g1, weight, cfg: ConvConfig, *, flipped, crop_at, dilation, filter_channels, grouped, padded_by) -> np.ndarray:
    """dX = crop(correlate(pad(G1, d(k-1)), flip(swap(W)), dilation=d, groups), p), each step switchable."""
    kernel = weight.shape[2:]
    rank = len(kernel)
    d = _axes(cfg.dilation, dilation)
    groups = cfg.groups
    w = weight
    if not grouped:  # every output channel read back into every input channel: the group filter tiled over all groups
        w = np.tile(weight, (1, groups) + (1,) * rank)
        groups = 1
    if filter_channels == "swap":
        w = swap_filter_channels(w, groups)
    else:  # a reshape instead of exchanging the in/out roles: right shape, scrambled filters
        out_ch, cg = w.shape[:2]
        w = np.ascontiguousarray(w).reshape(groups * cg, out_ch // groups, *kernel)
    if flipped:
        w = flip(w)
    full = tuple(d[a] * (kernel[a] - 1) for a in range(rank))
    size, padding = cfg.in_size, cfg.padding
    if padded_by == "forward":  # "same" thinking: G padded by the forward's p, the result taken as dX uncropped
        gp = pad(g1, padding)
        gp = _fit(gp, tuple(max(gp.shape[2 + a], full[a] + 1) for a in range(rank)))  # at least one window
        return _fit(correlate(gp, w, dilation=d, groups=groups), size)
    padded = _fit(correlate(pad(g1, full), w, dilation=d, groups=groups), tuple(n + 2 * p for n, p in zip(size, padding)))
    if crop_at == "both":
        out = crop(padded, padding)
    elif crop_at == "end":  # the padding "removed" by keeping the top-left H x W: the leading padding stays in
        out = padded[(...,) + tuple(slice(0, n) for n in size)]
    else:  # "start": all 2p rows/columns removed from the top/left
        out = padded[(...,) + tuple(slice(2 * p, None) for p in padding)]
    return np.ascontiguousarray(out)


def _conv_grad_w(g1, x, weight, cfg: ConvConfig, *, dilation, channels, flipped) -> np.ndarray:
    """dW[o, c] = correlate(Xpad[:, c] as a batch, G1[:, o] as the filter, stride=d), per group, each step switchable."""
    out_ch, cg, *kernel = weight.shape
    og = out_ch // cfg.groups
    d = _axes(cfg.dilation, dilation)
    xp = pad(x, cfg.padding).swapaxes(0, 1)
    gt = g1.swapaxes(0, 1)
    per_group = []
    for x_grp, g_grp in zip(np.split(xp, cfg.groups), np.split(gt, cfg.groups)):
        r = _fit(correlate(x_grp, np.ascontiguousarray(g_grp), stride=d), tuple(kernel))  # (Cg, Og, *k)
        if channels == "transpose":
            r = r.swapaxes(0, 1)
        else:  # a reshape where the in/out channel axes had to be exchanged
            r = np.ascontiguousarray(r).reshape(og, cg, *kernel)
        per_group.append(flip(r) if flipped else r)
    return np.ascontiguousarray(np.concatenate(per_group, axis=0))


def conv_scaffold(
    grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, rank=2,
    flipped=True, stride_x="right", stride_w="right", crop_at="both", dilation_x="right", dilation_w="right",
    bias_reduce="sum", weight_channels="transpose", filter_channels="swap", grouped_x=True, grad_x_padding="full",
    weight_flipped=False,
):
    """conv{rank}d_backward from refimpl's steps, each of which a mistake can get wrong; the defaults are the right rule."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups, rank=rank, what=f"conv{rank}d")
    check_grad_output(grad_output, (x.shape[0], weight.shape[0]) + cfg.out_size, cfg.dtype)
    grad_x = _conv_grad_x(
        _stride1_gradient(grad_output, cfg, stride_x), weight, cfg,
        flipped=flipped, crop_at=crop_at, dilation=dilation_x, filter_channels=filter_channels, grouped=grouped_x,
        padded_by=grad_x_padding,
    )
    grad_weight = _conv_grad_w(
        _stride1_gradient(grad_output, cfg, stride_w), x, weight, cfg,
        dilation=dilation_w, channels=weight_channels, flipped=weight_flipped,
    )
    axes = (0,) + tuple(range(2, 2 + rank))
    if bias is None:
        grad_bias = None
    elif bias_reduce == "sum":
        grad_bias = grad_output.sum(axis=axes)
    else:
        grad_bias = grad_output.mean(axis=axes)
    return grad_x, grad_weight, grad_bias


def scaffold_of_rank(rank: int):
    """``conv_scaffold`` of spatial rank ``rank``: the scaffold of conv1d, conv2d or conv3d."""

    def scaffold(grad_output, x, weight, bias=None, **config_and_knobs):
        return conv_scaffold(grad_output, x, weight, bias, rank=rank, **config_and_knobs)

    scaffold.__name__ = scaffold.__qualname__ = f"conv{rank}d_scaffold"
    scaffold.__doc__ = f"conv{rank}d_backward from refimpl's steps (``conv_scaffold`` of rank {rank}); the defaults are the right rule."
    return scaffold


conv2d_scaffold = scaffold_of_rank(2)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"conv2d": conv2d_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    ("conv_unflipped_filter", "conv2d",
     "the filter not flipped for grad_x: G correlated with W itself instead of the 180-degree rotated flip(W)",
     dict(flipped=False)),
    ("conv_grad_x_stride_not_dilated", "conv2d",
     "grad_x from the output gradient not dilated by the stride: G used densely, as if the stride were 1 (strided subsampling ignored)",
     dict(stride_x="dense")),
    ("conv_grad_weight_stride_not_dilated", "conv2d",
     "grad_weight from the output gradient not dilated by the stride: G correlated with X densely, as if the stride were 1",
     dict(stride_w="dense")),
    ("conv_padding_cropped_at_end", "conv2d",
     "the padding not cropped from grad_x, just cut off at the end: the top-left H x W of the padded gradient, leading padding kept",
     dict(crop_at="end")),
    ("conv_padding_cropped_at_start", "conv2d",
     "the padding cropped at the wrong offset: all 2p rows/columns removed from the top/left of grad_x instead of p from each side",
     dict(crop_at="start")),
    ("conv_stride_axes_swapped", "conv2d",
     "the stride used on the wrong axes in the backward: G dilated by (s_w, s_h) instead of (s_h, s_w)",
     dict(stride_x="swapped", stride_w="swapped")),
    ("conv_dilation_axes_swapped", "conv2d",
     "the dilation used on the wrong axes in the backward: taps at (i*d_w, j*d_h) instead of (i*d_h, j*d_w)",
     dict(dilation_x="swapped", dilation_w="swapped")),
    ("conv_bias_grad_mean", "conv2d",
     "the bias gradient averaged over N, H, W instead of summed",
     dict(bias_reduce="mean")),
    ("conv_grad_weight_channels_transposed", "conv2d",
     "grad_weight with in/out channels transposed within each group: the (C_in/g, C_out/g) result reshaped to (C_out/g, C_in/g) instead of transposed",
     dict(weight_channels="reshape")),
    ("conv_grad_x_channels_not_swapped", "conv2d",
     "grad_x with the filter's in/out channel roles not exchanged: W reshaped to (C_in, C_out/g) instead of transposed within each group",
     dict(filter_channels="reshape")),
    ("conv_grad_x_groups_ignored", "conv2d",
     "grad_x ignoring groups: every output channel's gradient sent back to every input channel through the group filter",
     dict(grouped_x=False)),
    ("conv_grad_x_dilation_ignored", "conv2d",
     "grad_x ignoring the dilation: the flipped filter applied undilated (taps at i instead of i*d)",
     dict(dilation_x="ignored")),
    ("conv_grad_weight_dilation_ignored", "conv2d",
     "grad_weight ignoring the dilation: the filter taps read at offsets i instead of i*d",
     dict(dilation_w="ignored")),
    ("conv_grad_x_padded_by_p", "conv2d",
     "grad_x as a 'same' convolution: G padded by the forward's p instead of d(k-1), nothing cropped (right only when p = d(k-1)/2)",
     dict(grad_x_padding="forward")),
    ("conv_grad_weight_flipped", "conv2d",
     "grad_weight rotated by 180 degrees: X and G convolved where they must be correlated",
     dict(weight_flipped=True)),
])
