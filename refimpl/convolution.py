"""conv1d, conv2d, conv3d and their backward rule, written once, as the derivation states them.

Forward (cross-correlation, as in every deep-learning framework), for any spatial
rank r, p and t multi-indices over the r spatial axes (p*s + t*d axis by axis):

    Z[n, o, p] = b[o] + sum_{c, t} Xpad[n, g(o)*Cg + c, p*s + t*d] * W[o, c, t]

in 2-D: ``Z[n, o, p, q] = b[o] + sum_{c, i, j} Xpad[n, g(o)*Cg + c, p*s + i*d, q*s + j*d] * W[o, c, i, j]``.

Backward, for an output gradient G = dL/dZ:

    dL/db = sum of G over N and the spatial axes
    dL/dW = correlate(Xpad, dilate(G, s))             taken at the filter-dilation offsets t*d
    dL/dX = crop(correlate(pad(dilate(G, s), d(k-1)), flip(W)), p)

and the stride-s backward *is* the stride-1 backward of ``dilate(G, s)``: the
rule below is written that way, so the identity holds by construction.
Groups split the channels into independent convolutions. conv1d, conv2d and
conv3d are the rank-1, -2 and -3 cases of ``conv`` and ``conv_backward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.arguments import as_tuple, check_array, check_grad_output, check_same_dtype, check_tangents, output_size, unpack_jvp
from refimpl.correlation import correlate, crop, dilate, flip, pad, swap_filter_channels
from refimpl.nonfinite import exact

# the spatial layout of each rank, for messages
LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


@dataclass(frozen=True)
class ConvConfig:
    """A validated convolution configuration; sizes are tuples with one entry per spatial axis
    (``(h, w)`` pairs for conv2d)."""

    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    kernel: tuple[int, ...]
    in_size: tuple[int, ...]
    out_size: tuple[int, ...]
    dtype: np.dtype

    @property
    def rank(self) -> int:
        return len(self.stride)

    @property
    def stride1_out_size(self) -> tuple[int, ...]:
        """Output size the same convolution would have at stride 1: ``size + 2p - d(k-1)`` per axis."""
        return tuple(self.in_size[a] + 2 * self.padding[a] - self.dilation[a] * (self.kernel[a] - 1) for a in range(self.rank))

    # the names of the 2-D configuration (conv2d's callers read them)
    in_hw = property(lambda self: self.in_size)
    out_hw = property(lambda self: self.out_size)
    stride1_out_hw = property(lambda self: self.stride1_out_size)

    def lifted(self) -> ConvConfig:
        """The same configuration with a unit spatial axis in front (rank r -> r + 1): a conv1d as a conv2d with H = kH = 1."""
        return ConvConfig(
            (1,) + self.stride, (0,) + self.padding, (1,) + self.dilation, self.groups,
            (1,) + self.kernel, (1,) + self.in_size, (1,) + self.out_size, self.dtype,
        )


def conv_config(x, weight, bias, stride, padding, dilation, groups, *, rank: int, what: str) -> ConvConfig:
    """Check every argument of a rank-``rank`` convolution (``what`` names it in messages);
    the validated configuration, or a ValueError/TypeError naming the culprit."""
    check_array(x, "x", ndim=rank + 2)
    check_array(weight, "weight", ndim=rank + 2)
    if bias is not None:
        check_array(bias, "bias", ndim=1)
    dtype = check_same_dtype(x=x, weight=weight, bias=bias)
    stride = as_tuple(stride, "stride", rank, minimum=1)
    padding = as_tuple(padding, "padding", rank, minimum=0)
    dilation = as_tuple(dilation, "dilation", rank, minimum=1)
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {type(groups).__name__} {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    c_in, (c_out, c_per_group, *kernel) = x.shape[1], weight.shape
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
        raise ValueError(f"x must hold at least one {'image' if rank == 2 else 'sample'}, got shape {x.shape}")
    kernel = tuple(kernel)
    out = output_size(x.shape[2:], kernel, stride, padding, dilation, what=what)
    return ConvConfig(stride, padding, dilation, groups, kernel, x.shape[2:], out, dtype)


def conv1d_config(x, weight, bias, stride, padding, dilation, groups) -> ConvConfig:
    """``conv_config`` of rank 1."""
    return conv_config(x, weight, bias, stride, padding, dilation, groups, rank=1, what="conv1d")


def conv2d_config(x, weight, bias, stride, padding, dilation, groups) -> ConvConfig:
    """``conv_config`` of rank 2."""
    return conv_config(x, weight, bias, stride, padding, dilation, groups, rank=2, what="conv2d")


def conv3d_config(x, weight, bias, stride, padding, dilation, groups) -> ConvConfig:
    """``conv_config`` of rank 3."""
    return conv_config(x, weight, bias, stride, padding, dilation, groups, rank=3, what="conv3d")


def conv(x, weight, bias, cfg: ConvConfig) -> np.ndarray:
    """The forward rule of any rank, for a validated configuration:

        Z = correlate(pad(X, p), W, stride=s, dilation=d, groups) + b   (b along the channel axis)
    """
    z = correlate(pad(x, cfg.padding), weight, stride=cfg.stride, dilation=cfg.dilation, groups=cfg.groups)
    if bias is not None:
        z += bias.reshape((-1,) + (1,) * cfg.rank)
    return z


def conv1d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """1-D convolution (cross-correlation), NCL, like ``torch.nn.functional.conv1d``: ``conv`` of rank 1."""
    return conv(x, weight, bias, conv1d_config(x, weight, bias, stride, padding, dilation, groups))


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """2-D convolution (cross-correlation), NCHW, like ``torch.nn.functional.conv2d``: ``conv`` of rank 2.

        Z = correlate(pad(X, p), W, stride=s, dilation=d, groups) + b[:, None, None]
    """
    return conv(x, weight, bias, conv2d_config(x, weight, bias, stride, padding, dilation, groups))


def conv3d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """3-D convolution (cross-correlation), NCDHW, like ``torch.nn.functional.conv3d``: ``conv`` of rank 3."""
    return conv(x, weight, bias, conv3d_config(x, weight, bias, stride, padding, dilation, groups))


def gradients(grad_output, x, weight, bias, cfg: ConvConfig, backward):
    """``(grad_x, grad_weight, grad_bias or None)`` from ``backward(g, x, weight, cfg) -> (dX, dW)``, any rank.

    NaN and inf: the zeros an algorithm inserts (the stride's in ``dilate``, the full
    padding in ``grad_input``, a buffer's zero border) are not terms of the rule, but
    ``0 * NaN`` is NaN. They meet only a non-finite W (in dX) or a non-finite x or G
    (in dW, where every product is summed into some element of dW), so the result is
    exact when W and dW are finite; otherwise the same steps are evaluated term by term
    (``refimpl.nonfinite.exact``). The zero padding of x is a term, as in the formula
    (``Xpad``): a NaN in G makes dW NaN even where its windows read padding only (torch's
    float64 kernel agrees; oneDNN's float32 one skips the padding).
    """
    check_grad_output(grad_output, (x.shape[0], weight.shape[0]) + cfg.out_size, cfg.dtype)
    grad_x, grad_weight = backward(grad_output, x, weight, cfg)
    if not (np.isfinite(weight).all() and np.isfinite(grad_weight).all()):
        # x padded, so that the padding zeros are terms (as in the formula), the algorithm's zeros not
        unpadded = ConvConfig(
            cfg.stride, (0,) * cfg.rank, cfg.dilation, cfg.groups, cfg.kernel,
            tuple(n + 2 * p for n, p in zip(cfg.in_size, cfg.padding)), cfg.out_size, cfg.dtype,
        )
        grad_xpad, grad_weight = exact(lambda g, xp, w: backward(g, xp, w, unpadded), grad_output, pad(x, cfg.padding), weight)
        grad_x = np.ascontiguousarray(crop(grad_xpad, cfg.padding))
    grad_bias = None if bias is None else grad_output.sum(axis=(0,) + tuple(range(2, 2 + cfg.rank)))
    return grad_x, grad_weight, grad_bias


def conv_backward(g, x, weight, cfg: ConvConfig):
    """``(dX, dW)`` of any rank, as the derivation states it. A stride-s backward is a stride-1
    backward of the output gradient dilated by s (s - 1 zeros between elements, and zeros
    after the last one for input positions the strided windows never reached):

        G1 = dilate(G, s, size=size + 2p - d(k-1))
        (dX, dW) = stride-1 backward of G1   (see ``stride1_backward``)
    """
    g1 = dilate(g, cfg.stride, size=cfg.stride1_out_size)
    return stride1_backward(g1, x, weight, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)


def conv1d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv1d: ``(grad_x, grad_weight, grad_bias or None)``; ``conv_backward`` of rank 1."""
    cfg = conv1d_config(x, weight, bias, stride, padding, dilation, groups)
    return gradients(grad_output, x, weight, bias, cfg, conv_backward)


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv2d: ``(grad_x, grad_weight, grad_bias or None)``; ``conv_backward`` of rank 2.

    A stride-s backward is a stride-1 backward of the output gradient dilated by
    s (s - 1 zeros between elements, and zeros after the last one for input
    rows and columns the strided windows never reached):

        G1 = dilate(G, s, size=H + 2p - d(k-1))
        (dX, dW, db) = stride-1 backward of G1   (see ``stride1_backward``)

    NaN and inf as ``gradients`` says.
    """
    cfg = conv2d_config(x, weight, bias, stride, padding, dilation, groups)
    return gradients(grad_output, x, weight, bias, cfg, conv_backward)


def conv3d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv3d: ``(grad_x, grad_weight, grad_bias or None)``; ``conv_backward`` of rank 3."""
    cfg = conv3d_config(x, weight, bias, stride, padding, dilation, groups)
    return gradients(grad_output, x, weight, bias, cfg, conv_backward)


def stride1_backward(g, x, weight, *, padding, dilation, groups):
    """``(dX, dW)`` of a stride-1 convolution with padding p and dilation d, for output gradient ``g``.

        dW[o, c, t] = sum_{n, p} Xpad[n, c, t*d + p] * g[n, o, p]
                    = correlate(Xpad as (C, N, *size), g as (O, N, *out), stride=d)   per group
        dX = crop(correlate(pad(g, d(k-1)), flip(W) with in/out channels swapped, dilation=d), p)
    """
    return grad_input(g, weight, padding=padding, dilation=dilation, groups=groups), grad_weight(
        g, x, padding=padding, dilation=dilation, groups=groups
    )


def grad_input(g, weight, *, padding, dilation, groups):
    """dX: the full correlation of the stride-1 output gradient with the flipped filter, padding cropped.

        dX = crop(correlate(pad(g, d(k-1)), flip(swap(W)), dilation=d, groups), p)
    """
    full = tuple(d * (k - 1) for d, k in zip(dilation, weight.shape[2:]))
    grad_x_padded = correlate(pad(g, full), flip(swap_filter_channels(weight, groups)), dilation=dilation, groups=groups)
    return crop(grad_x_padded, padding)


def grad_weight(g, x, *, padding, dilation, groups):
    """dW: the correlation of the padded input with the stride-1 output gradient, at offsets t*d.

    The batch axis is the one summed over, so both operands are taken channels-first:
    the input's channels become the batch, the gradient map becomes the filter.

        dW[o, c] = correlate(Xpad[:, c] as (1, N, *size), g[:, o] as (1, N, *out), stride=d)
    """
    xp = pad(x, padding).swapaxes(0, 1)  # (C, N, *padded size)
    gt = g.swapaxes(0, 1)  # (O, N, *out)
    x_groups = np.split(xp, groups)
    g_groups = np.split(gt, groups)
    per_group = [
        correlate(x_grp, np.ascontiguousarray(g_grp), stride=dilation).swapaxes(0, 1)  # (Og, Cg, *k)
        for x_grp, g_grp in zip(x_groups, g_groups)
    ]
    return np.ascontiguousarray(np.concatenate(per_group, axis=0))


# ----------------------------------------------------------------------------- forward mode (JVP)

CONV_ARGS = ("x", "weight", "bias")


def conv_jvp(primals, tangents, config, *, rank: int, what: str):
    """``(Z, dZ)`` of a rank-``rank`` convolution; ``config(x, weight, bias)`` validates and configures.

    The forward is bilinear in (x, W) and affine in b, so its derivative is the product rule,
    each term the forward itself (``conv``, without bias) applied to a tangent:

        dZ = conv(dX, W) + conv(X, dW) + db        (a None tangent is a zero term, left out)
    """
    (x, weight, bias), (dx, dw, db) = unpack_jvp(primals, tangents, CONV_ARGS, 2, what=what)
    cfg = config(x, weight, bias)
    check_tangents((x, weight, bias), (dx, dw, db), CONV_ARGS)
    z = conv(x, weight, bias, cfg)
    dz = np.zeros_like(z)
    if dx is not None:
        dz += conv(dx, weight, None, cfg)
    if dw is not None:
        dz += conv(x, dw, None, cfg)
    if db is not None:
        dz += db.reshape((-1,) + (1,) * cfg.rank)
    return z, dz


def conv1d_jvp(primals, tangents, *, stride=1, padding=0, dilation=1, groups=1):
    """Forward mode of conv1d: ``(Z, dZ)`` with ``dZ = conv1d(dX, W) + conv1d(X, dW) + db`` (``conv_jvp``, rank 1).

    ``primals = (x, weight[, bias])``, ``tangents`` likewise (None: a zero tangent; None for a None bias).
    """
    config = lambda x, w, b: conv1d_config(x, w, b, stride, padding, dilation, groups)  # noqa: E731
    return conv_jvp(primals, tangents, config, rank=1, what="conv1d_jvp")


def conv2d_jvp(primals, tangents, *, stride=1, padding=0, dilation=1, groups=1):
    """Forward mode of conv2d: ``(Z, dZ)``, the product rule of the bilinear forward (``conv_jvp``, rank 2):

        dZ = conv2d(dX, W) + conv2d(X, dW) + db[:, None, None]

    ``primals = (x, weight[, bias])``, ``tangents`` likewise (None: a zero tangent; None for a None bias).
    """
    config = lambda x, w, b: conv2d_config(x, w, b, stride, padding, dilation, groups)  # noqa: E731
    return conv_jvp(primals, tangents, config, rank=2, what="conv2d_jvp")


def conv3d_jvp(primals, tangents, *, stride=1, padding=0, dilation=1, groups=1):
    """Forward mode of conv3d: ``(Z, dZ)`` with ``dZ = conv3d(dX, W) + conv3d(X, dW) + db`` (``conv_jvp``, rank 3)."""
    config = lambda x, w, b: conv3d_config(x, w, b, stride, padding, dilation, groups)  # noqa: E731
    return conv_jvp(primals, tangents, config, rank=3, what="conv3d_jvp")
