"""refimpl.pooling: max_pool2d / avg_pool2d forward and backward.

Four layers of evidence:
  * hand-computed examples small enough to check on paper;
  * torch autograd on a fixed list of configurations, in float64 and float32;
  * field regressions taken from PyTorch issues, compared with a brute-force
    loop reference written here (and with torch where torch is right);
  * argument validation and no in-place modification of inputs.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from refimpl import pooling_derivation as derivation
from refimpl.pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

TOLERANCE_FLOAT64 = dict(rtol=1e-12, atol=1e-12)
TOLERANCE_FLOAT32 = dict(rtol=1e-5, atol=1e-6)

DTYPES = [np.float64, np.float32]


def tolerance(dtype) -> dict:
    return TOLERANCE_FLOAT64 if np.dtype(dtype) == np.float64 else TOLERANCE_FLOAT32


def as_nchw(rows) -> np.ndarray:
    """A 2-D list as a float64 (1, 1, H, W) array."""
    return np.array(rows, dtype=np.float64)[np.newaxis, np.newaxis]


# --------------------------------------------------------------------------- references


def torch_pool(torch_fn, x: np.ndarray, grad_output: np.ndarray | None, **config):
    """``(y, grad_x)`` from torch autograd on a copy of ``x``; ``grad_x`` is None without ``grad_output``."""
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch_fn(xt, **config)
    if grad_output is None:
        return yt.detach().numpy(), None
    yt.backward(torch.from_numpy(grad_output.copy()))
    return yt.detach().numpy(), xt.grad.numpy()


def torch_output_size(size, kernel, stride, padding, dilation, ceil_mode) -> int:
    """torch's pooling_output_shape, written out independently of refimpl.arguments."""
    numerator = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1  # floor division, as torch's div_rtn
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def loop_max_pool(x, grad_output, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Brute-force max pooling: one Python loop per window, scanning it like torch's CPU kernel."""
    (kh, kw), (ph, pw), (dh, dw) = pair(kernel_size), pair(padding), pair(dilation)
    sh, sw = pair(kernel_size if stride is None else stride)
    n, c, h, w = x.shape
    ho = torch_output_size(h, kh, sh, ph, dh, ceil_mode)
    wo = torch_output_size(w, kw, sw, pw, dw, ceil_mode)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    grad_x = np.zeros_like(x)
    for b, ch, p, q in itertools.product(range(n), range(c), range(ho), range(wo)):
        best, where = -np.inf, None
        for i, j in itertools.product(range(kh), range(kw)):
            r, s = p * sh - ph + i * dh, q * sw - pw + j * dw
            if not (0 <= r < h and 0 <= s < w):
                continue
            value = x[b, ch, r, s]
            if where is None:
                where = (r, s)  # torch seeds the arg-max with the first input element
            if value > best or np.isnan(value):
                best, where = value, (r, s)
        y[b, ch, p, q] = best
        if grad_output is not None:
            grad_x[b, ch, where[0], where[1]] += grad_output[b, ch, p, q]
    return y, grad_x


def loop_avg_pool(
    x, grad_output, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None,
):
    """Brute-force average pooling: one Python loop per window."""
    (kh, kw), (ph, pw) = pair(kernel_size), pair(padding)
    sh, sw = pair(kernel_size if stride is None else stride)
    n, c, h, w = x.shape
    ho = torch_output_size(h, kh, sh, ph, 1, ceil_mode)
    wo = torch_output_size(w, kw, sw, pw, 1, ceil_mode)
    y = np.empty((n, c, ho, wo), dtype=x.dtype)
    grad_x = np.zeros_like(x)
    for b, ch, p, q in itertools.product(range(n), range(c), range(ho), range(wo)):
        r0, s0 = p * sh - ph, q * sw - pw
        inside = [(r, s) for r in range(r0, r0 + kh) for s in range(s0, s0 + kw) if 0 <= r < h and 0 <= s < w]
        if divisor_override is not None:
            divisor = divisor_override
        elif count_include_pad:  # the window clipped to input + padding, never the ceil_mode overhang
            divisor = (min(r0 + kh, h + ph) - r0) * (min(s0 + kw, w + pw) - s0)
        else:
            divisor = len(inside)
        y[b, ch, p, q] = sum(x[b, ch, r, s] for r, s in inside) / divisor
        if grad_output is not None:
            for r, s in inside:
                grad_x[b, ch, r, s] += grad_output[b, ch, p, q] / divisor
    return y, grad_x


def finite_difference_gradient(f, x, grad_output, eps=1e-6):
    """d(sum(grad_output * f(x))) / dx by central differences (float64)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        shifted = x.copy()
        shifted[index] += eps
        up = np.sum(grad_output * f(shifted))
        shifted[index] -= 2 * eps
        down = np.sum(grad_output * f(shifted))
        grad[index] = (up - down) / (2 * eps)
    return grad


def random_input(shape, dtype, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def random_grad_output(shape, dtype, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- hand-computed examples


def test_max_pool_2x2_stride_2_routes_each_gradient_to_its_window_max():
    x = as_nchw([[1, 2, 5, 3],
                 [4, 0, 1, 6],
                 [7, 8, 2, 2],
                 [3, 9, 4, 1]])
    g = as_nchw([[1, 2],
                 [3, 4]])
    np.testing.assert_array_equal(max_pool2d(x, kernel_size=2), as_nchw([[4, 6], [9, 4]]))
    np.testing.assert_array_equal(
        max_pool2d_backward(g, x, kernel_size=2),
        as_nchw([[0, 0, 0, 0],
                 [1, 0, 0, 2],
                 [0, 0, 0, 0],
                 [0, 3, 4, 0]]),
    )


def test_max_pool_tie_gives_the_whole_gradient_to_the_first_maximum():
    x = as_nchw([[3, 3],
                 [3, 1]])
    g = as_nchw([[5]])
    np.testing.assert_array_equal(max_pool2d(x, kernel_size=2), as_nchw([[3]]))
    np.testing.assert_array_equal(max_pool2d_backward(g, x, kernel_size=2), as_nchw([[5, 0], [0, 0]]))


def test_max_pool_overlapping_windows_sharing_the_argmax_add_their_gradients():
    # kernel 3, stride 2, padding 1 on 3x3: all four windows contain the centre.
    x = as_nchw([[1, 2, 3],
                 [4, 100, 5],
                 [6, 7, 8]])
    g = as_nchw([[1, 2],
                 [3, 4]])
    config = dict(kernel_size=3, stride=2, padding=1)
    np.testing.assert_array_equal(max_pool2d(x, **config), as_nchw([[100, 100], [100, 100]]))
    np.testing.assert_array_equal(
        max_pool2d_backward(g, x, **config), as_nchw([[0, 0, 0], [0, 10, 0], [0, 0, 0]])
    )


def test_max_pool_padding_never_wins_even_against_minus_infinity():
    # Every window's input elements are -inf, like its padding; the gradient still goes to
    # the window's first input element (torch's seed), never to padding.
    x = np.full((1, 1, 3, 3), -np.inf)
    g = as_nchw([[1, 2], [3, 4]])
    config = dict(kernel_size=3, stride=2, padding=1)
    np.testing.assert_array_equal(max_pool2d(x, **config), np.full((1, 1, 2, 2), -np.inf))
    # windows start at (-1,-1), (-1,1), (1,-1), (1,1): first input elements (0,0), (0,1), (1,0), (1,1)
    np.testing.assert_array_equal(
        max_pool2d_backward(g, x, **config), as_nchw([[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    )
    np.testing.assert_array_equal(max_pool2d_backward(g, x, **config), torch_pool(F.max_pool2d, x, g, **config)[1])


def test_max_pool_nan_wins_and_the_last_nan_takes_the_gradient():
    # torch's CPU kernel: `if ((val > maxval) || std::isnan(val))` -- a NaN always replaces.
    x = as_nchw([[np.nan, 5],
                 [np.nan, 3]])
    g = as_nchw([[7]])
    assert np.isnan(max_pool2d(x, kernel_size=2)).all()
    np.testing.assert_array_equal(max_pool2d_backward(g, x, kernel_size=2), as_nchw([[0, 0], [7, 0]]))
    # and a NaN is never replaced by a later, larger number
    x = as_nchw([[1, np.nan],
                 [9, 3]])
    assert np.isnan(max_pool2d(x, kernel_size=2)).all()
    np.testing.assert_array_equal(max_pool2d_backward(g, x, kernel_size=2), as_nchw([[0, 7], [0, 0]]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_max_pool_signed_zero_tie_keeps_the_first_zero(dtype):
    x = np.array([[[[-0.0, 0.0, 0.0, -0.0]]]], dtype=dtype)
    y = max_pool2d(x, kernel_size=(1, 2))
    np.testing.assert_array_equal(np.signbit(y), [[[[True, False]]]])
    np.testing.assert_array_equal(np.signbit(y), np.signbit(torch_pool(F.max_pool2d, x, None, kernel_size=(1, 2))[0]))


def test_max_pool_infinite_grad_output_reaches_only_the_argmax():
    x = as_nchw([[1, 2], [3, 4]])
    g = as_nchw([[np.inf]])
    np.testing.assert_array_equal(max_pool2d_backward(g, x, kernel_size=2), as_nchw([[0, 0], [0, np.inf]]))


@pytest.mark.parametrize(
    "count_include_pad, expected_y, expected_grad",
    [
        # each window holds one input element and three padding cells
        (True, [[0.25, 0.5], [0.75, 1.0]], [[0.25, 0.25], [0.25, 0.25]]),
        (False, [[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]),
    ],
)
def test_avg_pool_with_padding_counts_padding_only_if_asked(count_include_pad, expected_y, expected_grad):
    x = as_nchw([[1, 2], [3, 4]])
    config = dict(kernel_size=2, stride=2, padding=1, count_include_pad=count_include_pad)
    np.testing.assert_allclose(avg_pool2d(x, **config), as_nchw(expected_y), **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(
        avg_pool2d_backward(np.ones((1, 1, 2, 2)), x, **config), as_nchw(expected_grad), **TOLERANCE_FLOAT64
    )


def test_avg_pool_divisor_override_replaces_the_window_size():
    # pytorch#62636: AvgPool2d(2, divisor_override=2) on ones gives 2, not 1.
    x = np.ones((1, 1, 4, 4))
    np.testing.assert_array_equal(avg_pool2d(x, kernel_size=2, divisor_override=2), np.full((1, 1, 2, 2), 2.0))
    np.testing.assert_array_equal(
        avg_pool2d_backward(np.ones((1, 1, 2, 2)), x, kernel_size=2, divisor_override=2),
        np.full((1, 1, 4, 4), 0.5),
    )
    # a negative override is allowed (torch only rejects 0)
    np.testing.assert_array_equal(avg_pool2d(x, kernel_size=2, divisor_override=-4), np.full((1, 1, 2, 2), -1.0))


def test_avg_pool_ceil_mode_window_overhanging_the_edge_divides_by_its_part_inside():
    # width 5, kernel 2, stride 2, ceil_mode: the last window covers x[4] and the overhang.
    x = as_nchw([[1, 2, 3, 4, 5]])
    config = dict(kernel_size=(1, 2), stride=(1, 2), ceil_mode=True)
    np.testing.assert_array_equal(avg_pool2d(x, **config), as_nchw([[1.5, 3.5, 5.0]]))
    np.testing.assert_array_equal(
        avg_pool2d_backward(np.ones((1, 1, 1, 3)), x, **config), as_nchw([[0.5, 0.5, 0.5, 0.5, 1.0]])
    )


def test_max_pool_ceil_mode_window_overhanging_the_edge_sees_only_the_input():
    x = as_nchw([[1, 7, 3, 4, -5]])
    config = dict(kernel_size=(1, 2), stride=(1, 2), ceil_mode=True)
    np.testing.assert_array_equal(max_pool2d(x, **config), as_nchw([[7, 4, -5]]))
    np.testing.assert_array_equal(
        max_pool2d_backward(as_nchw([[1, 2, 3]]), x, **config), as_nchw([[0, 1, 0, 2, 3]])
    )


# --------------------------------------------------------------------------- against torch autograd

MAX_POOL_CASES = [
    # (input shape, config)
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 8, 8), dict(kernel_size=2, stride=2)),
    ((2, 3, 9, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 9, 7), dict(kernel_size=3, stride=1, padding=1)),
    ((1, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((1, 2, 7, 9), dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0))),
    ((2, 2, 10, 11), dict(kernel_size=3, stride=2, dilation=2)),
    ((2, 2, 10, 11), dict(kernel_size=3, stride=1, padding=1, dilation=(2, 3))),
    ((2, 2, 7, 7), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ((2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((1, 2, 9, 10), dict(kernel_size=3, stride=3, padding=1, dilation=2, ceil_mode=True)),
    ((1, 2, 11, 6), dict(kernel_size=(4, 2), stride=(3, 4), padding=(2, 1), ceil_mode=True)),
    ((3, 1, 5, 5), dict(kernel_size=5)),
    ((1, 1, 6, 7), dict(kernel_size=1, stride=2, ceil_mode=True)),
]

AVG_POOL_CASES = [
    ((2, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 9, 9), dict(kernel_size=3, stride=2, padding=1)),
    ((2, 3, 9, 9), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    ((1, 2, 7, 9), dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ((1, 2, 7, 9), dict(kernel_size=(3, 2), stride=(2, 3), padding=(0, 1), count_include_pad=False)),
    ((2, 2, 7, 7), dict(kernel_size=2, stride=2, ceil_mode=True)),
    ((2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ((2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ((1, 2, 11, 6), dict(kernel_size=(4, 2), stride=(3, 4), padding=(2, 1), ceil_mode=True)),
    ((2, 2, 8, 8), dict(kernel_size=3, stride=2, padding=1, divisor_override=5)),
    ((2, 2, 8, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=4)),
    ((2, 2, 8, 9), dict(kernel_size=2, padding=1, count_include_pad=False, divisor_override=-3)),
    ((3, 1, 5, 5), dict(kernel_size=5)),
]


def case_id(case) -> str:
    shape, config = case
    return "x".join(map(str, shape)) + "-" + "-".join(f"{k}={v}" for k, v in config.items())


def check_against_torch(forward, backward, torch_forward, x, config, dtype):
    """forward and backward of one pooling configuration vs torch autograd, both dtypes kept."""
    y = forward(x, **config)
    g = random_grad_output(y.shape, dtype)
    grad_x = backward(g, x, **config)
    torch_y, torch_grad_x = torch_pool(torch_forward, x, g, **config)
    assert y.dtype == grad_x.dtype == dtype
    assert y.shape == torch_y.shape and grad_x.shape == x.shape
    np.testing.assert_allclose(y, torch_y, **tolerance(dtype))
    np.testing.assert_allclose(grad_x, torch_grad_x, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=case_id)
def test_max_pool_matches_torch(case, dtype):
    shape, config = case
    x = random_input(shape, dtype)
    x.flat[::7] = x.flat[3]  # plant ties
    check_against_torch(max_pool2d, max_pool2d_backward, F.max_pool2d, x, config, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=case_id)
def test_avg_pool_matches_torch(case, dtype):
    shape, config = case
    check_against_torch(avg_pool2d, avg_pool2d_backward, F.avg_pool2d, random_input(shape, dtype), config, dtype)


@pytest.mark.parametrize("case", MAX_POOL_CASES[:6] + MAX_POOL_CASES[8:12], ids=case_id)
def test_max_pool_matches_loop_reference_with_nan_and_infinities(case):
    shape, config = case
    x = np.random.default_rng(2).choice([np.nan, -np.inf, np.inf, -1.0, 0.5, 2.0], size=shape)
    y = max_pool2d(x, **config)
    g = random_grad_output(y.shape, np.float64)
    loop_y, loop_grad = loop_max_pool(x, g, **config)
    np.testing.assert_array_equal(y, loop_y)
    np.testing.assert_array_equal(max_pool2d_backward(g, x, **config), loop_grad)
    torch_y, torch_grad = torch_pool(F.max_pool2d, x, g, **config)
    np.testing.assert_array_equal(y, torch_y)
    np.testing.assert_array_equal(max_pool2d_backward(g, x, **config), torch_grad)


def test_max_pool_gradient_matches_finite_differences():
    x = np.random.default_rng(3).permutation(5 * 6).reshape(1, 1, 5, 6) * 0.1  # distinct values: no ties
    config = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    g = random_grad_output(max_pool2d(x, **config).shape, np.float64)
    numeric = finite_difference_gradient(lambda a: max_pool2d(a, **config), x, g)
    np.testing.assert_allclose(max_pool2d_backward(g, x, **config), numeric, rtol=1e-6, atol=1e-6)


def test_avg_pool_gradient_matches_finite_differences():
    x = random_input((1, 2, 5, 6), np.float64)
    config = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
    g = random_grad_output(avg_pool2d(x, **config).shape, np.float64)
    numeric = finite_difference_gradient(lambda a: avg_pool2d(a, **config), x, g)
    np.testing.assert_allclose(avg_pool2d_backward(g, x, **config), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_three_dimensional_input_is_a_batch_of_one(dtype):
    x = random_input((3, 7, 8), dtype)
    for forward, backward, torch_fn, config in [
        (max_pool2d, max_pool2d_backward, F.max_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        (avg_pool2d, avg_pool2d_backward, F.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ]:
        y = forward(x, **config)
        g = random_grad_output(y.shape, dtype)
        grad_x = backward(g, x, **config)
        assert y.ndim == 3 and grad_x.shape == x.shape and y.dtype == grad_x.dtype == dtype
        np.testing.assert_array_equal(y, forward(x[np.newaxis], **config)[0])
        np.testing.assert_array_equal(grad_x, backward(g[np.newaxis], x[np.newaxis], **config)[0])
        torch_y, torch_grad = torch_pool(torch_fn, x, g, **config)
        np.testing.assert_allclose(y, torch_y, **tolerance(dtype))
        np.testing.assert_allclose(grad_x, torch_grad, **tolerance(dtype))


# --------------------------------------------------------------------------- field regressions (PyTorch issues)


def test_issue_45357_ceil_mode_drops_a_last_window_starting_past_the_input():
    # kernel 1, stride 2, ceil_mode on 6x7: a 4th row would start at row 6, outside; torch once produced it (-inf).
    x = random_input((1, 1, 6, 7), np.float64)
    config = dict(kernel_size=1, stride=2, ceil_mode=True)
    y = max_pool2d(x, **config)
    assert y.shape == (1, 1, 3, 4)
    np.testing.assert_array_equal(y, x[:, :, ::2, ::2])
    g = random_grad_output(y.shape, np.float64)
    expected_grad = np.zeros_like(x)
    expected_grad[:, :, ::2, ::2] = g
    np.testing.assert_array_equal(max_pool2d_backward(g, x, **config), expected_grad)
    np.testing.assert_array_equal(y, torch_pool(F.max_pool2d, x, None, **config)[0])


def test_issue_114216_windows_holding_only_padding_are_rejected():
    # Height 1, kernel 3, dilation 2, padding 1: each window's rows are -1, 1, 3 -- never row 0.
    # torch returns a row of -inf (its maintainers call the configuration invalid); its backward
    # writes to an out-of-range index. We reject it. (Not run through torch: its backward can
    # corrupt the heap.)
    x = random_input((1, 1, 1, 224), np.float32)
    config = dict(kernel_size=3, stride=6, padding=1, dilation=2, ceil_mode=True)
    with pytest.raises(ValueError, match="padding"):
        max_pool2d(x, **config)
    with pytest.raises(ValueError, match="padding"):
        max_pool2d_backward(np.zeros((1, 1, 1, 38), np.float32), x, **config)


def test_padding_only_windows_are_rejected_without_ceil_mode_too():
    # Same trap with a valid output size: kernel 2, dilation 2, padding 1 on height 1 (rows -1 and 1).
    x = random_input((1, 1, 1, 8), np.float64)
    with pytest.raises(ValueError, match="holds only padding"):
        max_pool2d(x, kernel_size=2, padding=1, dilation=2)


def test_issue_114219_ceil_mode_row_with_padding_and_ties():
    # windows over [-1,0], [1,2], [3,4], [5,6], [7,8]: padding on both ends, ties inside.
    x = as_nchw([[1, 1, 2, 2, 2, 0, 3, 3]])
    config = dict(kernel_size=2, stride=2, padding=1, ceil_mode=True)
    g = as_nchw([[1, 2, 3, 4, 5]])
    y = max_pool2d(x, **config)
    grad_x = max_pool2d_backward(g, x, **config)
    np.testing.assert_array_equal(y, as_nchw([[1, 2, 2, 3, 3]]))
    np.testing.assert_array_equal(grad_x, as_nchw([[1, 0, 2, 3, 0, 0, 4, 5]]))
    loop_y, loop_grad = loop_max_pool(x, g, **config)
    np.testing.assert_array_equal(y, loop_y)
    np.testing.assert_array_equal(grad_x, loop_grad)
    torch_y, torch_grad = torch_pool(F.max_pool2d, x, g, **config)
    np.testing.assert_array_equal(y, torch_y)
    np.testing.assert_array_equal(grad_x, torch_grad)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_issue_122024_overlapping_windows_accumulate_a_shared_argmax(dtype):
    # kernel 3, stride 2, padding 1 (ResNet's stem pool): planted maxima on the shared
    # rows/columns are the arg-max of up to four windows; assignment instead of += loses gradient.
    x = random_input((2, 3, 9, 9), dtype)
    x[:, :, 2::2, 2::2] += 10
    config = dict(kernel_size=3, stride=2, padding=1)
    g = random_grad_output(max_pool2d(x, **config).shape, dtype)
    grad_x = max_pool2d_backward(g, x, **config)
    _, loop_grad = loop_max_pool(x, g, **config)
    _, torch_grad = torch_pool(F.max_pool2d, x, g, **config)
    np.testing.assert_allclose(grad_x, loop_grad, **tolerance(dtype))
    np.testing.assert_allclose(grad_x, torch_grad, **tolerance(dtype))
    np.testing.assert_allclose(grad_x.sum(), g.sum(), rtol=1e-5)  # every window routes all of its gradient


def test_issue_36977_avg_pool_ceil_mode_with_padding_gives_no_nan():
    # torch <= 1.5 produced a window starting in the right padding and divided 0 by 0.
    x = random_input((1, 16, 4, 4), np.float64)
    config = dict(kernel_size=(1, 2), stride=(2, 2), padding=(0, 1), ceil_mode=True, count_include_pad=True)
    y = avg_pool2d(x, **config)
    g = random_grad_output(y.shape, np.float64)
    grad_x = avg_pool2d_backward(g, x, **config)
    assert y.shape == (1, 16, 2, 3)
    assert np.isfinite(y).all() and np.isfinite(grad_x).all()
    loop_y, loop_grad = loop_avg_pool(x, g, **config)
    np.testing.assert_allclose(y, loop_y, **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(grad_x, loop_grad, **TOLERANCE_FLOAT64)
    torch_y, torch_grad = torch_pool(F.avg_pool2d, x, g, **config)
    np.testing.assert_allclose(y, torch_y, **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(grad_x, torch_grad, **TOLERANCE_FLOAT64)


@pytest.mark.parametrize(
    "shape, config",
    [
        ((1, 1, 1, 7), dict(kernel_size=(1, 3), stride=(1, 2), ceil_mode=True)),
        ((1, 2, 6, 6), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        ((1, 2, 7, 7), dict(kernel_size=2, stride=3, ceil_mode=True)),
    ],
)
def test_issue_198119_ceil_mode_overhang_is_not_counted_with_count_include_pad(shape, config):
    # Inductor's backward divided an overhanging window by kH*kW; eager CPU divides by the
    # window clipped to input + padding, as the loop reference does.
    x = random_input(shape, np.float64)
    y = avg_pool2d(x, **config)
    g = random_grad_output(y.shape, np.float64)
    grad_x = avg_pool2d_backward(g, x, **config)
    loop_y, loop_grad = loop_avg_pool(x, g, **config)
    np.testing.assert_allclose(y, loop_y, **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(grad_x, loop_grad, **TOLERANCE_FLOAT64)
    torch_y, torch_grad = torch_pool(F.avg_pool2d, x, g, **config)
    np.testing.assert_allclose(y, torch_y, **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(grad_x, torch_grad, **TOLERANCE_FLOAT64)


def test_issue_198119_example_from_the_report():
    # width 6, kernel 3, stride 2, ceil_mode: the last window covers x[4], x[5] and one overhang
    # cell, so its two elements get 1/2 each (Inductor gave 1/3).
    x = as_nchw([[0, 1, 2, 3, 4, 5]])
    config = dict(kernel_size=(1, 3), stride=(1, 2), ceil_mode=True)
    np.testing.assert_allclose(avg_pool2d(x, **config), as_nchw([[1, 3, 4.5]]), **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(
        avg_pool2d_backward(np.ones((1, 1, 1, 3)), x, **config),
        as_nchw([[1 / 3, 1 / 3, 2 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2]]),
        **TOLERANCE_FLOAT64,
    )


def test_issue_188344_avg_pool_backward_with_padding_and_overlap():
    # torch's CUDA channels_last backward ignored the padding offset; the CPU NCHW result and the
    # loop reference agree. Checked here against both, and against CPU channels_last.
    x = np.arange(1 * 2 * 4 * 4, dtype=np.float64).reshape(1, 2, 4, 4)
    config = dict(kernel_size=2, stride=1, padding=1)
    y = avg_pool2d(x, **config)
    g = np.ones_like(y)
    grad_x = avg_pool2d_backward(g, x, **config)
    np.testing.assert_allclose(grad_x, np.full_like(x, 1.0), **TOLERANCE_FLOAT64)  # 4 windows * 1/4 each
    loop_y, loop_grad = loop_avg_pool(x, g, **config)
    np.testing.assert_allclose(y, loop_y, **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(grad_x, loop_grad, **TOLERANCE_FLOAT64)
    xt = torch.from_numpy(x.copy()).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    F.avg_pool2d(xt, **config).backward(torch.from_numpy(g))
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), **TOLERANCE_FLOAT64)


def test_issue_62636_divisor_override_against_torch():
    x = random_input((2, 3, 6, 6), np.float64)
    config = dict(kernel_size=3, stride=2, padding=1, divisor_override=2)
    y = avg_pool2d(x, **config)
    g = random_grad_output(y.shape, np.float64)
    torch_y, torch_grad = torch_pool(F.avg_pool2d, x, g, **config)
    np.testing.assert_allclose(y, torch_y, **TOLERANCE_FLOAT64)
    np.testing.assert_allclose(avg_pool2d_backward(g, x, **config), torch_grad, **TOLERANCE_FLOAT64)


# --------------------------------------------------------------------------- argument validation

X = np.zeros((1, 1, 6, 6))

BAD_COMMON_ARGUMENTS = [
    # (overrides of dict(kernel_size=2), error type, match)
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(kernel_size=(2, -1)), ValueError, "kernel_size"),
    (dict(kernel_size=2.0), TypeError, "kernel_size"),
    (dict(kernel_size=True), TypeError, "kernel_size"),
    (dict(kernel_size=(2, 2, 2)), ValueError, "kernel_size"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=(2, True)), TypeError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding=False), TypeError, "padding"),
    (dict(kernel_size=3, padding=2), ValueError, "padding"),
    (dict(kernel_size=(2, 1), padding=(0, 1)), ValueError, "padding"),
    (dict(kernel_size=7), ValueError, "output size"),
    (dict(ceil_mode=1), TypeError, "ceil_mode"),
]
BAD_MAX_ONLY = [
    (dict(dilation=0), ValueError, "dilation"),
    (dict(dilation=True), TypeError, "dilation"),
    (dict(kernel_size=3, dilation=3), ValueError, "output size"),
]
BAD_AVG_ONLY = [
    (dict(divisor_override=0), ValueError, "divisor_override"),
    (dict(divisor_override=2.5), TypeError, "divisor_override"),
    (dict(divisor_override=True), TypeError, "divisor_override"),
    (dict(count_include_pad=0), TypeError, "count_include_pad"),
]


BAD_ARGUMENT_CASES = [
    pytest.param(forward, backward, *bad, id=f"{forward.__name__}-{i}")
    for forward, backward, bads in (
        (max_pool2d, max_pool2d_backward, BAD_COMMON_ARGUMENTS + BAD_MAX_ONLY),
        (avg_pool2d, avg_pool2d_backward, BAD_COMMON_ARGUMENTS + BAD_AVG_ONLY),
    )
    for i, bad in enumerate(bads)
]


@pytest.mark.parametrize("forward, backward, overrides, error, match", BAD_ARGUMENT_CASES)
def test_pool_rejects_bad_arguments(forward, backward, overrides, error, match):
    config = {"kernel_size": 2, **overrides}
    with pytest.raises(error, match=match):
        forward(X, **config)
    with pytest.raises(error, match=match):
        backward(np.zeros((1, 1, 3, 3)), X, **config)


BAD_INPUTS = [
    (np.zeros((1, 1, 6, 6), dtype=np.int64), TypeError, "x"),
    (np.zeros((1, 1, 6, 6), dtype=np.float16), TypeError, "x"),
    (np.zeros((1, 1, 6, 6), dtype=bool), TypeError, "x"),
    (np.zeros((6, 6)), ValueError, "x"),
    (np.zeros((1, 1, 1, 6, 6)), ValueError, "x"),
    ([[[[0.0] * 6] * 6]], TypeError, "x"),
]


@pytest.mark.parametrize("forward, backward", [(max_pool2d, max_pool2d_backward), (avg_pool2d, avg_pool2d_backward)])
@pytest.mark.parametrize("x, error, match", BAD_INPUTS)
def test_bad_input_arrays_are_rejected(forward, backward, x, error, match):
    with pytest.raises(error, match=match):
        forward(x, kernel_size=2)
    with pytest.raises(error, match=match):
        backward(np.zeros((1, 1, 3, 3)), x, kernel_size=2)


@pytest.mark.parametrize("backward", [max_pool2d_backward, avg_pool2d_backward])
@pytest.mark.parametrize(
    "grad_output, error",
    [
        (np.zeros((1, 1, 3, 2)), ValueError),  # wrong shape
        (np.zeros((1, 1, 3)), ValueError),  # wrong ndim
        (np.zeros((1, 1, 3, 3), dtype=np.float32), TypeError),  # dtype differs from x
        (np.zeros((1, 1, 3, 3), dtype=np.int64), TypeError),
        ([[[[0.0] * 3] * 3]], TypeError),
    ],
)
def test_bad_grad_output_is_rejected(backward, grad_output, error):
    with pytest.raises(error, match="grad_output"):
        backward(grad_output, X, kernel_size=2)


@pytest.mark.parametrize("forward", [max_pool2d, avg_pool2d])
def test_configuration_is_keyword_only(forward):
    with pytest.raises(TypeError):
        forward(X, 2)


# --------------------------------------------------------------------------- purity


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "forward, backward, config",
    [
        (max_pool2d, max_pool2d_backward, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        (max_pool2d, max_pool2d_backward, dict(kernel_size=2)),
        (avg_pool2d, avg_pool2d_backward, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        (avg_pool2d, avg_pool2d_backward, dict(kernel_size=2)),
    ],
)
def test_inputs_are_not_modified(forward, backward, config, dtype):
    x = random_input((2, 3, 7, 8), dtype)
    x[0, 0, 0, 0] = np.nan
    y = forward(x, **config)
    g = random_grad_output(y.shape, dtype)
    g[0, 0, 0, 0] = np.inf
    x_before, g_before = x.copy(), g.copy()
    forward(x, **config)
    backward(g, x, **config)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(g, g_before)
    # results own their memory: writing to them cannot reach the inputs
    assert not np.shares_memory(forward(x, **config), x)
    assert not np.shares_memory(backward(g, x, **config), g)


def test_non_contiguous_input_matches_contiguous_copy():
    base = random_input((2, 3, 9, 16), np.float64)
    x = base[:, :, :, ::2]
    config = dict(kernel_size=3, stride=2, padding=1)
    g = random_grad_output(max_pool2d(x, **config).shape, np.float64)
    np.testing.assert_array_equal(max_pool2d(x, **config), max_pool2d(np.ascontiguousarray(x), **config))
    np.testing.assert_array_equal(
        max_pool2d_backward(g, x, **config), max_pool2d_backward(g, np.ascontiguousarray(x), **config)
    )
    np.testing.assert_array_equal(avg_pool2d(x, **config), avg_pool2d(np.ascontiguousarray(x), **config))


# --------------------------------------------------------------------------- fast paths


NON_OVERLAPPING_CASES = [
    ((2, 3, 8, 6), dict(kernel_size=2)),  # windows tile the input
    ((2, 3, 9, 7), dict(kernel_size=2, stride=3)),  # gaps between windows
    ((1, 2, 9, 10), dict(kernel_size=2, stride=3, dilation=2)),  # dilated, still disjoint
    ((2, 2, 7, 7), dict(kernel_size=2, ceil_mode=True)),  # last window overhangs the edge
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", NON_OVERLAPPING_CASES, ids=case_id)
def test_non_overlapping_windows_fast_path_matches_torch_bit_for_bit(case, dtype):
    """Disjoint windows skip the float64 sum; ties, -0.0 gradients and infinities still match torch."""
    shape, config = case
    rng = np.random.default_rng(7)
    x = rng.choice([-1.0, 0.0, -0.0, 2.0, -np.inf], size=shape).astype(dtype)  # many ties
    y = max_pool2d(x, **config)
    g = rng.choice([-0.0, 0.0, 1.5, -2.25, np.inf], size=y.shape).astype(dtype)
    torch_y, torch_grad_x = torch_pool(F.max_pool2d, x, g, **config)
    grad_x = max_pool2d_backward(g, x, **config)
    assert grad_x.dtype == dtype
    np.testing.assert_array_equal(y, torch_y)
    np.testing.assert_array_equal(grad_x, torch_grad_x)
    np.testing.assert_array_equal(np.signbit(grad_x), np.signbit(torch_grad_x))
    if "dilation" not in config:
        avg_grad_x = avg_pool2d_backward(g, x, **config)
        torch_avg_grad_x = torch_pool(F.avg_pool2d, x, g, **config)[1]
        np.testing.assert_array_equal(avg_grad_x, torch_avg_grad_x)
        np.testing.assert_array_equal(np.signbit(avg_grad_x), np.signbit(torch_avg_grad_x))


@pytest.mark.parametrize("case", MAX_POOL_CASES[:4] + NON_OVERLAPPING_CASES[:2], ids=case_id)
def test_results_do_not_depend_on_the_plane_chunking(case, monkeypatch):
    """Chunks of one plane each, on one thread or several, give the same bits as one chunk of all planes."""
    import refimpl.pooling as pooling

    shape, config = case
    x = random_input(shape, np.float32)
    avg_config = {key: value for key, value in config.items() if key != "dilation"}
    g_max = random_grad_output(max_pool2d(x, **config).shape, np.float32)
    g_avg = random_grad_output(avg_pool2d(x, **avg_config).shape, np.float32)
    results = []
    for chunk_bytes, threads in ((1 << 30, 1), (1, 1), (1, 3)):
        monkeypatch.setattr(pooling, "_CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(pooling, "_THREADS", threads)
        results.append(
            (
                max_pool2d(x, **config),
                max_pool2d_backward(g_max, x, **config),
                avg_pool2d(x, **avg_config),
                avg_pool2d_backward(g_avg, x, **avg_config),
            )
        )
    for split in results[1:]:
        for whole, chunked in zip(results[0], split):
            np.testing.assert_array_equal(whole, chunked)


# --------------------------------------------------------------------------- the readable rules


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("values", ["normal", "special"])
def test_fast_pools_give_the_bits_of_the_readable_rules(values, dtype):
    """refimpl.pooling (phase layout, chunks, threads) == refimpl.pooling_derivation, bit for bit, signed zeros too."""
    rng = np.random.default_rng(11)
    special = [-1.0, 0.0, -0.0, 2.0, np.inf, -np.inf, np.nan]  # ties, signed zeros, infinities, NaN
    pools = [
        (MAX_POOL_CASES + NON_OVERLAPPING_CASES, (max_pool2d, max_pool2d_backward),
         (derivation.max_pool2d, derivation.max_pool2d_backward)),
        (AVG_POOL_CASES, (avg_pool2d, avg_pool2d_backward), (derivation.avg_pool2d, derivation.avg_pool2d_backward)),
    ]
    for cases, fast, readable in pools:
        for shape, config in cases:
            _compare_pools(rng, values, special, shape, config, fast, readable, dtype)


def _compare_pools(rng, values, special, shape, config, fast, readable, dtype):
    with np.errstate(invalid="ignore"):  # inf - inf in a window sum or a gradient sum: NaN, as intended
        if values == "normal":
            x = rng.standard_normal(shape).astype(dtype)
            g = rng.standard_normal(fast[0](x, **config).shape).astype(dtype)
        else:
            x = rng.choice(special, size=shape).astype(dtype)
            g = rng.choice(special[:-1] + [1.5, -0.25], size=fast[0](x, **config).shape).astype(dtype)
        for got, want in ((fast[0](x, **config), readable[0](x, **config)),
                          (fast[1](g, x, **config), readable[1](g, x, **config))):
            assert got.dtype == want.dtype == dtype
            np.testing.assert_array_equal(got, want, err_msg=f"{shape} {config}")
            number = ~np.isnan(want)  # a NaN's sign bit is no part of its value (IEEE 754 leaves it open)
            np.testing.assert_array_equal(np.signbit(got[number]), np.signbit(want[number]), err_msg=f"{shape} {config}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op, check", [
    ("max_pool2d", "backward"), ("max_pool2d", "identities"), ("avg_pool2d", "backward"), ("avg_pool2d", "adjoint"),
])
def test_the_readable_rules_pass_the_property_suite(op, check, dtype):
    """refimpl exports the fast pools; the readable rules (refimpl.derivation) get the backward checks.

    (Their forwards are pinned to the fast ones, bit for bit, above.)
    """
    from oracle.implementation import Implementation
    from oracle.suite import run_property

    run_property(Implementation.load("refimpl.derivation"), op, check, dtype)
