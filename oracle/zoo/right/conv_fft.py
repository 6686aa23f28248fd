"""Counterpart conv_fft: conv2d, forward and both gradients, by FFT-based correlation and convolution.

With ``Xpad`` the padded input (Hp x Wp), ``Wd`` the filter dilated by d (taps
``d(k-1) + 1`` apart, zeros between) and ``F`` the 2-D real FFT of size Hp x Wp,
per group:

    forward   C   = F^-1( sum_c F(Xpad)[n, c] * conj(F(Wd)[o, c]) )       the stride-1 correlation, circular
              Z   = C[n, o, ::s, ::s][:Ho, :Wo] + b
    dW        Gs  = G dilated by s to the stride-1 output size
              dWd = F^-1( sum_n F(Xpad)[n, c] * conj(F(Gs)[n, o]) )[:d(k-1)+1, :d(k-1)+1],   dW = dWd[::d, ::d]
    dX        dXpad = F^-1( sum_o F(Gs)[n, o] * F(Wd)[o, c] )                  the full convolution, circular
              dX  = crop(dXpad, p)
    db        sum of G over N, Ho, Wo

Size Hp x Wp is exactly enough for none of the circular sums to wrap around:
the correlation is read at shifts u <= Hp - (d(k-1) + 1), the convolution has
length Hp. The FFTs run in the inputs' precision (complex64 for float32, as a
GPU FFT would): the error is spread over the whole array rather than
proportional to each output's own terms.
"""

from __future__ import annotations

import numpy as np

from oracle.zoo.right._counterpart import bias_gradient, conv_config, padded, plus_bias


def _dilated(w, dilation):
    """The filter with ``d - 1`` zeros between its taps: (O, Cg, d(kH-1)+1, d(kW-1)+1)."""
    (dh, dw), (kh, kw) = dilation, w.shape[2:]
    out = np.zeros(w.shape[:2] + (dh * (kh - 1) + 1, dw * (kw - 1) + 1), dtype=w.dtype)
    out[:, :, ::dh, ::dw] = w
    return out


def _spectra(x, w, cfg):
    """``(F(Xpad) as (N, G, Cg, ...), F(Wd) as (G, Og, Cg, ...), (Hp, Wp))``."""
    g = cfg.groups
    xp = padded(x, cfg)
    size = xp.shape[2:]
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    xf = np.fft.rfft2(xp, s=size).reshape((n, g, cg) + (size[0], size[1] // 2 + 1))
    wf = np.fft.rfft2(_dilated(w, cfg.dilation), s=size).reshape((g, o // g, cg) + (size[0], size[1] // 2 + 1))
    return xf, wf, size


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """The stride-1 correlation through the FFT, subsampled by the stride, plus the bias."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups)
    xf, wf, size = _spectra(x, weight, cfg)
    corr = np.fft.irfft2(np.einsum("ngcuv,gocuv->ngouv", xf, wf.conj()), s=size)
    (sh, sw), (ho, wo) = cfg.stride, cfg.out_hw
    z = corr.reshape((x.shape[0], weight.shape[0]) + size)[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]
    return plus_bias(np.ascontiguousarray(z, dtype=cfg.dtype), bias)


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``(dX, dW, db or None)``: dW by FFT correlation of Xpad with Gs, dX by FFT convolution of Gs with Wd."""
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups, grad_output)
    xf, wf, size = _spectra(x, weight, cfg)
    n, o, (sh, sw), g = x.shape[0], weight.shape[0], cfg.stride, cfg.groups
    ext = [cfg.dilation[a] * (weight.shape[2 + a] - 1) + 1 for a in (0, 1)]
    gs = np.zeros((n, o, size[0] - ext[0] + 1, size[1] - ext[1] + 1), dtype=cfg.dtype)
    gs[:, :, ::sh, ::sw] = grad_output
    gf = np.fft.rfft2(gs, s=size).reshape((n, g, o // g) + (size[0], size[1] // 2 + 1))

    dwd = np.fft.irfft2(np.einsum("ngcuv,ngouv->gocuv", xf, gf.conj()), s=size)[..., : ext[0], : ext[1]]
    grad_weight = np.ascontiguousarray(dwd[..., :: cfg.dilation[0], :: cfg.dilation[1]].reshape(weight.shape), dtype=cfg.dtype)

    dxp = np.fft.irfft2(np.einsum("ngouv,gocuv->ngcuv", gf, wf), s=size).reshape((n, x.shape[1]) + size)
    (ph, pw), (h, w) = cfg.padding, x.shape[2:]
    grad_x = np.ascontiguousarray(dxp[:, :, ph : ph + h, pw : pw + w], dtype=cfg.dtype)
    return grad_x, grad_weight, bias_gradient(grad_output, bias)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "conv2d")
