"""The N-d convolution family: ``conv1d`` and ``conv3d``, the rank-1 and rank-3 cases of conv2d.

Their records, strategies, examples and mistakes are conv2d's building blocks
(``oracle.cases.convolution``) at another spatial rank: the same fan-in, features,
geometry, case drawing, example builder and scaffold, so that what is said of
conv2d's rule there is said once for every rank.
"""

from __future__ import annotations

from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy
from oracle.cases.convolution import (
    CONV_FEATURES, conv, conv_cases, conv_channels, conv_fan_in, conv_geometry, scaffold_of_rank,
)
from oracle.cases.mistake import Mistake, mistakes
from oracle.cases.record import OpSpec

#: largest input length of a conv1d case (a longer one only when the dilated kernel needs it)
CONV1D_MAX_SIDE = 16
#: largest input side of a conv3d case: 4 (5 when a dilated kernel needs it); the volume stays at most 125
CONV3D_MAX_SIDE = 4


# --------------------------------------------------------------------------- records


SPECS: list[OpSpec] = [
    OpSpec(
        name,
        inputs=("x", "weight", "bias"),
        differentiable=("x", "weight", "bias"),
        config=("stride", "padding", "dilation", "groups"),
        optional=("bias",),
        linear_in=("x", "weight"),
        fan_in=conv_fan_in,
        features=CONV_FEATURES,
    )
    for name in ("conv1d", "conv3d")
]


# --------------------------------------------------------------------------- strategies


def conv1d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``conv1d(x, weight, bias, stride=, padding=, dilation=, groups=)`` case, configuration as 1-tuples.

    x ``(N, C_in, L)``: conv2d's geometry on one axis (``conv_geometry`` of rank 1: kernel
    1-5, stride 1-4, padding 0-3, dilation 1-3, L up to 16, at least one output position,
    so strides wider than the kernel and dilated kernels wider than the unpadded input come
    up often; a kernel wider than the *padded* input is what torch rejects, never drawn);
    batch 1-4; channels from ``conv_channels`` (groups 1-4, depthwise included); ``weight``
    ``(C_out, C_in // groups, k)``; bias ``(C_out,)`` or ``None``; values ``"normal"``.
    ``dtype`` None draws it.
    """
    return conv_cases("conv1d", _dtype_strategy(dtype), conv_geometry(CONV1D_MAX_SIDE, 1), conv_channels())


def conv3d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``conv3d(x, weight, bias, stride=, padding=, dilation=, groups=)`` case, configuration as 3-tuples.

    x ``(N, C_in, D, H, W)``, every axis drawn independently (so D/H/W mix-ups show):
    kernel 1-3, stride 1-3, padding 0-2, dilation 1-2, sides 1-4 (5 when the dilated
    kernel needs it; never a kernel wider than the padded input, which torch rejects);
    batch 1-2; groups 1-3 with 1-2 channels per group in and out; bias ``(C_out,)`` or
    ``None``; values ``"normal"``. Small on purpose: a 3-D case's sums grow as the cube.
    ``dtype`` None draws it.
    """
    geometry = conv_geometry(CONV3D_MAX_SIDE, 3, max_kernel=3, max_stride=3, max_padding=2, max_dilation=2)
    return conv_cases("conv3d", _dtype_strategy(dtype), geometry, conv_channels(3, 2), max_batch=2)


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"conv1d": conv1d_cases, "conv3d": conv3d_cases}


# --------------------------------------------------------------------------- examples


EXAMPLES: dict[str, list[Case]] = {
    "conv1d": [
        conv((1, 1, 6), (1, 1, 3)),  # the derivation's worked example on one axis
        conv((1, 1, 1), (1, 1, 1)),  # length-1 input and kernel
        conv((1, 1, 2), (1, 1, 4), padding=1),  # kernel wider than the unpadded input
        conv((2, 2, 9), (3, 2, 1), stride=4, padding=2),  # stride > kernel: inputs never read
        conv((2, 4, 11), (6, 2, 3), stride=2, dilation=3, groups=2, bias=False),  # grouped, strided and dilated
        conv((1, 3, 7), (3, 1, 3), padding=1, groups=3),  # depthwise
    ],
    "conv3d": [
        conv((1, 1, 4, 4, 4), (1, 1, 3, 3, 3)),  # the worked example in 3-D
        conv((1, 1, 1, 1, 1), (1, 1, 1, 1, 1)),  # a single voxel
        conv((1, 2, 5, 4, 3), (2, 2, 2, 2, 1), stride=(2, 1, 3), padding=(1, 0, 1), dilation=(2, 1, 1)),  # every axis different
        conv((2, 4, 3, 3, 3), (4, 1, 2, 2, 2), stride=(3, 1, 1), padding=1, groups=4),  # depthwise, stride > kernel in depth
        conv((1, 1, 2, 3, 2), (2, 1, 3, 2, 3), padding=(1, 0, 1), bias=False),  # kernel wider than the unpadded input
    ],
}


# --------------------------------------------------------------------------- mistakes


#: op -> its scaffold: conv2d's at rank 1 and 3 (defaults = the right rule)
SCAFFOLDS = {"conv1d": scaffold_of_rank(1), "conv3d": scaffold_of_rank(3)}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    ("conv1d_unflipped_filter", "conv1d",
     "the filter not reversed for grad_x: G correlated with W itself instead of W read backwards",
     dict(flipped=False)),
    ("conv1d_grad_x_stride_not_dilated", "conv1d",
     "grad_x from the output gradient not dilated by the stride: G used densely, as if the stride were 1",
     dict(stride_x="dense")),
    ("conv1d_grad_weight_dilation_ignored", "conv1d",
     "grad_weight ignoring the dilation: the filter taps read at offsets t instead of t*d",
     dict(dilation_w="ignored")),
    ("conv3d_dilation_axes_swapped", "conv3d",
     "the dilation used on the wrong axes in the backward: (d_w, d_h, d_d) instead of (d_d, d_h, d_w)",
     dict(dilation_x="swapped", dilation_w="swapped")),
    ("conv3d_depth_dilation_ignored", "conv3d",
     "the depth axis's dilation ignored in the backward: taps at depth t instead of t*d_d (a 2-D rule extended to 3-D)",
     dict(dilation_x="first_ignored", dilation_w="first_ignored")),
    ("conv3d_stride_axes_swapped", "conv3d",
     "the stride used on the wrong axes in the backward: G dilated by (s_w, s_h, s_d) instead of (s_d, s_h, s_w)",
     dict(stride_x="swapped", stride_w="swapped")),
    ("conv3d_grad_x_groups_ignored", "conv3d",
     "grad_x ignoring groups: every output channel's gradient sent back to every input channel through the group filter",
     dict(grouped_x=False)),
])
