"""A conv2d that declines groups and dilation with NotImplementedError (refimpl's rules otherwise).

``bpcheck verify examples/partial_conv.py --ops conv2d`` reports it ``partial``:
the fraction of the drawn configurations verified, and "groups and dilation
declined"; with ``--require-full`` it exits 1.
"""

from refimpl import conv2d as _conv2d, conv2d_backward as _conv2d_backward


def _decline(dilation, groups):
    if groups > 1:
        raise NotImplementedError("groups > 1")
    if tuple(dilation) != (1, 1):
        raise NotImplementedError("dilation > 1")


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    _decline(dilation, groups)
    return _conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    _decline(dilation, groups)
    return _conv2d_backward(grad_output, x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
