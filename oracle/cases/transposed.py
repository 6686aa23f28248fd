"""The transposed convolution family: ``conv_transpose2d``.

Its record, strategy, examples and mistakes. The transposed convolution is the
adjoint of ``conv2d(., W, s, p, d, groups)`` on an input of its output's size, so its
backward is conv2d's forward (grad_x) and conv2d's grad_weight rule with x and G
exchanged; the scaffold is built from the same steps as conv2d's
(``oracle.cases.convolution``), with that adjoint conv2d's configuration.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _label, pairs, reused, seeds
from oracle.cases.convolution import CONV_FEATURES, _conv_grad_w, _fit, _stride1_gradient, conv_channels, label_filter
from oracle.cases.mistake import Mistake, mistakes
from oracle.cases.record import OpSpec, _differs
from refimpl.arguments import check_grad_output, window_count
from refimpl.convolution import ConvConfig
from refimpl.correlation import correlate, flip, pad
from refimpl.transposed import conv_transpose2d_config

#: largest input side of a conv_transpose2d case (its output is up to about stride times larger)
TRANSPOSED_MAX_SIDE = 6


def output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int, dilation: int) -> int:
    """The transposed convolution's output length on one axis: ``(size - 1)*s - 2p + d(k - 1) + op + 1``."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


# --------------------------------------------------------------------------- record


def _transposed_fan_in(case: Case) -> int:
    """The forward's ``Cg*kH*kW + 1`` (Cg = C_in / groups, the bias), grad_x's ``(C_out/groups)*kH*kW``
    (conv2d's forward of G), grad_weight's ``N*H*W``, grad_bias's ``N*Ho*Wo``."""
    n, c_in, h, w = case.shapes["x"]
    _, og, kh, kw = case.shapes["weight"]
    cg = c_in // case.config.get("groups", 1)
    ho, wo = case.shapes["grad_output"][2:]
    return max(cg * kh * kw + 1, og * kh * kw, n * h * w, n * ho * wo)


SPECS: list[OpSpec] = [
    OpSpec(
        "conv_transpose2d",
        inputs=("x", "weight", "bias"),
        differentiable=("x", "weight", "bias"),
        config=("stride", "padding", "output_padding", "groups", "dilation"),
        optional=("bias",),
        linear_in=("x", "weight"),
        fan_in=_transposed_fan_in,
        features=CONV_FEATURES + (("output_padding", _differs("output_padding", 0)),),
    ),
]


# --------------------------------------------------------------------------- strategy


@reused
@st.composite
def _axis(draw, kernel: int, stride: int, padding: int, dilation: int, max_side: int) -> tuple[int, int]:
    """``(output_padding, input length)`` of one axis: op in ``[0, max(s, d) - 1]`` (torch's rule), the length
    from the smallest with an output of at least 1 up to ``max_side``."""
    op = draw(st.integers(0, max(stride, dilation) - 1))
    short = 2 * padding - dilation * (kernel - 1) - op  # (H - 1)*s must reach it
    low = max(1, -(-short // stride) + 1)
    return op, draw(st.integers(low, max(low, max_side)))


@st.composite
def _conv_transpose2d_cases(draw, dtype: st.SearchStrategy[str]):
    kernel = draw(pairs(1, 4))
    stride = draw(pairs(1, 3))
    padding = draw(pairs(0, 2))
    dilation = draw(pairs(1, 3))
    axes = [draw(_axis(kernel[a], stride[a], padding[a], dilation[a], TRANSPOSED_MAX_SIDE)) for a in (0, 1)]
    output_padding = tuple(op for op, _ in axes)
    in_hw = tuple(size for _, size in axes)
    groups, c_in, c_out = draw(conv_channels(3, 3))
    n = draw(st.integers(1, 3))
    has_bias = draw(st.booleans())
    out_hw = tuple(output_size(in_hw[a], kernel[a], stride[a], padding[a], output_padding[a], dilation[a]) for a in (0, 1))
    case = Case(
        op="conv_transpose2d",
        shapes={
            "x": (n, c_in, *in_hw),
            "weight": (c_in, c_out // groups, *kernel),
            "bias": (c_out,) if has_bias else None,
            "grad_output": (n, c_out, *out_hw),
        },
        config={"stride": stride, "padding": padding, "output_padding": output_padding, "groups": groups, "dilation": dilation},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    op = "conv_transpose2d"
    if any(output_padding):
        _label(f"{op}: output_padding>0")
        if any(o >= s for o, s in zip(output_padding, stride) if o):
            _label(f"{op}: output_padding >= stride (dilation > stride)")
        if any(0 < o <= p for o, p in zip(output_padding, padding)):
            _label(f"{op}: output_padding rows reached by the kernel")
    if any(s > 1 and d > 1 for s, d in zip(stride, dilation)):
        _label(f"{op}: stride>1 & dilation>1")
    if any(p > d * (k - 1) for p, d, k in zip(padding, dilation, kernel)):
        _label(f"{op}: padding crops past the kernel's reach")
    if 1 in out_hw:
        _label(f"{op}: output 1 on some axis")
    label_filter(case, stride, kernel, groups, c_in, has_bias)
    return case


def conv_transpose2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``conv_transpose2d(x, weight, bias, stride=, padding=, output_padding=, groups=, dilation=)`` case.

    Each axis drawn independently: kernel 1-4, stride 1-3, padding 0-2, dilation 1-3,
    output_padding 0 to ``max(stride, dilation) - 1`` (torch rejects more: it requires
    ``output_padding < stride or < dilation``; with ``dilation > stride`` it reaches the
    stride), input sides up to 6, from the smallest whose output
    ``(H - 1)*s - 2p + d(k - 1) + op + 1`` is at least 1 (torch rejects an empty output).
    Strides wider than the kernel (output positions no input reaches), padding that crops
    more than the kernel's reach and output_padding rows the kernel does reach all come up.
    Batch 1-3; groups 1-3 with 1-3 channels per group in and out; ``weight``
    ``(C_in, C_out // groups, kH, kW)``; bias ``(C_out,)`` or ``None``; values ``"normal"``.
    ``dtype`` None draws it.
    """
    return _conv_transpose2d_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"conv_transpose2d": conv_transpose2d_cases}


# --------------------------------------------------------------------------- examples


def transposed(x, weight, *, bias=True, stride=1, padding=0, output_padding=0, groups=1, dilation=1, values=None, seed=0) -> Case:
    """A conv_transpose2d case: ``x`` (N, C_in, H, W), ``weight`` (C_in, C_out // groups, kH, kW)."""
    s, p, op, d = (v if isinstance(v, tuple) else (v, v) for v in (stride, padding, output_padding, dilation))
    out = tuple(output_size(x[2 + a], weight[2 + a], s[a], p[a], op[a], d[a]) for a in (0, 1))
    c_out = weight[1] * groups
    shapes = {"x": x, "weight": weight, "bias": (c_out,) if bias else None, "grad_output": (x[0], c_out) + out}
    config = {"stride": s, "padding": p, "output_padding": op, "groups": groups, "dilation": d}
    return Case("conv_transpose2d", shapes, config, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "conv_transpose2d": [
        transposed((1, 1, 3, 3), (1, 1, 3, 3)),  # the plain adjoint of a 3x3 convolution
        transposed((1, 1, 1, 1), (1, 1, 1, 1)),  # 1x1 input and kernel
        transposed((1, 2, 3, 3), (2, 3, 3, 3), stride=2, padding=1, output_padding=1),  # the 2x upsampling layer
        transposed((2, 4, 3, 2), (4, 2, 2, 3), stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2),
        transposed((1, 1, 3, 3), (1, 1, 2, 2), dilation=3, output_padding=2),  # output_padding >= stride: d > s
        transposed((1, 2, 2, 2), (2, 1, 1, 1), stride=3, groups=2, bias=False),  # stride > kernel, depthwise
        transposed((1, 1, 4, 4), (1, 1, 2, 2), stride=2, padding=2),  # padding crops past the kernel's reach
    ],
}


# --------------------------------------------------------------------------- mistakes


def _adjoint_config(cfg) -> ConvConfig:
    """The conv2d whose adjoint the transposed convolution is: input of the transposed output's size, same s, p, d, groups."""
    conv_out = tuple(
        window_count(cfg.out_hw[a], cfg.kernel[a], cfg.stride[a], cfg.padding[a], cfg.dilation[a]) for a in (0, 1)
    )  # H + op // s: x's H, plus the rows pad_H appends when op >= s
    return ConvConfig(cfg.stride, cfg.padding, cfg.dilation, cfg.groups, cfg.kernel, cfg.out_hw, conv_out, cfg.dtype)


def conv_transpose2d_scaffold(
    grad_output, x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
    grad_x_from="full", crop_at="end", flipped=False, grouped_x=True, weight_channels="transpose",
):
    """conv_transpose2d_backward from conv2d's steps, each of which a mistake can get wrong; the defaults are the right rule.

    grad_x  = conv2d(G, W, s, p, d, groups)[:, :, :H, :W]         (G's output_padding rows included)
    grad_W  = conv2d's grad_weight rule, input G, output gradient x (dilated by s to the stride-1 size)
    grad_b  = sum of G over N, Ho, Wo
    """
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    check_grad_output(grad_output, (x.shape[0], weight.shape[1] * cfg.groups) + cfg.out_hw, cfg.dtype)
    g = grad_output
    if grad_x_from == "dropped":  # output_padding's rows taken for padding that carries no gradient
        g = g[:, :, : g.shape[2] - cfg.output_padding[0], : g.shape[3] - cfg.output_padding[1]]
    w, groups_x = weight, cfg.groups
    if not grouped_x:  # every input channel reads every output channel through its group's filter
        w, groups_x = np.tile(weight, (1, cfg.groups, 1, 1)), 1
    if flipped:
        w = flip(w)
    full = correlate(pad(g, cfg.padding), w, stride=cfg.stride, dilation=cfg.dilation, groups=groups_x)
    h, wd = cfg.in_hw
    if crop_at == "end":
        grad_x = _fit(full, (h, wd))
    else:  # "start": the extra rows (op >= s) removed from the top/left: the rows misaligned by op // s
        grad_x = full[:, :, full.shape[2] - h :, full.shape[3] - wd :]
    adjoint = _adjoint_config(cfg)
    grad_w = _conv_grad_w(
        _stride1_gradient(x, adjoint, "right"), grad_output, weight, adjoint,
        dilation="right", channels=weight_channels, flipped=False,
    )
    grad_b = None if bias is None else grad_output.sum(axis=(0, 2, 3))
    return np.ascontiguousarray(grad_x), grad_w, grad_b


#: op -> its scaffold (defaults = the right rule)
SCAFFOLDS = {"conv_transpose2d": conv_transpose2d_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    ("conv_transpose2d_output_padding_dropped", "conv_transpose2d",
     "grad_x from G with its output_padding rows/columns cut off, as if they carried no gradient "
     "(they do whenever the kernel reaches them: output_padding <= padding)",
     dict(grad_x_from="dropped")),
    ("conv_transpose2d_grad_x_cropped_at_start", "conv_transpose2d",
     "grad_x = conv2d(G, W) cropped to H x W from the bottom/right instead of the top/left: misaligned by output_padding // stride "
     "rows when output_padding >= stride (dilation > stride)",
     dict(crop_at="start")),
    ("conv_transpose2d_grad_x_flipped", "conv_transpose2d",
     "grad_x from the filter rotated by 180 degrees, as in conv2d's grad_x rule: the transposed convolution's grad_x is conv2d's forward, unflipped",
     dict(flipped=True)),
    ("conv_transpose2d_grad_x_groups_ignored", "conv_transpose2d",
     "grad_x ignoring groups: every input channel reads every output channel's gradient through its group's filter",
     dict(grouped_x=False)),
    ("conv_transpose2d_grad_weight_channels_reshaped", "conv_transpose2d",
     "grad_weight with the C_in/C_out roles not exchanged: the per-group (C_out/g, C_in/g) result reshaped to (C_in/g, C_out/g) instead of transposed",
     dict(weight_channels="reshape")),
])
