"""Counterpart conv_im2col_f32: conv2d by im2col and matrix products, accumulating in the inputs' dtype.

The classic (Caffe) layout, per group g: the columns matrix

    cols[n, (c, i, j), (p, q)] = Xpad[n, g*Cg + c, p*s + i*d, q*s + j*d]          (gathered by fancy indexing)
    Z[n, g]     = W_g @ cols[n]              W_g: (Og, Cg*kH*kW)                    + b
    dW_g        = sum_n G[n, g] @ cols[n]^T
    dcols[n]    = W_g^T @ G[n, g]
    dXpad[n, c, p*s + i*d, q*s + j*d] += dcols[n, (c, i, j), (p, q)]                (col2im: np.add.at)
    dX = crop(dXpad, p),   db = sum of G over N, Ho, Wo

Every product and sum is in the inputs' dtype: a float32 call accumulates in
float32 (sgemm), as a float32 GPU kernel does, with no float64 anywhere.
"""

from __future__ import annotations

import numpy as np

from oracle.zoo.right._counterpart import bias_gradient, conv_config, padded, plus_bias


def _indices(weight, cfg):
    """Row and column index arrays into Xpad, broadcasting to (kH, kW, Ho, Wo)."""
    kh, kw = weight.shape[2:]
    (ho, wo), (sh, sw), (dh, dw) = cfg.out_hw, cfg.stride, cfg.dilation
    rows = np.arange(kh)[:, None, None, None] * dh + np.arange(ho)[None, None, :, None] * sh
    cols = np.arange(kw)[None, :, None, None] * dw + np.arange(wo)[None, None, None, :] * sw
    return rows, cols


def _im2col(x, weight, cfg):
    """``cols`` as (N, G, Cg*kH*kW, Ho*Wo)."""
    g = cfg.groups
    xp = padded(x, cfg)
    rows, cols = _indices(weight, cfg)
    patches = xp[:, :, rows, cols]  # (N, C, kH, kW, Ho, Wo)
    n, c = x.shape[:2]
    ho, wo = cfg.out_hw
    return patches.reshape(n, g, (c // g) * weight.shape[2] * weight.shape[3], ho * wo)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``W_g @ cols`` per image and group, plus the bias."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups)
    cols = _im2col(x, weight, cfg)
    g, o = cfg.groups, weight.shape[0]
    w_mat = weight.reshape(g, o // g, -1)
    return plus_bias(np.matmul(w_mat[None], cols).reshape((x.shape[0], o) + cfg.out_hw), bias)


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``(dX, dW, db or None)``: two matrix products and col2im."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups, grad_output)
    cols = _im2col(x, weight, cfg)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    g, (ho, wo), (ph, pw) = cfg.groups, cfg.out_hw, cfg.padding
    g_mat = grad_output.reshape(n, g, o // g, ho * wo)
    w_mat = weight.reshape(g, o // g, cg * kh * kw)
    grad_weight = np.zeros((g, o // g, cg * kh * kw), dtype=cfg.dtype)
    for image in range(n):
        grad_weight += np.matmul(g_mat[image], cols[image].transpose(0, 2, 1))
    dcols = np.matmul(w_mat.transpose(0, 2, 1)[None], g_mat)  # (N, G, Cg*kH*kW, Ho*Wo)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cfg.dtype)
    rows, colidx = _indices(weight, cfg)
    np.add.at(dxp, (slice(None), slice(None), rows, colidx), dcols.reshape(n, c, kh, kw, ho, wo))
    grad_x = np.ascontiguousarray(dxp[:, :, ph : ph + h, pw : pw + w])
    return grad_x, grad_weight.reshape(weight.shape), bias_gradient(grad_output, bias)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "conv2d")
