"""Counterpart conv1d_fft: conv1d, forward and both gradients, by FFT (``conv3d_fft``'s rank-generic rules at rank 1)."""

from __future__ import annotations

from oracle.zoo.right.conv3d_fft import backward, forward


def conv1d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """The stride-1 correlation through the 1-D FFT, subsampled by the stride, plus the bias."""
    return forward(1, x, weight, bias, stride, padding, dilation, groups)


def conv1d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """``(dX, dW, db or None)`` by FFT correlation and convolution."""
    return backward(1, grad_output, x, weight, bias, stride, padding, dilation, groups)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "conv1d")
