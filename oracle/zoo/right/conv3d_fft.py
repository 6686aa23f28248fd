"""Counterpart conv3d_fft: conv3d, forward and both gradients, by FFT-based correlation and convolution.

The rules of ``conv_fft`` (conv2d's) for any spatial rank r, the FFTs r-dimensional: with
``Xpad`` the padded input, ``Wd`` the filter dilated by d and ``F`` the real FFT of Xpad's
size, per group,

    forward   Z   = F^-1( sum_c F(Xpad)[n, c] * conj(F(Wd)[o, c]) )[::s] (first Ho, ...) + b
    dW        dWd = F^-1( sum_n F(Xpad)[n, c] * conj(F(Gs)[n, o]) )[:d(k-1)+1],  dW = dWd[::d]
    dX        dX  = crop(F^-1( sum_o F(Gs)[n, o] * F(Wd)[o, c] ), p)

with ``Gs`` the output gradient dilated by s to the stride-1 output size. Xpad's size is
exactly enough for none of the circular sums to wrap around. The FFTs run in the inputs'
precision (complex64 for float32): the error is normwise, spread over the whole array.
The rank-generic functions below also serve ``conv1d_fft`` and ``conv_transpose2d_fft``.
"""

from __future__ import annotations

import numpy as np

from oracle.zoo.right._counterpart import bias_gradient, plus_bias
from refimpl.arguments import check_grad_output
from refimpl.convolution import conv_config


def _spectrum(a, size):
    """The real FFT of ``a`` over its trailing ``len(size)`` axes, zero-extended to ``size``."""
    return np.fft.rfftn(a, s=size, axes=tuple(range(a.ndim - len(size), a.ndim)))


def _inverse(a, size):
    return np.fft.irfftn(a, s=size, axes=tuple(range(a.ndim - len(size), a.ndim)))


def _dilated(w, dilation):
    """The filter with ``d - 1`` zeros between its taps on every spatial axis."""
    kernel = w.shape[2:]
    out = np.zeros(w.shape[:2] + tuple(d * (k - 1) + 1 for d, k in zip(dilation, kernel)), dtype=w.dtype)
    out[(...,) + tuple(slice(None, None, d) for d in dilation)] = w
    return out


def _spread(g, stride, size):
    """``g`` with ``s - 1`` zeros between its elements, zero-extended to ``size`` (the stride-1 output size)."""
    out = np.zeros(g.shape[:2] + tuple(size), dtype=g.dtype)
    out[(...,) + tuple(slice(0, s * (n - 1) + 1, s) for s, n in zip(stride, g.shape[2:]))] = g
    return out


def _padded(x, padding):
    return np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in padding])


def _grouped(f, groups):
    """A spectrum ``(A, C, ...)`` as ``(A, G, C // G, ...)``."""
    return f.reshape(f.shape[:1] + (groups, f.shape[1] // groups) + f.shape[2:])


def correlation(x, w, stride, padding, dilation, groups):
    """The forward correlation without the bias: ``(N, O, *out)``."""
    xp = _padded(x, padding)
    size = xp.shape[2:]
    xf = _grouped(_spectrum(xp, size), groups)  # (N, G, Cg, ...)
    wf = _spectrum(_dilated(w, dilation), size)
    wf = wf.reshape((groups, w.shape[0] // groups) + wf.shape[1:])  # (G, Og, Cg, ...)
    corr = _inverse(np.einsum("ngc...,goc...->ngo...", xf, wf.conj()), size)
    corr = corr.reshape((x.shape[0], w.shape[0]) + size)
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, w.shape[2:])]
    out = [(n - e) // s + 1 for n, e, s in zip(size, ext, stride)]
    return corr[(...,) + tuple(slice(0, s * (o - 1) + 1, s) for s, o in zip(stride, out))]


def grad_input(g, w, in_size, stride, padding, dilation, groups):
    """dX of a correlation of an input of ``in_size`` with ``w``, for output gradient ``g``: ``(N, C, *in_size)``."""
    size = tuple(n + 2 * p for n, p in zip(in_size, padding))
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, w.shape[2:])]
    gf = _grouped(_spectrum(_spread(g, stride, [n - e + 1 for n, e in zip(size, ext)]), size), groups)  # (N, G, Og, ...)
    wf = _spectrum(_dilated(w, dilation), size)
    wf = wf.reshape((groups, w.shape[0] // groups) + wf.shape[1:])
    dxp = _inverse(np.einsum("ngo...,goc...->ngc...", gf, wf), size)
    dxp = dxp.reshape((g.shape[0], groups * w.shape[1]) + size)
    return dxp[(...,) + tuple(slice(p, p + n) for p, n in zip(padding, in_size))]


def grad_weight(g, x, kernel, stride, padding, dilation, groups):
    """dW of the correlation of ``x`` with a filter of ``kernel`` taps, for output gradient ``g``: ``(O, Cg, *kernel)``."""
    xp = _padded(x, padding)
    size = xp.shape[2:]
    ext = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    xf = _grouped(_spectrum(xp, size), groups)
    gf = _grouped(_spectrum(_spread(g, stride, [n - e + 1 for n, e in zip(size, ext)]), size), groups)
    dwd = _inverse(np.einsum("ngc...,ngo...->goc...", xf, gf.conj()), size)[(...,) + tuple(slice(0, e) for e in ext)]
    dw = dwd[(...,) + tuple(slice(None, None, d) for d in dilation)]
    return dw.reshape((g.shape[1], x.shape[1] // groups) + tuple(kernel))


def forward(rank, x, weight, bias, stride, padding, dilation, groups):
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups, rank=rank, what=f"conv{rank}d")
    z = correlation(x, weight, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    return plus_bias(np.ascontiguousarray(z, dtype=cfg.dtype), bias)


def backward(rank, grad_output, x, weight, bias, stride, padding, dilation, groups):
    cfg = conv_config(x, weight, bias, stride, padding, dilation, groups, rank=rank, what=f"conv{rank}d")
    check_grad_output(grad_output, (x.shape[0], weight.shape[0]) + cfg.out_size, cfg.dtype)
    args = (cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    grad_x = grad_input(grad_output, weight, x.shape[2:], *args)
    grad_w = grad_weight(grad_output, x, weight.shape[2:], *args)
    return (np.ascontiguousarray(grad_x, dtype=cfg.dtype), np.ascontiguousarray(grad_w, dtype=cfg.dtype),
            bias_gradient(grad_output, bias))


def conv3d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """The stride-1 correlation through the 3-D FFT, subsampled by the stride, plus the bias."""
    return forward(3, x, weight, bias, stride, padding, dilation, groups)


def conv3d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``(dX, dW, db or None)``: dW by FFT correlation of Xpad with Gs, dX by FFT convolution of Gs with Wd."""
    return backward(3, grad_output, x, weight, bias, stride, padding, dilation, groups)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "conv3d")
