"""Counterpart conv_einsum: conv2d as ``np.einsum`` over a strided window view of the padded input.

``win[n, c, p, q, i, j] = Xpad[n, c, p*s + i*d, q*s + j*d]`` is a view
(``sliding_window_view`` subsampled by stride and dilation, no copy); per group g:

    Z[n, g, o, p, q]   = sum_{c, i, j} win[n, g, c, p, q, i, j] W[g, o, c, i, j] + b     einsum('ngcpqij,gocij->ngopq')
    dW[g, o, c, i, j]  = sum_{n, p, q} win[n, g, c, p, q, i, j] G[n, g, o, p, q]         einsum('ngcpqij,ngopq->gocij')
    dwin[n, g, c, p, q, i, j] = sum_o G[n, g, o, p, q] W[g, o, c, i, j]                  einsum('ngopq,gocij->ngcpqij')
    dXpad[n, c, p*s + i*d, q*s + j*d] += dwin[n, c, p, q, i, j]   (the adjoint of the view: one strided add per tap)
    dX = crop(dXpad, p),   db = sum of G over N, Ho, Wo

``optimize=True`` lets einsum pick its contraction order (BLAS where it can).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from oracle.zoo.right._counterpart import bias_gradient, conv_config, padded, plus_bias


def _window_view(x, weight, cfg):
    """``(win as (N, G, Cg, Ho, Wo, kH, kW), padded size)``."""
    (sh, sw), (dh, dw), g = cfg.stride, cfg.dilation, cfg.groups
    kh, kw = weight.shape[2:]
    xp = padded(x, cfg)
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    n, c = x.shape[:2]
    return win.reshape((n, g, c // g) + win.shape[2:]), xp.shape[2:]


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``einsum('ngcpqij,gocij->ngopq', win, W) + b``."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups)
    win, _ = _window_view(x, weight, cfg)
    o, g = weight.shape[0], cfg.groups
    w_g = weight.reshape((g, o // g) + weight.shape[1:])
    z = np.einsum("ngcpqij,gocij->ngopq", win, w_g, optimize=True).reshape((x.shape[0], o) + cfg.out_hw)
    return plus_bias(np.ascontiguousarray(z), bias)


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``(dX, dW, db or None)``: two einsums and the adjoint of the window view."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups, grad_output)
    win, (hp, wp) = _window_view(x, weight, cfg)
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    g = cfg.groups
    (ho, wo), (sh, sw), (dh, dw), (ph, pw) = cfg.out_hw, cfg.stride, cfg.dilation, cfg.padding
    w_g = weight.reshape(g, o // g, cg, kh, kw)
    g_g = grad_output.reshape(n, g, o // g, ho, wo)
    grad_weight = np.einsum("ngcpqij,ngopq->gocij", win, g_g, optimize=True).reshape(weight.shape)
    dwin = np.einsum("ngopq,gocij->ngcpqij", g_g, w_g, optimize=True).reshape(n, c, ho, wo, kh, kw)
    dxp = np.zeros((n, c, hp, wp), dtype=cfg.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw] += dwin[..., i, j]
    grad_x = np.ascontiguousarray(dxp[:, :, ph : ph + h, pw : pw + w])
    return grad_x, np.ascontiguousarray(grad_weight), bias_gradient(grad_output, bias)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "conv2d")
