"""Unit tests of refimpl.dense, refimpl.activations and refimpl.losses.

Hand-computed examples for every rule, then every rule against torch autograd
on fixed configurations (float64 and float32), then the edge cases where
torch's own choices matter (BCE at p = 0 and 1, logits at +-1e4, pytorch
#103316), then argument validation and the no-mutation guarantee.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

from refimpl.activations import flatten, flatten_backward, relu, relu_backward, sigmoid, sigmoid_backward
from refimpl.dense import linear, linear_backward
from refimpl.losses import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
)

RTOL64 = ATOL64 = 1e-12
RTOL32, ATOL32 = 1e-5, 1e-6
TOL = {np.float64: {"rtol": RTOL64, "atol": ATOL64}, np.float32: {"rtol": RTOL32, "atol": ATOL32}}
DTYPES = [np.float64, np.float32]
REDUCTIONS = ["mean", "sum", "none"]
F32_EPS = float(np.float32(1e-12))  # ATen's `constexpr float EPSILON = 1e-12`, as a double


def close(actual, expected, dtype, **kw):
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    np.testing.assert_allclose(actual, expected, **{**TOL[dtype], **kw})


def t(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


# ----------------------------------------------------------------------------- hand-computed examples


def test_linear_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([0.5, -1.0, 0.0])
    np.testing.assert_array_equal(linear(x, W, b), [[1.5, 1.0, 3.0], [3.5, 3.0, 7.0]])
    np.testing.assert_array_equal(linear(x, W), [[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]])
    g = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    gx, gW, gb = linear_backward(g, x, W, b)
    np.testing.assert_array_equal(gx, [[2.0, 1.0], [0.0, 1.0]])  # g @ W
    np.testing.assert_array_equal(gW, [[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])  # g.T @ x
    np.testing.assert_array_equal(gb, [1.0, 1.0, 1.0])  # g.sum(0)
    assert linear_backward(g, x, W)[2] is None


def test_linear_accepts_a_single_vector_and_leading_axes():
    W = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(linear(np.array([3.0, 4.0]), W, np.array([1.0])), [12.0])
    gx, gW, gb = linear_backward(np.array([2.0]), np.array([3.0, 4.0]), W, np.array([1.0]))
    np.testing.assert_array_equal(gx, [2.0, 4.0])
    np.testing.assert_array_equal(gW, [[6.0, 8.0]])
    np.testing.assert_array_equal(gb, [2.0])
    x = np.arange(12.0).reshape(2, 3, 2)
    assert linear(x, W).shape == (2, 3, 1)
    gx, gW, gb = linear_backward(np.ones((2, 3, 1)), x, W, np.zeros(1))
    np.testing.assert_array_equal(gW, x.reshape(-1, 2).sum(0, keepdims=True))
    np.testing.assert_array_equal(gb, [6.0])


def test_relu_by_hand():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(relu(x), [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(relu_backward(np.array([5.0, 5.0, 5.0]), x), [0.0, 0.0, 5.0])  # relu'(0) = 0


def test_sigmoid_by_hand():
    x = np.array([0.0, math.log(3.0), -math.log(3.0)])
    np.testing.assert_allclose(sigmoid(x), [0.5, 0.75, 0.25], rtol=1e-15)
    # s (1 - s): 0.25, 0.1875, 0.1875
    np.testing.assert_allclose(sigmoid_backward(np.array([1.0, 2.0, 1.0]), x), [0.25, 0.375, 0.1875], rtol=1e-15)


def test_flatten_by_hand():
    x = np.arange(8.0).reshape(2, 1, 2, 2)
    np.testing.assert_array_equal(flatten(x), [[0, 1, 2, 3], [4, 5, 6, 7]])
    g = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    np.testing.assert_array_equal(flatten_backward(g, x), g.reshape(2, 1, 2, 2))
    assert flatten(np.zeros((0, 3, 2))).shape == (0, 6)


def test_binary_cross_entropy_by_hand():
    p = np.array([0.5, 0.25])
    y = np.array([1.0, 0.0])
    expected = np.array([math.log(2.0), -math.log(0.75)])
    np.testing.assert_allclose(binary_cross_entropy(p, y, reduction="none"), expected, rtol=1e-15)
    np.testing.assert_allclose(binary_cross_entropy(p, y, reduction="sum"), expected.sum(), rtol=1e-15)
    mean = binary_cross_entropy(p, y)
    assert mean.shape == () and isinstance(mean, np.ndarray)
    np.testing.assert_allclose(mean, expected.mean(), rtol=1e-15)
    # (p - y) / (p (1 - p)): -0.5 / 0.25 = -2 and 0.25 / 0.1875 = 4/3; halved for the mean
    np.testing.assert_allclose(binary_cross_entropy_backward(np.array(1.0), p, y), [-1.0, 2.0 / 3.0], rtol=1e-15)
    np.testing.assert_allclose(
        binary_cross_entropy_backward(np.array([1.0, 3.0]), p, y, reduction="none"), [-2.0, 4.0], rtol=1e-15
    )


def test_binary_cross_entropy_at_0_and_1_by_hand():
    p = np.array([0.0, 1.0, 0.0, 1.0])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(binary_cross_entropy(p, y, reduction="none"), [100.0, 100.0, 0.0, 0.0])
    grad = binary_cross_entropy_backward(np.ones(4), p, y, reduction="none")
    np.testing.assert_array_equal(grad, [-1 / F32_EPS, 1 / F32_EPS, 0.0, 0.0])


def test_binary_cross_entropy_with_logits_by_hand():
    z = np.array([0.0, 0.0, math.log(3.0)])
    y = np.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        binary_cross_entropy_with_logits(z, y, reduction="none"), [math.log(2), math.log(2), -math.log(0.75)], rtol=1e-15
    )
    np.testing.assert_allclose(
        binary_cross_entropy_with_logits_backward(np.array(3.0), z, y, reduction="sum"), [-1.5, 1.5, -0.75], rtol=1e-15
    )
    np.testing.assert_allclose(binary_cross_entropy_with_logits_backward(np.array(1.0), z, y), [-1 / 6, 1 / 6, -1 / 12])


# ----------------------------------------------------------------------------- against torch autograd


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,out_features,bias", [((5, 4), 3, True), ((5, 4), 1, False), ((4,), 2, True), ((2, 3, 6), 5, True)])
def test_linear_vs_torch(dtype, shape, out_features, bias):
    rng = _rng()
    x = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((out_features, shape[-1])).astype(dtype)
    b = rng.standard_normal(out_features).astype(dtype) if bias else None
    g = rng.standard_normal(shape[:-1] + (out_features,)).astype(dtype)
    tx, tW = t(x, True), t(W, True)
    tb = t(b, True) if bias else None
    ty = tf.linear(tx, tW, tb)
    ty.backward(t(g))
    close(linear(x, W, b), ty.detach().numpy(), dtype)
    gx, gW, gb = linear_backward(g, x, W, b)
    close(gx, tx.grad.numpy(), dtype)
    close(gW, tW.grad.numpy(), dtype)
    if bias:
        close(gb, tb.grad.numpy(), dtype)
    else:
        assert gb is None


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_vs_torch(dtype):
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0], [np.nan, -np.inf, np.inf, -1e-30, 0.5]], dtype=dtype)
    g = _rng().standard_normal(x.shape).astype(dtype)
    tx = t(x, True)
    ty = tf.relu(tx)
    ty.backward(t(g))
    close(relu(x), ty.detach().numpy(), dtype)  # relu(nan) = nan, as torch
    assert np.isnan(relu(x)[1, 0])
    np.testing.assert_array_equal(np.signbit(relu(x)), np.signbit(ty.detach().numpy()))  # relu(-0.0) = -0.0
    close(relu_backward(g, x), tx.grad.numpy(), dtype)  # 0 at x = 0, g at x = nan, as torch


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_vs_torch(dtype):
    x = np.concatenate([_rng().standard_normal(20) * 5, [0.0, -0.0, 30.0, -30.0, 50.0, -50.0, 89.0, -89.0, 700.0, -700.0]])
    x = x.astype(dtype)
    g = _rng(1).standard_normal(x.shape).astype(dtype)
    tx = t(x, True)
    ty = torch.sigmoid(tx)
    ty.backward(t(g))
    # relative accuracy down to the smallest normal number: float32 torch computes 1 / (1 + exp(89)) = 1 / inf = 0
    # where the true value, 2.2e-39, is subnormal; refimpl keeps it (exp(-89) / (1 + exp(-89)))
    tiny = np.finfo(dtype).tiny
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        close(sigmoid(x), ty.detach().numpy(), dtype, atol=tiny)
        close(sigmoid_backward(g, x), tx.grad.numpy(), dtype, atol=tiny)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_stable_for_huge_inputs(dtype):
    x = np.array([-1e4, -1e3, 1e3, 1e4, -np.inf, np.inf], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning
        s = sigmoid(x)
        d = sigmoid_backward(np.ones_like(x), x)
    np.testing.assert_array_equal(s, [0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(d, np.zeros(6))
    np.testing.assert_array_equal(s, torch.sigmoid(t(x)).numpy())
    assert np.isnan(sigmoid(np.array([np.nan], dtype=dtype))[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 2, 4, 4), (2, 5), (1, 1, 1), (4, 2, 3)])
def test_flatten_vs_torch(dtype, shape):
    x = _rng().standard_normal(shape).astype(dtype)
    g = _rng(1).standard_normal((shape[0], math.prod(shape[1:]))).astype(dtype)
    tx = t(x, True)
    ty = torch.flatten(tx, 1)
    ty.backward(t(g))
    np.testing.assert_array_equal(flatten(x), ty.detach().numpy())
    np.testing.assert_array_equal(flatten_backward(g, x), tx.grad.numpy())
    assert flatten(x).dtype == dtype and flatten_backward(g, x).dtype == dtype


def _bce_vs_torch(dtype, reduction, p, y, seed=0):
    rng = _rng(seed)
    g = np.asarray(rng.standard_normal() if reduction != "none" else rng.standard_normal(p.shape), dtype=dtype)
    tp = t(p, True)
    tl = tf.binary_cross_entropy(tp, t(y), reduction=reduction)
    tl.backward(t(g))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = binary_cross_entropy(p, y, reduction=reduction)
        grad = binary_cross_entropy_backward(g, p, y, reduction=reduction)
    assert loss.shape == tl.shape
    close(loss, tl.detach().numpy(), dtype)
    close(grad, tp.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2)])
def test_binary_cross_entropy_vs_torch(dtype, reduction, shape):
    rng = _rng()
    p = rng.uniform(0.02, 0.98, size=shape).astype(dtype)
    y = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    y.flat[0], y.flat[-1] = 0.0, 1.0
    _bce_vs_torch(dtype, reduction, p, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_at_exactly_0_and_1_matches_torch(dtype, reduction):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1e-30, 1 - 1e-7], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0], dtype=dtype)
    _bce_vs_torch(dtype, reduction, p, y)


def _bce_logits_vs_torch(dtype, reduction, z, y, seed=0):
    rng = _rng(seed)
    g = np.asarray(rng.standard_normal() if reduction != "none" else rng.standard_normal(z.shape), dtype=dtype)
    tz = t(z, True)
    tl = tf.binary_cross_entropy_with_logits(tz, t(y), reduction=reduction)
    tl.backward(t(g))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = binary_cross_entropy_with_logits(z, y, reduction=reduction)
        grad = binary_cross_entropy_with_logits_backward(g, z, y, reduction=reduction)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert loss.shape == tl.shape
    close(loss, tl.detach().numpy(), dtype)
    close(grad, tz.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2)])
def test_binary_cross_entropy_with_logits_vs_torch(dtype, reduction, shape):
    rng = _rng()
    z = (rng.standard_normal(shape) * 4).astype(dtype)
    y = rng.uniform(0.0, 1.0, size=shape).astype(dtype)
    y.flat[0], y.flat[-1] = 0.0, 1.0
    _bce_logits_vs_torch(dtype, reduction, z, y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_at_huge_logits(dtype, reduction):
    z = np.array([1e4, -1e4, 1e4, -1e4, 1e4, -1e4, 3e38, -3e38], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0], dtype=dtype)
    _bce_logits_vs_torch(dtype, reduction, z, y)
    loss = binary_cross_entropy_with_logits(z, y, reduction="none")
    np.testing.assert_array_equal(loss[:4], [0.0, 0.0, 1e4, 1e4])  # right answers are 0 and |z|, exactly
    grad = binary_cross_entropy_with_logits_backward(np.ones(8, dtype=dtype), z, y, reduction="none")
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, -1.0, 0.5, -0.5, 0.0, 0.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_then_bce_is_clamped_where_logits_form_is_exact_pytorch_103316(dtype):
    """sigmoid(-50) against target 1: the true dL/dz is sigmoid(-50) - 1 ~ -1.

    Chaining BCE's backward (clamped at p(1-p) >= 1e-12) through sigmoid gives
    ~ -2e-10 instead, and so does torch's autograd (issue #103316): the chain
    matches torch. The logits form gives the exact answer, and so does torch's.
    """
    z = np.array([-50.0, -5.0], dtype=dtype)
    y = np.array([1.0, 1.0], dtype=dtype)
    one = np.array(1.0, dtype=dtype)
    chained = sigmoid_backward(binary_cross_entropy_backward(one, sigmoid(z), y, reduction="sum"), z)
    logits = binary_cross_entropy_with_logits_backward(one, z, y, reduction="sum")
    exact = sigmoid(z) - 1.0

    tz = t(z, True)
    tf.binary_cross_entropy(torch.sigmoid(tz), t(y), reduction="sum").backward()
    close(chained, tz.grad.numpy(), dtype, atol=0)
    assert abs(chained[0]) < 1e-9  # the clamp's answer, ~ -sigmoid(-50) / 1e-12 = -1.9e-10
    tz2 = t(z, True)
    tf.binary_cross_entropy_with_logits(tz2, t(y), reduction="sum").backward()
    close(logits, tz2.grad.numpy(), dtype, atol=0)
    close(logits, exact, dtype, atol=0)
    np.testing.assert_allclose(logits[0], -1.0, rtol=1e-15)
    close(chained[1:], logits[1:], dtype, atol=0)  # away from the clamp the two forms agree
    # the forward is fine either way: -log sigmoid(-50) = 50 + log1p(e^-50)
    close(binary_cross_entropy(sigmoid(z), y, reduction="none")[:1], [50.0], dtype)
    close(binary_cross_entropy_with_logits(z, y, reduction="none")[:1], [50.0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_inputs_follow_torch(dtype):
    e = np.zeros((0,), dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(binary_cross_entropy(e, e))
        assert binary_cross_entropy(e, e, reduction="sum") == 0
        assert np.isnan(binary_cross_entropy_with_logits(e, e))
        assert binary_cross_entropy_backward(np.array(1.0, dtype=dtype), e, e).shape == (0,)
    assert np.isnan(tf.binary_cross_entropy(t(e), t(e)).item())


# ----------------------------------------------------------------------------- dtype, no mutation


def _all_calls(dtype):
    """(name, callable, args, kwargs) for every public function, on valid float arrays of ``dtype``."""
    rng = _rng(3)
    x = rng.standard_normal((4, 3)).astype(dtype)
    W = rng.standard_normal((2, 3)).astype(dtype)
    b = rng.standard_normal(2).astype(dtype)
    g2 = rng.standard_normal((4, 2)).astype(dtype)
    g = rng.standard_normal((4, 3)).astype(dtype)
    x4 = rng.standard_normal((2, 1, 2, 3)).astype(dtype)
    gflat = rng.standard_normal((2, 6)).astype(dtype)
    p = rng.uniform(0.1, 0.9, (4, 3)).astype(dtype)
    y = rng.uniform(0, 1, (4, 3)).astype(dtype)
    g0 = np.array(0.7, dtype=dtype)
    return [
        ("linear", linear, (x, W, b), {}),
        ("linear_backward", linear_backward, (g2, x, W, b), {}),
        ("relu", relu, (x,), {}),
        ("relu_backward", relu_backward, (g, x), {}),
        ("sigmoid", sigmoid, (x,), {}),
        ("sigmoid_backward", sigmoid_backward, (g, x), {}),
        ("flatten", flatten, (x4,), {}),
        ("flatten_backward", flatten_backward, (gflat, x4), {}),
        ("binary_cross_entropy", binary_cross_entropy, (p, y), {}),
        ("binary_cross_entropy none", binary_cross_entropy, (p, y), {"reduction": "none"}),
        ("binary_cross_entropy_backward", binary_cross_entropy_backward, (g0, p, y), {"reduction": "sum"}),
        ("binary_cross_entropy_backward none", binary_cross_entropy_backward, (g, p, y), {"reduction": "none"}),
        ("binary_cross_entropy_with_logits", binary_cross_entropy_with_logits, (x, y), {}),
        ("binary_cross_entropy_with_logits_backward", binary_cross_entropy_with_logits_backward, (g0, x, y), {}),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_keep_the_dtype_and_inputs_are_not_modified(dtype):
    for name, fn, args, kwargs in _all_calls(dtype):
        before = [a.copy() for a in args]
        out = fn(*args, **kwargs)
        for result in out if isinstance(out, tuple) else (out,):
            assert isinstance(result, np.ndarray), name
            assert result.dtype == np.dtype(dtype), f"{name}: {result.dtype}"
            for a in args:
                assert not np.shares_memory(result, a), f"{name} returned a view of an input"
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} modified an input")


def test_positional_config_is_rejected():
    p = np.full(3, 0.5)
    with pytest.raises(TypeError):
        binary_cross_entropy(p, p, "sum")  # reduction is keyword-only
    with pytest.raises(TypeError):
        binary_cross_entropy_with_logits_backward(np.array(1.0), p, p, "sum")


# ----------------------------------------------------------------------------- validation

A = np.ones((4, 3))
W23 = np.ones((2, 3))
P = np.full((4, 3), 0.5)
G0 = np.array(1.0)

BAD_CALLS = [
    # (id, call, exception, words the message must contain)
    ("linear x list", lambda: linear([[1.0, 2.0, 3.0]], W23), TypeError, "x"),
    ("linear x int", lambda: linear(np.ones((4, 3), dtype=np.int64), W23), TypeError, "x"),
    ("linear x 0-d", lambda: linear(np.array(1.0), W23), ValueError, "x"),
    ("linear weight 1-d", lambda: linear(A, np.ones(3)), ValueError, "weight"),
    ("linear in_features", lambda: linear(np.ones((4, 2)), W23), ValueError, "in_features"),
    ("linear bias shape", lambda: linear(A, W23, np.ones(3)), ValueError, "bias"),
    ("linear bias 2-d", lambda: linear(A, W23, np.ones((1, 2))), ValueError, "bias"),
    ("linear mixed dtype", lambda: linear(A.astype(np.float32), W23), TypeError, "dtype"),
    ("linear bias dtype", lambda: linear(A, W23, np.ones(2, dtype=np.float32)), TypeError, "dtype"),
    ("linear_backward g shape", lambda: linear_backward(np.ones((4, 3)), A, W23), ValueError, "grad_output"),
    ("linear_backward g dtype", lambda: linear_backward(np.ones((4, 2), dtype=np.float32), A, W23), TypeError, "grad_output"),
    ("linear_backward g list", lambda: linear_backward([[1.0, 1.0]], np.ones((1, 3)), W23), TypeError, "grad_output"),
    ("relu list", lambda: relu([1.0]), TypeError, "x"),
    ("relu int", lambda: relu(np.arange(3)), TypeError, "dtype"),
    ("relu float16", lambda: relu(np.ones(3, dtype=np.float16)), TypeError, "dtype"),
    ("relu_backward shape", lambda: relu_backward(np.ones(2), np.ones(3)), ValueError, "grad_output"),
    ("relu_backward dtype", lambda: relu_backward(np.ones(3, dtype=np.float32), np.ones(3)), TypeError, "grad_output"),
    ("sigmoid int", lambda: sigmoid(np.arange(3)), TypeError, "x"),
    ("sigmoid_backward shape", lambda: sigmoid_backward(np.ones((3, 1)), np.ones(3)), ValueError, "grad_output"),
    ("flatten 1-d", lambda: flatten(np.ones(3)), ValueError, "x"),
    ("flatten 0-d", lambda: flatten(np.array(1.0)), ValueError, "x"),
    ("flatten_backward shape", lambda: flatten_backward(np.ones((2, 3)), np.ones((2, 2, 2))), ValueError, "grad_output"),
    ("bce input list", lambda: binary_cross_entropy([0.5], np.ones(1)), TypeError, "input"),
    ("bce target int", lambda: binary_cross_entropy(P, np.ones((4, 3), dtype=int)), TypeError, "target"),
    ("bce shape", lambda: binary_cross_entropy(P, np.ones((4, 1))), ValueError, "target"),
    ("bce mixed dtype", lambda: binary_cross_entropy(P, P.astype(np.float32)), TypeError, "dtype"),
    ("bce input > 1", lambda: binary_cross_entropy(np.array([0.5, 1.5]), np.ones(2)), ValueError, "input"),
    ("bce input < 0", lambda: binary_cross_entropy(np.array([-1e-9]), np.ones(1)), ValueError, "input"),
    ("bce input nan", lambda: binary_cross_entropy(np.array([np.nan]), np.ones(1)), ValueError, "input"),
    ("bce target > 1", lambda: binary_cross_entropy(np.array([0.5]), np.array([2.0])), ValueError, "target"),
    ("bce reduction", lambda: binary_cross_entropy(P, P, reduction="average"), ValueError, "reduction"),
    ("bce reduction None", lambda: binary_cross_entropy(P, P, reduction=None), TypeError, "reduction"),
    ("bce_backward g shape mean", lambda: binary_cross_entropy_backward(np.ones(1), P, P), ValueError, "grad_output"),
    ("bce_backward g shape none", lambda: binary_cross_entropy_backward(G0, P, P, reduction="none"), ValueError, "grad_output"),
    ("bce_backward g dtype", lambda: binary_cross_entropy_backward(np.array(1.0, dtype=np.float32), P, P), TypeError, "grad_output"),
    ("bce_backward input > 1", lambda: binary_cross_entropy_backward(G0, P + 1, P), ValueError, "input"),
    ("bce_backward reduction", lambda: binary_cross_entropy_backward(G0, P, P, reduction="Mean"), ValueError, "reduction"),
    ("logits shape", lambda: binary_cross_entropy_with_logits(A, np.ones(3)), ValueError, "target"),
    ("logits input int", lambda: binary_cross_entropy_with_logits(np.ones(3, dtype=int), np.ones(3)), TypeError, "input"),
    ("logits reduction", lambda: binary_cross_entropy_with_logits(A, P, reduction="elementwise_mean"), ValueError, "reduction"),
    ("logits_backward g shape", lambda: binary_cross_entropy_with_logits_backward(np.ones((4, 3)), A, P), ValueError, "grad_output"),
    ("logits_backward mixed", lambda: binary_cross_entropy_with_logits_backward(G0, A, P.astype(np.float32)), TypeError, "dtype"),
]


@pytest.mark.parametrize("call,exception,words", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_are_rejected_with_the_argument_named(call, exception, words):
    with pytest.raises(exception, match=words):
        call()


def test_logits_target_is_not_range_checked_like_torch():
    z, y = np.array([0.3]), np.array([2.0])
    close(binary_cross_entropy_with_logits(z, y), tf.binary_cross_entropy_with_logits(t(z), t(y)).numpy(), np.float64)
