"""conv_transpose2d and its backward rule: conv2d's rules, read the other way round.

``torch.nn.functional.conv_transpose2d(x, W, b, stride=s, padding=p, output_padding=op,
groups, dilation=d)`` with W of shape ``(C_in, C_out // groups, kH, kW)``. That is
conv2d's weight layout for a conv2d with ``C_in`` *output* channels and ``C_out``
*input* channels: the transposed convolution is the adjoint of that conv2d with
respect to its input, and its rules are conv2d's rules with the roles exchanged.

Write ``conv(Y) = conv2d(Y, W, stride=s, padding=p, dilation=d, groups)`` for
``Y`` of the transposed output's shape ``(N, C_out, Ho, Wo)``, with

    Ho = (H - 1)*s - 2p + d*(k - 1) + op + 1                       (and likewise Wo)

``conv(Y)`` has ``Hc = H + op // s`` rows: H, unless ``op >= s`` (allowed when
``d > s``: torch requires ``op < max(s, d)``), when the last ``op // s`` rows are
rows the transposed convolution never reads. So ``conv_T = crop_H . conv``, and

    forward      Z   = conv2d's grad_x rule applied to G = pad_H(x)         (the adjoint of conv_T)
                       + b[o]
    backward     dx  = conv_T(G_Z) = conv2d(G_Z, W, s, p, d, groups)[:, :, :H, :W]   (conv2d's forward)
                 dW  = conv2d's grad_weight rule, with conv2d's input := G_Z and
                       conv2d's output gradient := pad_H(x)                  (x and G exchanged)
                 db  = sum of G_Z over (N, Ho, Wo)

``pad_H`` appends the ``op // s`` zero rows (columns) that ``crop_H`` removes: the
adjoint of a crop is a zero pad. The conv2d rules used are those of
``refimpl.convolution`` (the derivation): a stride-s rule is the stride-1 rule of the
argument dilated by s,

    grad_x rule:      dX = crop(correlate(pad(dilate(G, s), d(k-1)), flip(swap(W)), dilation=d), p)
    grad_weight rule: dW = correlate(Xpad, dilate(G, s)) at offsets i*d

so the identities hold by construction; tests/test_refimpl_transposed_adaptive.py
checks them against ``refimpl.conv2d_backward`` and torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.arguments import as_pair, check_array, check_grad_output, check_same_dtype
from refimpl.convolution import conv2d, grad_input, grad_weight
from refimpl.correlation import dilate, pad
from refimpl.nonfinite import exact

__all__ = ["conv_transpose2d", "conv_transpose2d_backward"]


@dataclass(frozen=True)
class TransposedConfig:
    """A validated conv_transpose2d configuration; sizes are (h, w) pairs."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    kernel: tuple[int, int]
    in_hw: tuple[int, int]  # x's (H, W)
    out_hw: tuple[int, int]  # the transposed output's (Ho, Wo) = the adjoint conv2d's input size
    dtype: np.dtype

    @property
    def conv_out_hw(self) -> tuple[int, int]:
        """Output size of the adjoint conv2d on an (Ho, Wo) input: ``H + op // s`` (H unless op >= s)."""
        return tuple(self.in_hw[a] + self.output_padding[a] // self.stride[a] for a in (0, 1))  # type: ignore[return-value]

    @property
    def stride1_out_hw(self) -> tuple[int, int]:
        """Output size of the adjoint conv2d at stride 1: ``Ho + 2p - d(k-1)``, the size of ``dilate(G, s)``."""
        return tuple(
            self.out_hw[a] + 2 * self.padding[a] - self.dilation[a] * (self.kernel[a] - 1) for a in (0, 1)
        )  # type: ignore[return-value]


def conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation) -> TransposedConfig:
    """Check every argument of conv_transpose2d; the validated configuration, or a ValueError/TypeError naming the culprit."""
    check_array(x, "x", ndim=4)
    check_array(weight, "weight", ndim=4)
    if bias is not None:
        check_array(bias, "bias", ndim=1)
    dtype = check_same_dtype(x=x, weight=weight, bias=bias)
    stride = as_pair(stride, "stride", minimum=1)
    padding = as_pair(padding, "padding", minimum=0)
    output_padding = as_pair(output_padding, "output_padding", minimum=0)
    dilation = as_pair(dilation, "dilation", minimum=1)
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"groups must be an int, got {type(groups).__name__} {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    for a in (0, 1):
        if output_padding[a] >= max(stride[a], dilation[a]):
            raise ValueError(
                f"output_padding must be smaller than max(stride, dilation) on each axis (as torch requires), "
                f"got output_padding={output_padding} with stride={stride}, dilation={dilation}"
            )
    c_in, (w_in, c_out_per_group, kh, kw) = x.shape[1], weight.shape
    if min(weight.shape) < 1:
        raise ValueError(f"weight must have no empty axis, got shape {weight.shape}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the input channels of x, got C_in={c_in}")
    if w_in != c_in:
        raise ValueError(
            f"weight.shape[0] must equal the channels of x (weight is (C_in, C_out // groups, kH, kW) "
            f"for conv_transpose2d): weight {weight.shape}, x {x.shape}"
        )
    c_out = c_out_per_group * groups
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(
            f"bias must have shape (C_out,) = (weight.shape[1] * groups,) = ({c_out},), got {bias.shape}"
        )
    if x.shape[0] < 1 or min(x.shape[2:]) < 1:
        raise ValueError(f"x must hold at least one image with non-empty H and W, got shape {x.shape}")
    in_hw = x.shape[2:]
    out_hw = tuple(
        (in_hw[a] - 1) * stride[a] - 2 * padding[a] + dilation[a] * ((kh, kw)[a] - 1) + output_padding[a] + 1
        for a in (0, 1)
    )
    if min(out_hw) < 1:
        raise ValueError(
            f"conv_transpose2d: output size would be {out_hw[0]}x{out_hw[1]} (must be at least 1x1): "
            f"(H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1 with input {in_hw}, "
            f"stride {stride}, padding {padding}, dilation {dilation}, kernel {(kh, kw)}, output_padding {output_padding}"
        )
    return TransposedConfig(stride, padding, output_padding, dilation, groups, (kh, kw), in_hw, out_hw, dtype)  # type: ignore[arg-type]


def _pad_h(x: np.ndarray, cfg: TransposedConfig) -> np.ndarray:
    """``pad_H``: x with the ``op // s`` zero rows/columns appended that the adjoint conv2d's output has and x lacks."""
    (hc, wc), (h, w) = cfg.conv_out_hw, cfg.in_hw
    if (hc, wc) == (h, w):
        return x
    return np.pad(x, [(0, 0), (0, 0), (0, hc - h), (0, wc - w)])


def _conv2d_grad_x(g: np.ndarray, weight: np.ndarray, cfg: TransposedConfig) -> np.ndarray:
    """conv2d's grad_x rule for output gradient ``g``, on an input of the transposed output's size.

        dX = crop(correlate(pad(dilate(g, s), d(k-1)), flip(swap(W)), dilation=d, groups), p)
    """
    g1 = dilate(g, cfg.stride, size=cfg.stride1_out_hw)
    return grad_input(g1, weight, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)


def _conv2d_grad_weight(g: np.ndarray, conv_input: np.ndarray, padding, cfg: TransposedConfig) -> np.ndarray:
    """conv2d's grad_weight rule for output gradient ``g`` and input ``conv_input``.

        dW = correlate(pad(conv_input, p), dilate(g, s)) at offsets i*d, per group
    """
    g1 = dilate(g, cfg.stride, size=cfg.stride1_out_hw)
    return grad_weight(g1, conv_input, padding=padding, dilation=cfg.dilation, groups=cfg.groups)


def conv_transpose2d(
    x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> np.ndarray:
    """Transposed 2-D convolution, NCHW, like ``torch.nn.functional.conv_transpose2d``.

    ``weight`` is ``(C_in, C_out // groups, kH, kW)``; the output ``(N, C_out, Ho, Wo)`` with
    ``Ho = (H - 1)*s - 2p + d*(kH - 1) + op + 1``. It is conv2d's grad_x rule, x playing the
    output gradient of ``conv2d(., W, s, p, d, groups)`` on an ``(Ho, Wo)`` input:

        Z = crop(correlate(pad(dilate(pad_H(x), s), d(k-1)), flip(swap(W)), dilation=d, groups), p) + b
        Z[n, g*Og + o, h, w] = b[o] + sum_{c, i, j: h + p = u*s + i*d, w + p = v*s + j*d} x[n, g*Cg + c, u, v] * W[g*Cg + c, o, i, j]

    (``swap`` exchanges each group's in/out channel roles of W; ``pad_H`` appends the
    ``op // s`` zero rows conv2d's output has beyond x's H, only when ``op >= s``.)

    NaN and inf: the zeros of ``dilate`` and of the full padding are not terms, but meet W;
    when W is not finite the rule is evaluated term by term (``refimpl.nonfinite.exact``),
    so a non-finite element of W or x reaches only the outputs its terms reach.
    """
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    if np.isfinite(weight).all():
        z = _conv2d_grad_x(_pad_h(x, cfg), weight, cfg)
    else:
        (z,) = exact(lambda a, w: (_conv2d_grad_x(_pad_h(a, cfg), w, cfg),), x, weight)
    z = np.ascontiguousarray(z, dtype=cfg.dtype)
    if bias is not None:
        z += bias[:, None, None]
    return z


def conv_transpose2d_backward(
    grad_output, x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Gradients of conv_transpose2d: ``(grad_x, grad_weight, grad_bias or None)``.

    The forward is the adjoint of ``conv_T = crop_H . conv2d(., W, s, p, d, groups)``, so,
    with G the gradient of the output:

        grad_x      = conv_T(G) = conv2d(G, W, stride=s, padding=p, dilation=d, groups)[:, :, :H, :W]
                      (conv2d's forward; the crop only when op >= s)
        grad_weight = conv2d's grad_weight rule with x and G exchanged: conv2d's input is G,
                      its output gradient pad_H(x):
                      dW[g*Cg + c, o, i, j] = sum_{n, u, v} Gpad[n, g*Og + o, u*s + i*d, v*s + j*d] * x[n, g*Cg + c, u, v]
        grad_bias   = sum of G over (N, Ho, Wo)

    NaN and inf: conv2d's forward reads G's zero padding as terms (``Gpad``), as torch's
    im2col does. The stride's dilation zeros in the grad_weight rule are not terms; when
    grad_weight is not finite it is recomputed term by term (``refimpl.nonfinite.exact``).
    """
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    c_out = weight.shape[1] * cfg.groups
    check_grad_output(grad_output, (x.shape[0], c_out) + cfg.out_hw, cfg.dtype)
    h, w = cfg.in_hw
    grad_x = conv2d(grad_output, weight, stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)
    grad_x = np.ascontiguousarray(grad_x[:, :, :h, :w])
    grad_w = _conv2d_grad_weight(_pad_h(x, cfg), grad_output, cfg.padding, cfg)
    if not np.isfinite(grad_w).all():
        # G padded, so that its padding zeros are terms (as in the formula), the dilation's zeros not
        (grad_w,) = exact(
            lambda a, gp: (_conv2d_grad_weight(_pad_h(a, cfg), gp, (0, 0), cfg),), x, pad(grad_output, cfg.padding)
        )
    grad_w = np.ascontiguousarray(grad_w, dtype=cfg.dtype)
    grad_bias = None if bias is None else grad_output.sum(axis=(0, 2, 3))
    return grad_x, grad_w, grad_bias
