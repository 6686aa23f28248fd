"""conv2d and its backward rule, written as the derivation states them.

Forward (cross-correlation, as in every deep-learning framework):

    Z[n, o, p, q] = b[o] + sum_{c, i, j} Xpad[n, g(o)*Cg + c, p*s + i*d, q*s + j*d] * W[o, c, i, j]

Backward, for an output gradient G = dL/dZ:

    dL/db = sum of G over N, H, W
    dL/dW = correlate(Xpad, dilate(G, s))             taken at the filter-dilation offsets i*d
    dL/dX = crop(correlate(pad(dilate(G, s), d(k-1)), flip(W)), p)

and the stride-s backward *is* the stride-1 backward of ``dilate(G, s)``: the
rule below is written that way, so the identity holds by construction.
Groups split the channels into independent convolutions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.arguments import as_pair, check_array, check_grad_output, check_same_dtype, output_hw
from refimpl.correlation import correlate, crop, dilate, flip, pad, swap_filter_channels
from refimpl.nonfinite import exact


@dataclass(frozen=True)
class ConvConfig:
    """A validated conv2d configuration; sizes are (h, w) pairs."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    kernel: tuple[int, int]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    dtype: np.dtype

    @property
    def stride1_out_hw(self) -> tuple[int, int]:
        """Output size the same convolution would have at stride 1: ``H + 2p - d(k-1)``."""
        h, w = (self.in_hw[a] + 2 * self.padding[a] - self.dilation[a] * (self.kernel[a] - 1) for a in (0, 1))
        return h, w


def conv2d_config(x, weight, bias, stride, padding, dilation, groups) -> ConvConfig:
    """Check every argument of conv2d; the validated configuration, or a ValueError/TypeError naming the culprit."""
    check_array(x, "x", ndim=4)
    check_array(weight, "weight", ndim=4)
    if bias is not None:
        check_array(bias, "bias", ndim=1)
    dtype = check_same_dtype(x=x, weight=weight, bias=bias)
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    dilation = as_pair(dilation, "dilation", minimum=1)
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {type(groups).__name__} {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    c_in, (c_out, c_per_group, kh, kw) = x.shape[1], weight.shape
    if min(weight.shape) < 1:
        raise ValueError(f"weight must have no empty axis, got shape {weight.shape}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels of x, got C_in={c_in}")
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the output channels (weight.shape[0]={c_out})")
    if c_per_group * groups != c_in:
        raise ValueError(
            f"weight.shape[1] * groups must equal the channels of x: weight {weight.shape} with groups={groups} "
            f"expects C_in={c_per_group * groups}, x has {c_in} (x shape {x.shape})"
        )
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {bias.shape}")
    if x.shape[0] < 1:
        raise ValueError(f"x must hold at least one image, got shape {x.shape}")
    out_hw = output_hw(x.shape[2:], (kh, kw), stride, padding, dilation, what="conv2d")
    return ConvConfig(stride, padding, dilation, groups, (kh, kw), x.shape[2:], out_hw, dtype)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """2-D convolution (cross-correlation), NCHW, like ``torch.nn.functional.conv2d``.

        Z = correlate(pad(X, p), W, stride=s, dilation=d, groups) + b[:, None, None]
    """
    cfg = conv2d_config(x, weight, bias, stride, padding, dilation, groups)
    z = correlate(pad(x, cfg.padding), weight, stride=cfg.stride, dilation=cfg.dilation, groups=cfg.groups)
    if bias is not None:
        z += bias[:, None, None]
    return z


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv2d: ``(grad_x, grad_weight, grad_bias or None)``.

    A stride-s backward is a stride-1 backward of the output gradient dilated by
    s (s - 1 zeros between elements, and zeros after the last one for input
    rows and columns the strided windows never reached):

        G1 = dilate(G, s, size=H + 2p - d(k-1))
        (dX, dW, db) = stride-1 backward of G1   (see ``stride1_backward``)

    NaN and inf: the zeros of ``dilate`` (and of the full padding in ``grad_input``)
    are not terms of the rule, but ``0 * NaN`` is NaN. They meet only a non-finite W
    (in dX) or a non-finite x or G (in dW, where every product is summed into some
    element of dW), so the result is exact when W and dW are finite; otherwise the same
    steps are evaluated term by term (``refimpl.nonfinite.exact``). The zero padding of
    x is a term, as in the formula (``Xpad``): a NaN in G makes dW NaN even where its
    windows read padding only (torch's float64 kernel agrees; oneDNN's float32 one
    skips the padding).
    """
    cfg = conv2d_config(x, weight, bias, stride, padding, dilation, groups)
    check_grad_output(grad_output, (x.shape[0], weight.shape[0]) + cfg.out_hw, cfg.dtype)

    def backward(g, x, weight, padding):
        g1 = dilate(g, cfg.stride, size=cfg.stride1_out_hw)
        return stride1_backward(g1, x, weight, padding=padding, dilation=cfg.dilation, groups=cfg.groups)

    grad_x, grad_weight = backward(grad_output, x, weight, cfg.padding)
    if not (np.isfinite(weight).all() and np.isfinite(grad_weight).all()):
        # x padded, so that the padding zeros are terms (as in the formula), the dilation's zeros not
        grad_xpad, grad_weight = exact(lambda g, xp, w: backward(g, xp, w, (0, 0)), grad_output, pad(x, cfg.padding), weight)
        grad_x = np.ascontiguousarray(crop(grad_xpad, cfg.padding))
    grad_bias = None if bias is None else grad_output.sum(axis=(0, 2, 3))
    return grad_x, grad_weight, grad_bias


def stride1_backward(g, x, weight, *, padding, dilation, groups):
    """``(dX, dW)`` of a stride-1 convolution with padding p and dilation d, for output gradient ``g``.

        dW[o, c, i, j] = sum_{n, p, q} Xpad[n, c, i*d + p, j*d + q] * g[n, o, p, q]
                       = correlate(Xpad as (C, N, H, W), g as (O, N, Ho, Wo), stride=d)   per group
        dX = crop(correlate(pad(g, d(k-1)), flip(W) with in/out channels swapped, dilation=d), p)
    """
    return grad_input(g, weight, padding=padding, dilation=dilation, groups=groups), grad_weight(
        g, x, padding=padding, dilation=dilation, groups=groups
    )


def grad_input(g, weight, *, padding, dilation, groups):
    """dX: the full correlation of the stride-1 output gradient with the flipped filter, padding cropped.

        dX = crop(correlate(pad(g, d(k-1)), flip(swap(W)), dilation=d, groups), p)
    """
    kh, kw = weight.shape[2:]
    full = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    grad_x_padded = correlate(pad(g, full), flip(swap_filter_channels(weight, groups)), dilation=dilation, groups=groups)
    return crop(grad_x_padded, padding)


def grad_weight(g, x, *, padding, dilation, groups):
    """dW: the correlation of the padded input with the stride-1 output gradient, at offsets i*d.

    The batch axis is the one summed over, so both operands are taken channels-first:
    the input's channels become the batch, the gradient map becomes the filter.

        dW[o, c] = correlate(Xpad[:, c] as (1, N, H, W), g[:, o] as (1, N, Ho, Wo), stride=d)
    """
    xp = pad(x, padding).transpose(1, 0, 2, 3)  # (C, N, Hp, Wp)
    gt = g.transpose(1, 0, 2, 3)  # (O, N, Ho, Wo)
    x_groups = np.split(xp, groups)
    g_groups = np.split(gt, groups)
    per_group = [
        correlate(x_grp, np.ascontiguousarray(g_grp), stride=dilation).transpose(1, 0, 2, 3)  # (Og, Cg, kh, kw)
        for x_grp, g_grp in zip(x_groups, g_groups)
    ]
    return np.ascontiguousarray(np.concatenate(per_group, axis=0))
