"""conv2d and its backward: hand-computed examples, fixed configurations against torch, the named steps, bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from refimpl import conv2d, conv2d_backward
from refimpl.correlation import correlate, crop, dilate, flip, pad, swap_filter_channels

TOL = {np.float64: dict(rtol=1e-12, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


def arange_image(h, w):
    return np.arange(h * w, dtype=np.float64).reshape(1, 1, h, w)


def ones(*shape):
    return np.ones(shape)


class TestHandComputed:
    """Each expected array below is worked out by hand in the comment above it."""

    def test_6x6_with_3x3_filter(self):
        x, w = arange_image(6, 6), ones(1, 1, 3, 3)
        # Z[p, q] = sum of X[p:p+3, q:q+3] with X[r, c] = 6r + c  ->  54p + 9q + 63
        p, q = np.mgrid[0:4, 0:4]
        np.testing.assert_array_equal(conv2d(x, w)[0, 0], 54 * p + 9 * q + 63)
        gx, gw, gb = conv2d_backward(ones(1, 1, 4, 4), x, w)
        # each input pixel is covered by cnt(row) * cnt(col) windows, cnt = 1 2 3 3 2 1
        cnt = np.array([1, 2, 3, 3, 2, 1])
        np.testing.assert_array_equal(gx[0, 0], np.outer(cnt, cnt))
        # dW[i, j] = sum of X[i:i+4, j:j+4] = 96i + 16j + 168
        i, j = np.mgrid[0:3, 0:3]
        np.testing.assert_array_equal(gw[0, 0], 96 * i + 16 * j + 168)
        assert gb is None

    def test_stride_2(self):
        x, w = arange_image(5, 5), ones(1, 1, 3, 3)
        p, q = np.mgrid[0:2, 0:2]
        # windows at rows/cols 0-2 and 2-4 of X[r, c] = 5r + c: Z = 90p + 18q + 54
        np.testing.assert_array_equal(conv2d(x, w, stride=2)[0, 0], 90 * p + 18 * q + 54)
        gx, gw, gb = conv2d_backward(ones(1, 1, 2, 2), x, w, np.zeros(1), stride=2)
        cnt = np.array([1, 1, 2, 1, 1])  # row/col 2 is shared by both windows
        np.testing.assert_array_equal(gx[0, 0], np.outer(cnt, cnt))
        i, j = np.mgrid[0:3, 0:3]
        # dW[i, j] = sum_{p, q in {0, 1}} X[2p + i, 2q + j] = 20i + 4j + 24
        np.testing.assert_array_equal(gw[0, 0], 20 * i + 4 * j + 24)
        np.testing.assert_array_equal(gb, [4.0])

    def test_padding_1(self):
        x, w = ones(1, 1, 2, 2), ones(1, 1, 3, 3)
        # every 3x3 window of the zero-padded 4x4 covers all four ones
        np.testing.assert_array_equal(conv2d(x, w, padding=1)[0, 0], np.full((2, 2), 4.0))
        gx, gw, _ = conv2d_backward(ones(1, 1, 2, 2), x, w, padding=1)
        np.testing.assert_array_equal(gx[0, 0], np.full((2, 2), 4.0))
        # tap (i, j) sees ones in |{i, i+1} & {1, 2}| rows: 1 2 1
        np.testing.assert_array_equal(gw[0, 0], np.outer([1, 2, 1], [1, 2, 1]))


class TestNamedSteps:
    def test_dilate_inserts_stride_minus_one_zeros(self):
        g = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
        np.testing.assert_array_equal(dilate(g, (2, 3))[0, 0], [[1, 0, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]])
        assert dilate(g, (2, 2), size=(4, 5)).shape == (1, 1, 4, 5)

    def test_pad_crop_flip(self):
        a = np.arange(6.0).reshape(1, 1, 2, 3)
        np.testing.assert_array_equal(crop(pad(a, (1, 2)), (1, 2)), a)
        np.testing.assert_array_equal(flip(a)[0, 0], [[5, 4, 3], [2, 1, 0]])

    def test_swap_filter_channels_within_groups(self):
        w = np.arange(6, dtype=float).reshape(2, 3, 1, 1)  # groups=1: a plain transpose of (O, C)
        np.testing.assert_array_equal(swap_filter_channels(w, 1)[:, :, 0, 0], w[:, :, 0, 0].T)
        w = np.arange(4 * 2, dtype=float).reshape(4, 2, 1, 1)  # groups=2: Og=2, Cg=2
        s = swap_filter_channels(w, 2)[:, :, 0, 0]
        np.testing.assert_array_equal(s[:2], w[:2, :, 0, 0].T)
        np.testing.assert_array_equal(s[2:], w[2:, :, 0, 0].T)

    @pytest.mark.parametrize("shape,kernel,stride,dilation", [
        ((2, 3, 9, 8), (3, 2), (2, 1), (1, 2)),   # taps loop
        ((1, 2, 12, 12), (11, 10), (1, 1), (1, 1)),  # output-position loop (output smaller than filter)
    ])
    def test_correlate_both_loops_match_torch(self, shape, kernel, stride, dilation):
        rng = np.random.default_rng(0)
        x = rng.standard_normal(shape)
        w = rng.standard_normal((4, shape[1]) + kernel)
        want = F.conv2d(torch.tensor(x), torch.tensor(w), stride=stride, dilation=dilation).numpy()
        np.testing.assert_allclose(correlate(x, w, stride=stride, dilation=dilation), want, rtol=1e-12, atol=1e-12)

    def test_stride_s_backward_is_stride_1_backward_of_dilated_gradient(self):
        """The derivation's identity, on the reference itself (the property suite checks it on any implementation)."""
        rng = np.random.default_rng(1)
        x, w = rng.standard_normal((2, 2, 9, 8)), rng.standard_normal((3, 2, 3, 2))
        s, p, d = (3, 2), (1, 0), (2, 1)
        g = rng.standard_normal(conv2d(x, w, stride=s, padding=p, dilation=d).shape)
        gx, gw, _ = conv2d_backward(g, x, w, stride=s, padding=p, dilation=d)
        size = (9 + 2 - 2 * 2, 8 - 1)
        gx1, gw1, _ = conv2d_backward(dilate(g, s, size=size), x, w, padding=p, dilation=d)
        np.testing.assert_allclose(gx, gx1, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(gw, gw1, rtol=1e-13, atol=1e-13)


CONFIGS = [
    # (x shape, weight shape, stride, padding, dilation, groups, bias)
    ((1, 1, 6, 6), (1, 1, 3, 3), 1, 0, 1, 1, True),
    ((2, 3, 7, 9), (4, 3, 3, 2), (2, 1), (1, 0), 1, 1, True),
    ((2, 4, 8, 8), (6, 2, 3, 3), 1, 1, 2, 2, False),
    ((1, 6, 7, 7), (6, 1, 3, 3), 2, 1, 1, 6, True),  # depthwise
    ((3, 2, 10, 11), (2, 2, 2, 3), (3, 4), (2, 3), (3, 2), 1, True),
    ((1, 2, 2, 2), (3, 2, 4, 4), 1, 1, 1, 1, True),  # kernel wider than the unpadded input
    ((1, 1, 8, 8), (1, 1, 3, 3), 3, 0, 1, 1, True),  # rows left unused at the end
    ((1, 9, 32, 32), (3, 9, 5, 5), 3, 1, 1, 1, False),  # pytorch #25101
    ((2, 2, 9, 9), (2, 2, 1, 1), 4, 2, 1, 1, True),  # 1x1 kernel, stride >> 1, padded
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups,bias", CONFIGS)
def test_against_torch(xs, ws, stride, padding, dilation, groups, bias, dtype):
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    cfg = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xt, wt = torch.tensor(x, dtype=torch.float64, requires_grad=True), torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if bias else None
    zt = F.conv2d(xt, wt, bt, **cfg)
    g = rng.standard_normal(tuple(zt.shape)).astype(dtype)
    zt.backward(torch.tensor(g, dtype=torch.float64))
    copies = [a.copy() for a in (x, w, g)]
    z = conv2d(x, w, b, **cfg)
    gx, gw, gb = conv2d_backward(g, x, w, b, **cfg)
    for a, before in zip((x, w, g), copies):
        np.testing.assert_array_equal(a, before)  # never modified in place
    assert z.dtype == gx.dtype == gw.dtype == dtype
    np.testing.assert_allclose(z, zt.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(gx, xt.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(gw, wt.grad.numpy(), **TOL[dtype])
    if bias:
        np.testing.assert_allclose(gb, bt.grad.numpy(), **TOL[dtype])
    else:
        assert gb is None


X, W = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))


@pytest.mark.parametrize("call,error,match", [
    (lambda: conv2d(X[0], W), ValueError, "x must be 4-dimensional"),
    (lambda: conv2d(X, W[0]), ValueError, "weight must be 4-dimensional"),
    (lambda: conv2d(np.zeros((1, 3, 5, 5)), W), ValueError, "channels of x"),
    (lambda: conv2d(X, np.zeros((3, 1, 3, 3)), groups=2), ValueError, "groups=2 must divide the output channels"),
    (lambda: conv2d(np.zeros((1, 3, 5, 5)), np.zeros((3, 1, 3, 3)), groups=2), ValueError, "groups=2 must divide the input"),
    (lambda: conv2d(X, W, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: conv2d(X, W, stride=0), ValueError, "stride must be >= 1"),
    (lambda: conv2d(X, W, dilation=(1, 0)), ValueError, "dilation must be >= 1"),
    (lambda: conv2d(X, W, stride=(1, 2, 3)), ValueError, "stride must be an int or an"),
    (lambda: conv2d(X, W, stride=True), TypeError, "stride"),
    (lambda: conv2d(X, W, stride=1.5), TypeError, "stride"),
    (lambda: conv2d(X, W, groups=0), ValueError, "groups must be >= 1"),
    (lambda: conv2d(X, np.zeros((3, 2, 6, 6))), ValueError, "output size would be 0x0"),
    (lambda: conv2d(X, W, dilation=3), ValueError, "output size"),
    (lambda: conv2d(X.astype(int), W), TypeError, "x must have dtype float32 or float64"),
    (lambda: conv2d(X.tolist(), W), TypeError, "x must be a numpy.ndarray"),
    (lambda: conv2d(X, W.astype(np.float32)), TypeError, "share one dtype"),
    (lambda: conv2d(X, W, np.zeros(2)), ValueError, "bias must have shape"),
    (lambda: conv2d_backward(np.zeros((1, 3, 2, 2)), X, W), ValueError, "grad_output must have the forward output's shape"),
    (lambda: conv2d_backward(np.zeros((1, 3, 3, 3), np.float32), X, W), TypeError, "grad_output must have the inputs' dtype"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_config_is_keyword_only():
    with pytest.raises(TypeError):
        conv2d(X, W, None, 1)  # stride given positionally


def test_resnet_stage_runs_in_bounded_memory():
    """A batch of 32 images of 64 channels at 56x56 with a 3x3 kernel: forward and backward, float32."""
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    g = rng.standard_normal((32, 64, 56, 56), dtype=np.float32)
    tracemalloc.start()
    gx, gw, _ = conv2d_backward(g, x, w, padding=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert gx.shape == x.shape and gw.shape == w.shape
    assert peak < 6 * (x.nbytes + g.nbytes), f"peak {peak / 2**20:.0f} MiB: a kernel-size-fold copy?"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("check", ["backward", "finite_differences", "adjoint", "identities"])
def test_the_derivation_itself_passes_the_property_suite(check, dtype):
    """refimpl exports the fast path; the rule as derived (refimpl.derivation) gets the same checks."""
    from oracle.implementation import Implementation
    from oracle.suite import run_property

    run_property(Implementation.load("refimpl.derivation"), "conv2d", check, dtype)
