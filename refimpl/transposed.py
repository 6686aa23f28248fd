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
adjoint of a crop is a zero pad. In the derivation's words (``refimpl.convolution``):

    grad_x rule:      dX = crop(correlate(pad(dilate(G, s), d(k-1)), flip(swap(W)), dilation=d), p)
    grad_weight rule: dW = correlate(Xpad, dilate(G, s)) at offsets i*d

Both are evaluated here as ``refimpl.fast`` states them, tap by tap without the
stride's zeros (the adjoint of the forward's per-tap products):

    grad_x rule:      dXpad[:, :, u*s + i*d, v*s + j*d] += (W[:, :, i, j]^T @ G_mat)[(n, u, v)],  dX = crop(dXpad, p)
    grad_weight rule: dW[:, :, i, j] = G_mat @ Xpad_tap^T

(``pad_H``'s zero rows are never formed: they would only add zeros). The grad_x of the
backward *is* ``refimpl.conv2d``. tests/test_refimpl_transposed_adaptive.py checks the
identities against ``refimpl.conv2d_backward`` (fast) and
``refimpl.conv2d_backward_by_derivation``, and everything against torch.

NaN and inf: every product these evaluations form is a term of the rule (no zero is
multiplied in but the padding's, which the formula reads as terms: ``Gpad``), so
non-finite values land where the terms put them, as in torch's im2col/col2im kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.arguments import as_pair, check_array, check_grad_output, check_same_dtype, check_tangents, unpack_jvp
from refimpl.convolution import conv2d
from refimpl.correlation import pad

__all__ = ["conv_transpose2d", "conv_transpose2d_backward", "conv_transpose2d_jvp"]


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


# Bytes of the per-tap products of one chunk of images (at least one image per chunk): cache-sized
CHUNK_BYTES = 1 << 20


def _conv2d_grad_x(g: np.ndarray, weight: np.ndarray, cfg: TransposedConfig) -> np.ndarray:
    """conv2d's grad_x rule for output gradient ``g`` (N, C_in, H, W), on an input of the transposed output's size.

    As ``refimpl.fast`` states it, the adjoint of the forward's per-tap products: per group and
    filter tap (i, j), with ``G_mat`` the gradient as a (Cg, N*H*W) matrix,

        dYpad_g[:, :, u*s + i*d, v*s + j*d] += (W_g[:, :, i, j]^T @ G_mat)[(n, u, v)]      (scatter-add)
        dY = crop(dYpad, p)

    (conv2d's weight is (C_in, C_out // groups, kH, kW) here: its output channels are the
    transposed convolution's input channels). One GEMM per chunk of images gives every tap,
    ``T = W_g^T as (kH*kW*Og, Cg) @ G_mat``; the taps' blocks are then added into their strided
    slices. Rows of g past H (``pad_H``) would be zeros: they are never formed. Every product
    is a term of the rule (no zero is multiplied in), so NaN and inf land where its terms put them.
    """
    n, c_in, h, w = g.shape
    groups, dtype = cfg.groups, cfg.dtype
    cg, og, kh, kw = c_in // groups, weight.shape[1], weight.shape[2], weight.shape[3]
    (sh, sw), (ph, pw), (dh, dw) = cfg.stride, cfg.padding, cfg.dilation
    ho, wo = cfg.out_hw
    # Wt[g, (i, j, o), c] = W[g*Cg + c, o, i, j]
    wt = np.ascontiguousarray(weight.reshape(groups, cg, og, kh, kw).transpose(0, 3, 4, 2, 1)).reshape(groups, kh * kw * og, cg)
    g_g = g.reshape(n, groups, cg, h * w).transpose(1, 2, 0, 3)  # (G, Cg, N, H*W), a view
    ypad = np.zeros((groups, og, n, ho + 2 * ph, wo + 2 * pw), dtype=dtype)  # channels first
    nb = int(min(n, max(1, CHUNK_BYTES // (kh * kw * og * groups * h * w * dtype.itemsize))))
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        g_mat = np.ascontiguousarray(g_g[:, :, n0 : n0 + m]).reshape(groups, cg, m * h * w)
        taps = np.matmul(wt, g_mat).reshape(groups, kh, kw, og, m, h, w)
        for i in range(kh):
            rows = slice(i * dh, i * dh + sh * (h - 1) + 1, sh)
            for j in range(kw):
                ypad[:, :, n0 : n0 + m, rows, j * dw : j * dw + sw * (w - 1) + 1 : sw] += taps[:, i, j]
    y = ypad[:, :, :, ph : ph + ho, pw : pw + wo].reshape(groups * og, n, ho, wo).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(y)


def _conv2d_grad_weight(x: np.ndarray, conv_input: np.ndarray, cfg: TransposedConfig) -> np.ndarray:
    """conv2d's grad_weight rule with output gradient ``x`` and input ``conv_input`` (already padded).

    As ``refimpl.fast`` states it, ``dW_g[:, :, i, j] = G_mat @ X_tap^T``, X_tap the tap's strided
    slice of conv2d's padded input; here conv2d's output gradient is x and its input the
    transposed convolution's output gradient (padded), so per group and tap (i, j):

        dW[g*Cg + c, o, i, j] = sum_{n, u, v} x[n, g*Cg + c, u, v] * conv_input[n, g*Og + o, u*s + i*d, v*s + j*d]
                              = (x_mat @ In_tap^T)[c, o],     x_mat (Cg, N*H*W),  In_tap (Og, N*H*W)

    the derivation's ``dW = correlate(Xpad, dilate(G, s))`` at offsets i*d, without the
    dilation's zeros. The taps are stacked (an im2col of a chunk of images,
    ``In[(i, j, o), (n, u, v)]``), so one GEMM per chunk gives every tap. Every product is
    a term of the rule (the padding's zeros are terms, as in the formula and in torch's im2col).
    """
    n, c_in, h, w = x.shape
    groups, dtype = cfg.groups, cfg.dtype
    cg, og = c_in // groups, conv_input.shape[1] // groups
    (kh, kw), (sh, sw), (dh, dw) = cfg.kernel, cfg.stride, cfg.dilation
    x_g = x.reshape(n, groups, cg, h * w).transpose(1, 2, 0, 3)  # (G, Cg, N, H*W), a view
    in_g = conv_input.reshape((n, groups, og) + conv_input.shape[2:]).transpose(1, 2, 0, 3, 4)  # (G, Og, N, Hp, Wp)
    nb = int(min(n, max(1, CHUNK_BYTES // (kh * kw * og * groups * h * w * dtype.itemsize))))
    cols = np.empty((groups, kh, kw, og, nb, h, w), dtype=dtype)
    grad_w = np.zeros((groups, cg, kh * kw * og), dtype=dtype)  # dW_g[c, (i, j, o)]
    part = np.empty_like(grad_w)
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        for i in range(kh):
            rows = slice(i * dh, i * dh + sh * (h - 1) + 1, sh)
            for j in range(kw):
                cols[:, i, j, :, :m] = in_g[:, :, n0 : n0 + m, rows, j * dw : j * dw + sw * (w - 1) + 1 : sw]
        chunk = cols if m == nb else np.ascontiguousarray(cols[:, :, :, :, :m])
        x_mat = np.ascontiguousarray(x_g[:, :, n0 : n0 + m]).reshape(groups, cg, m * h * w)
        np.matmul(x_mat, chunk.reshape(groups, kh * kw * og, m * h * w).transpose(0, 2, 1), out=part)
        grad_w += part
    return np.ascontiguousarray(grad_w.reshape(groups, cg, kh, kw, og).transpose(0, 1, 4, 2, 3)).reshape(c_in, og, kh, kw)


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
    Evaluated tap by tap, one GEMM per chunk of images and a scatter-add per tap
    (``_conv2d_grad_x``): a non-finite element of W or x reaches only the outputs its terms reach.
    """
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    z = _conv2d_grad_x(x, weight, cfg)
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

    NaN and inf: both read G's zero padding as terms (``Gpad``), as torch's im2col does;
    no other zero is multiplied in (``_conv2d_grad_weight`` gathers the taps, it does not dilate x).
    torch's float32 kernel (oneDNN) skips the padding instead: with a non-finite W its grad_x
    can lack the NaN that ``0 * inf`` puts there, exactly as for conv2d's forward.
    """
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    c_out = weight.shape[1] * cfg.groups
    check_grad_output(grad_output, (x.shape[0], c_out) + cfg.out_hw, cfg.dtype)
    h, w = cfg.in_hw
    grad_x = conv2d(grad_output, weight, stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups)
    grad_x = np.ascontiguousarray(grad_x[:, :, :h, :w])
    grad_pad = pad(grad_output, cfg.padding)  # its zeros are terms, as in the formula (Gpad) and in torch's im2col
    grad_w = _conv2d_grad_weight(x, grad_pad, cfg)
    grad_bias = None if bias is None else grad_output.sum(axis=(0, 2, 3))
    return grad_x, grad_w, grad_bias


def conv_transpose2d_jvp(
    primals, tangents, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    """Forward mode of conv_transpose2d: ``(Z, dZ)``, the product rule of the bilinear forward.

        dZ = conv_transpose2d(dX, W) + conv_transpose2d(X, dW) + db[:, None, None]

    each term the forward itself (``_conv2d_grad_x``, without bias) on a tangent; a None
    tangent is a zero term. ``primals = (x, weight[, bias])``, ``tangents`` likewise.
    """
    names = ("x", "weight", "bias")
    (x, weight, bias), (dx, dw, db) = unpack_jvp(primals, tangents, names, 2, what="conv_transpose2d_jvp")
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    check_tangents((x, weight, bias), (dx, dw, db), names)
    z = _conv2d_grad_x(x, weight, cfg)
    if bias is not None:
        z += bias[:, None, None]
    dz = np.zeros_like(z)
    if dx is not None:
        dz += _conv2d_grad_x(dx, weight, cfg)
    if dw is not None:
        dz += _conv2d_grad_x(x, dw, cfg)
    if db is not None:
        dz += db[:, None, None]
    return z, dz
