"""A max-pool backward with two defects in one check, for ``bpcheck verify`` to report separately.

It reads each window from the unpadded input at padded coordinates: where the
window runs past the end of the input it raises IndexError, elsewhere it routes
the gradient to the wrong element. Without padding it is refimpl's.
"""

import numpy as np

from refimpl import max_pool2d, max_pool2d_backward as _max_pool2d_backward

__all__ = ["max_pool2d", "max_pool2d_backward"]


def max_pool2d_backward(grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    if tuple(padding) == (0, 0):
        return _max_pool2d_backward(grad_output, x, kernel_size=kernel_size, stride=stride, padding=padding,
                                    dilation=dilation, ceil_mode=ceil_mode)
    (kh, kw), (dh, dw) = kernel_size, dilation
    sh, sw = stride or kernel_size
    grad_x = np.zeros_like(x)
    for n, c, p, q in np.ndindex(*grad_output.shape):
        best = None
        for i in range(kh):
            for j in range(kw):
                r, s = p * sh + i * dh, q * sw + j * dw  # the bug: padded coordinates, unpadded x
                if best is None or x[n, c, r, s] > x[best]:
                    best = (n, c, r, s)
        grad_x[best] += grad_output[n, c, p, q]
    return grad_x
