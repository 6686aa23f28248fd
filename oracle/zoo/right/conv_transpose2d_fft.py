"""Counterpart conv_transpose2d_fft: conv_transpose2d, forward and both gradients, by FFT.

The transposed convolution is the adjoint of ``conv2d(., W, s, p, d, groups)`` on an input of
its output's size (Ho, Wo), so each of its rules is one of ``conv3d_fft``'s rank-generic
FFT rules with the roles exchanged (W ``(C_in, C_out // groups, kH, kW)`` is that conv2d's
weight, its output channels the transposed convolution's input channels):

    forward   Z  = grad_input(x, W) on an (Ho, Wo) input + b     (the FFT convolution of Gs := spread x with Wd)
    dX           = correlation(G, W)[:, :, :H, :W]                (conv2d's forward, by FFT)
    dW           = grad_weight with conv2d's input G and output gradient x
    db           = sum of G over N, Ho, Wo
"""

from __future__ import annotations

import numpy as np

from oracle.zoo.right._counterpart import bias_gradient, plus_bias
from oracle.zoo.right.conv3d_fft import correlation, grad_input, grad_weight
from refimpl.arguments import check_grad_output
from refimpl.transposed import conv_transpose2d_config


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """conv2d's grad_x rule by FFT, on an input of the transposed output's size, plus the bias."""
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    z = grad_input(x, weight, cfg.out_hw, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    return plus_bias(np.ascontiguousarray(z, dtype=cfg.dtype), bias)


def conv_transpose2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """``(dX, dW, db or None)``: dX by FFT correlation of G with W, dW by FFT correlation of Gpad with the spread x."""
    cfg = conv_transpose2d_config(x, weight, bias, stride, padding, output_padding, groups, dilation)
    check_grad_output(grad_output, (x.shape[0], weight.shape[1] * cfg.groups) + cfg.out_hw, cfg.dtype)
    args = (cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    h, w = cfg.in_hw
    grad_x = correlation(grad_output, weight, *args)[:, :, :h, :w]
    grad_w = grad_weight(x, grad_output, cfg.kernel, *args)
    return (np.ascontiguousarray(grad_x, dtype=cfg.dtype), np.ascontiguousarray(grad_w, dtype=cfg.dtype),
            bias_gradient(grad_output, bias))


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "conv_transpose2d")
