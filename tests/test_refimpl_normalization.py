"""Unit tests of refimpl.normalization: batch_norm (training mode) and layer_norm.

A hand-computed example of each rule, then forward and backward against torch
autograd over shapes and configurations (float64 tight, float32 looser), then the
corners (two values per channel, a constant channel, one value per channel, values
far from zero, NaN and inf, empty inputs), the derivation's identities, argument
validation, dtype and the no-mutation guarantee. Every random input has a fixed seed.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

import refimpl
from refimpl.normalization import batch_norm, batch_norm_backward, layer_norm, layer_norm_backward

DTYPES = [np.float64, np.float32]
# float32: each statistic sums m values, so the error grows with m; relative to the result's scale
TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-12}, np.float32: {"rtol": 2e-5, "atol": 2e-5}}
AFFINE = ["weight+bias", "weight", "bias", "none"]


def close(actual, expected, dtype, *, scale=True, **kw):
    """allclose with atol relative to the largest |expected| (sums of many terms, e.g. grad_weight)."""
    assert isinstance(actual, np.ndarray), type(actual)
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    tol = {**TOL[dtype], **kw}
    if scale and expected.size and np.isfinite(expected).any():
        tol["atol"] *= max(1.0, float(np.nanmax(np.abs(expected[np.isfinite(expected)]))))
    np.testing.assert_allclose(actual, expected, **tol)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _params(affine, shape, dtype, seed=1):
    rng = _rng(seed)
    w = (1 + 0.5 * rng.standard_normal(shape)).astype(dtype) if "weight" in affine else None
    b = rng.standard_normal(shape).astype(dtype) if "bias" in affine else None
    return w, b


def _torch_reference(fn, x, w, b, g):
    """(y, grad_x, grad_w, grad_b) from torch autograd of ``fn(x, w, b)`` with upstream gradient g."""
    leaves = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    y = fn(*leaves)
    y.backward(torch.tensor(g))
    grads = [t.grad.numpy() if t is not None else None for t in leaves]
    return (y.detach().numpy(), *grads)


def _torch_bn(eps):
    return lambda x, w, b: tf.batch_norm(x, None, None, w, b, training=True, eps=eps)


def _torch_ln(shape, eps):
    return lambda x, w, b: tf.layer_norm(x, shape, w, b, eps=eps)


def _check_against_torch(ours_y, ours_grads, theirs, dtype, **kw):
    y, gx, gw, gb = theirs
    close(ours_y, y, dtype, **kw)
    got_x, got_w, got_b = ours_grads
    close(got_x, gx, dtype, **kw)
    for got, want, name in ((got_w, gw, "weight"), (got_b, gb, "bias")):
        if want is None:
            assert got is None, f"grad_{name} must be None where the forward's {name} was None"
        else:
            close(got, want, dtype, **kw)


# ----------------------------------------------------------------------------- hand-computed examples


def test_layer_norm_by_hand():
    # x = [1, 2, 3]: mean 2, var 2/3; with eps = 1/3, var + eps = 1, inv_std = 1, xhat = [-1, 0, 1]
    x = np.array([[1.0, 2.0, 3.0]])
    eps = 1.0 / 3.0
    np.testing.assert_allclose(layer_norm(x, None, None, normalized_shape=3, eps=eps), [[-1.0, 0.0, 1.0]], atol=1e-15)
    w, b = np.full(3, 2.0), np.ones(3)
    np.testing.assert_allclose(layer_norm(x, w, b, normalized_shape=(3,), eps=eps), [[-1.0, 1.0, 3.0]], atol=1e-15)
    # g = [1, 0, 0], gamma = 1: gy = g, sum(gy) = 1, sum(gy xhat) = -1
    # grad_x = (1/3) * 1 * (3 [1, 0, 0] - 1 - [-1, 0, 1] (-1)) = [1, -1, 0] / 3
    g = np.array([[1.0, 0.0, 0.0]])
    gx, gw, gb = layer_norm_backward(g, x, np.ones(3), np.zeros(3), normalized_shape=(3,), eps=eps)
    np.testing.assert_allclose(gx, [[1 / 3, -1 / 3, 0.0]], atol=1e-15)
    np.testing.assert_allclose(gw, [-1.0, 0.0, 0.0], atol=1e-15)  # sum g xhat
    np.testing.assert_array_equal(gb, [1.0, 0.0, 0.0])  # sum g
    # gamma = 2 doubles gy, hence grad_x; grad_weight and grad_bias do not see gamma
    gx2, gw2, gb2 = layer_norm_backward(g, x, w, b, normalized_shape=(3,), eps=eps)
    np.testing.assert_allclose(gx2, 2 * gx, atol=1e-15)
    np.testing.assert_allclose(gw2, gw, atol=1e-15)
    assert layer_norm_backward(g, x, None, None, normalized_shape=(3,), eps=eps)[1:] == (None, None)


def test_batch_norm_by_hand():
    # the same numbers along the batch axis of one channel, and a second channel [0, 0, 6]
    # (mean 2, var 8: with eps = 1/3, inv_std = 1/sqrt(25/3))
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 6.0]])
    eps = 1.0 / 3.0
    s = 1 / math.sqrt(8 + eps)
    y = batch_norm(x, np.array([2.0, 1.0]), np.array([1.0, 0.0]), eps=eps)
    np.testing.assert_allclose(y, [[-1.0, -2 * s], [1.0, -2 * s], [3.0, 4 * s]], atol=1e-15)
    g = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    gx, gw, gb = batch_norm_backward(g, x, np.ones(2), np.zeros(2), eps=eps)
    np.testing.assert_allclose(gx, [[1 / 3, 0.0], [-1 / 3, 0.0], [0.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(gw, [-1.0, 0.0], atol=1e-15)
    np.testing.assert_array_equal(gb, [1.0, 0.0])
    assert batch_norm_backward(g, x, eps=eps)[1:] == (None, None)


def test_exported_from_the_package_and_in_the_contract():
    for name in ("batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"):
        assert name in refimpl.__all__ and getattr(refimpl, name) is not None
    assert {"batch_norm", "layer_norm"} <= set(refimpl.CONTRACT)


# ----------------------------------------------------------------------------- against torch autograd

BN_SHAPES = [(5, 3), (4, 3, 6), (2, 3, 4, 5), (6, 2, 1, 1), (1, 4, 3, 3), (3, 2, 2, 2, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_vs_torch(shape, affine, eps, dtype):
    rng = _rng()
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w, b = _params(affine, (shape[1],), dtype)
    theirs = _torch_reference(_torch_bn(eps), x, w, b, g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = batch_norm(x, w, b, eps=eps)
        grads = batch_norm_backward(g, x, w, b, eps=eps)
    _check_against_torch(y, grads, theirs, dtype)


LN_CASES = [((4, 6), (6,)), ((3, 4, 5), (5,)), ((3, 4, 5), (4, 5)), ((2, 3, 4, 5), (3, 4, 5)), ((7,), (7,)), ((2, 3, 4, 5), 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,normalized_shape", LN_CASES, ids=str)
def test_layer_norm_vs_torch(shape, normalized_shape, affine, eps, dtype):
    rng = _rng()
    x = (rng.standard_normal(shape) * 3 + 0.5).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    w, b = _params(affine, ns, dtype)
    theirs = _torch_reference(_torch_ln(ns, eps), x, w, b, g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer_norm(x, w, b, normalized_shape=normalized_shape, eps=eps)
        grads = layer_norm_backward(g, x, w, b, normalized_shape=normalized_shape, eps=eps)
    _check_against_torch(y, grads, theirs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_realistic_sizes_vs_torch(dtype):
    rng = _rng(7)
    x = rng.standard_normal((16, 8, 12, 12)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params("weight+bias", (8,), dtype)
    _check_against_torch(batch_norm(x, w, b), batch_norm_backward(g, x, w, b), _torch_reference(_torch_bn(1e-5), x, w, b, g),
                         dtype, rtol=1e-4 if dtype == np.float32 else 1e-12)
    x = rng.standard_normal((8, 16, 96)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params("weight+bias", (96,), dtype)
    _check_against_torch(layer_norm(x, w, b, normalized_shape=96), layer_norm_backward(g, x, w, b, normalized_shape=96),
                         _torch_reference(_torch_ln((96,), 1e-5), x, w, b, g), dtype, rtol=1e-4 if dtype == np.float32 else 1e-12)


# ----------------------------------------------------------------------------- corners


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3), (1, 3, 2), (1, 3, 2, 1), (2, 3, 1, 1)], ids=str)
def test_batch_norm_two_values_per_channel(shape, dtype):
    """With two values per channel xhat = +-1/sqrt(1 + eps/var): the smallest batch torch allows."""
    rng = _rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    w, b = _params("weight+bias", (3,), dtype)
    theirs = _torch_reference(_torch_bn(1e-5), x, w, b, g)
    _check_against_torch(batch_norm(x, w, b), batch_norm_backward(g, x, w, b), theirs, dtype)
    xhat = batch_norm(x).reshape(shape[0], 3, -1).transpose(1, 0, 2).reshape(3, 2)
    np.testing.assert_allclose(np.abs(xhat), 1.0, rtol=1e-3)
    np.testing.assert_allclose(xhat.sum(axis=1), 0.0, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, 0.7, -3e3])
def test_constant_channel_matches_torch(value, dtype):
    """var = 0 in channel 1: eps alone keeps inv_std = 1/sqrt(eps) finite; y = bias there."""
    rng = _rng(4)
    x = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    x[:, 1] = value
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params("weight+bias", (3,), dtype)
    theirs = _torch_reference(_torch_bn(1e-5), x, w, b, g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = batch_norm(x, w, b)
        grads = batch_norm_backward(g, x, w, b)
    # xhat there is (x - mean) / sqrt(eps): 0, or the mean's rounding amplified by 1/sqrt(eps) = 316
    atol = 400 * abs(value) * np.finfo(dtype).eps
    _check_against_torch(y, grads, theirs, dtype, atol=TOL[dtype]["atol"] + atol)
    np.testing.assert_allclose(y[:, 1], np.broadcast_to(b[1], y[:, 1].shape), atol=atol + 1e-12)
    assert np.all(np.isfinite(grads[0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_row_of_layer_norm_and_a_single_normalized_element(dtype):
    rng = _rng(5)
    x = rng.standard_normal((3, 4)).astype(dtype)
    x[1] = 2.5
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params("weight+bias", (4,), dtype)
    _check_against_torch(layer_norm(x, w, b, normalized_shape=4), layer_norm_backward(g, x, w, b, normalized_shape=4),
                         _torch_reference(_torch_ln((4,), 1e-5), x, w, b, g), dtype, atol=1e-5)
    # m = 1: allowed by torch's layer_norm (unlike batch_norm): xhat = 0, y = bias, grad_x = 0 exactly.
    # torch's float32 CPU backward gives grad_x ~ 3e-5 there, not 0: it expands the formula into terms
    # of size |x| * inv_std^2 (inv_std = 1/sqrt(eps) = 316) that cancel only to rounding.
    x1 = x[:, :1].copy()
    g1 = g[:, :1].copy()
    w1, b1 = _params("weight+bias", (1,), dtype)
    _check_against_torch(layer_norm(x1, w1, b1, normalized_shape=1), layer_norm_backward(g1, x1, w1, b1, normalized_shape=1),
                         _torch_reference(_torch_ln((1,), 1e-5), x1, w1, b1, g1), dtype,
                         atol=2e-4 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(layer_norm_backward(g1, x1, w1, b1, normalized_shape=1)[0], 0.0)


@pytest.mark.parametrize("shape", [(1, 3), (1, 3, 1), (1, 3, 1, 1), (1, 2, 1, 1, 1)], ids=str)
def test_one_value_per_channel_raises_like_torch(shape):
    x = np.ones(shape)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        tf.batch_norm(torch.tensor(x), None, None, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(x)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm_backward(np.ones(shape), x, np.ones(shape[1]), None)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_offsets_keep_the_variance_accurate(dtype):
    """x = 1e4 + noise: E[x^2] - E[x]^2 would cancel (catastrophically in float32); two passes do not.

    The truth is the float64 computation on the same (rounded) input shifted to zero:
    x - 1e4 is exact (Sterbenz), and normalization is invariant under the shift.
    """
    rng = _rng(6)
    x = (1e4 + rng.standard_normal((16, 3, 4, 4))).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params("weight+bias", (3,), dtype)
    shifted = x.astype(np.float64) - 1e4
    w64, b64, g64 = w.astype(np.float64), b.astype(np.float64), g.astype(np.float64)
    # float32: the mean itself is a sum of 256 values of ~1e4, off by a few ulps of 1e4 (~1e-3 of x's spread)
    kw = {"rtol": 1e-9, "atol": 1e-9} if dtype == np.float64 else {"rtol": 2e-3, "atol": 2e-3}
    close(batch_norm(x, w, b), batch_norm(shifted, w64, b64), dtype, **kw)
    for got, want in zip(batch_norm_backward(g, x, w, b), batch_norm_backward(g64, shifted, w64, b64)):
        close(got, want, dtype, **kw)
    xl = x.reshape(16, 48)
    close(layer_norm(xl, None, None, normalized_shape=48), layer_norm(shifted.reshape(16, 48), None, None, normalized_shape=48),
          dtype, **kw)
    # and torch (float64) agrees on the unshifted input
    theirs = _torch_reference(_torch_bn(1e-5), x.astype(np.float64), w64, b64, g64)
    close(batch_norm(x.astype(np.float64), w64, b64), theirs[0], np.float64, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_propagate_as_in_torch(dtype):
    rng = _rng(8)
    x = rng.standard_normal((4, 3)).astype(dtype)
    x[1, 0], x[2, 1] = np.nan, np.inf
    g = rng.standard_normal(x.shape).astype(dtype)
    w, b = _params("weight+bias", (3,), dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bn = (batch_norm(x, w, b), batch_norm_backward(g, x, w, b))
        ln = (layer_norm(x, w, b, normalized_shape=3), layer_norm_backward(g, x, w, b, normalized_shape=3))
    _check_against_torch(*bn, _torch_reference(_torch_bn(1e-5), x, w, b, g), dtype)
    _check_against_torch(*ln, _torch_reference(_torch_ln((3,), 1e-5), x, w, b, g), dtype)
    assert np.isnan(bn[0][:, :2]).all() and np.isfinite(bn[0][:, 2]).all()  # only the two channels touched
    assert np.isnan(ln[0][1:3]).all() and np.isfinite(ln[0][[0, 3]]).all()  # only the two rows touched


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_inputs_follow_torch(dtype):
    x = np.zeros((0, 3, 2, 2), dtype=dtype)
    w, b = _params("weight+bias", (3,), dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = batch_norm(x, w, b)
        grads = batch_norm_backward(x.copy(), x, w, b)
    _check_against_torch(y, grads, _torch_reference(_torch_bn(1e-5), x, w, b, x.copy()), dtype)
    np.testing.assert_array_equal(grads[1], 0.0)
    x = np.zeros((4, 0), dtype=dtype)
    w0 = np.ones(0, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer_norm(x, w0, w0, normalized_shape=0)
        grads = layer_norm_backward(x.copy(), x, w0, w0, normalized_shape=(0,))
    _check_against_torch(y, grads, _torch_reference(_torch_ln((0,), 1e-5), x, w0, w0.copy(), x.copy()), dtype)


def test_layer_norm_without_leading_dims_matches_torch():
    rng = _rng(9)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w, b = _params("weight+bias", (3, 4), np.float64)
    _check_against_torch(layer_norm(x, w, b, normalized_shape=(3, 4)), layer_norm_backward(g, x, w, b, normalized_shape=(3, 4)),
                         _torch_reference(_torch_ln((3, 4), 1e-5), x, w, b, g), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    """Views (a transposed, strided x; a reversed weight) give the results of their copies."""
    rng = _rng(12)
    base = rng.standard_normal((5, 4, 6, 3)).astype(dtype)
    x = base.transpose(0, 3, 1, 2)[:, :, :, ::2]  # (5, 3, 4, 3), no axis contiguous
    g = rng.standard_normal(x.shape).astype(dtype)[..., ::-1]
    w = rng.standard_normal(6).astype(dtype)[::2]
    b = rng.standard_normal(3).astype(dtype)
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    xc, gc, wc = x.copy(), g.copy(), w.copy()
    # equal up to rounding: NumPy sums a strided array in another order (not pairwise)
    close(batch_norm(x, w, b), batch_norm(xc, wc, b), dtype)
    for got, want in zip(batch_norm_backward(g, x, w, b), batch_norm_backward(gc, xc, wc, b)):
        close(got, want, dtype)
    theirs = _torch_reference(_torch_ln((4, 3), 1e-5), xc, None, None, gc)
    _check_against_torch(layer_norm(x, None, None, normalized_shape=(4, 3)),
                         layer_norm_backward(g, x, None, None, normalized_shape=(4, 3)), theirs, dtype)


# ----------------------------------------------------------------------------- the derivation's identities


@pytest.mark.parametrize("eps", [1e-5, 0.5])
@pytest.mark.parametrize("affine", ["weight+bias", "none"])
def test_identities(affine, eps):
    """Over each normalized group A (docs/normalization-derivation.md):

        sum_A grad_x = 0                                              (shift invariance)
        sum_A grad_x * xhat = eps * inv_std^3 * sum_A gy * xhat       (-> 0 as eps -> 0: scale invariance)

    for any gamma (it only enters through gy = g * gamma).
    """
    rng = _rng(10)
    x = rng.standard_normal((6, 3, 4, 4)) * 2 + 1
    g = rng.standard_normal(x.shape)
    cases = [
        ("batch_norm", (0, 2, 3), _params(affine, (3,), np.float64),
         lambda w, b: batch_norm_backward(g, x, w, b, eps=eps)[0], lambda w: 1 if w is None else w.reshape(1, 3, 1, 1)),
        ("layer_norm", (1, 2, 3), _params(affine, (3, 4, 4), np.float64),
         lambda w, b: layer_norm_backward(g, x, w, b, normalized_shape=(3, 4, 4), eps=eps)[0], lambda w: 1 if w is None else w),
    ]
    for name, axes, (w, b), backward, gamma in cases:
        gx = backward(w, b)
        mean = x.mean(axis=axes, keepdims=True)
        inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
        xhat = (x - mean) * inv_std
        gy = g * gamma(w)
        scale = np.abs(gx).sum(axis=axes)
        np.testing.assert_allclose(gx.sum(axis=axes), 0.0, atol=1e-13 * scale.max(), err_msg=name)
        np.testing.assert_allclose(
            (gx * xhat).sum(axis=axes), (eps * inv_std**3 * (gy * xhat).sum(axis=axes, keepdims=True)).reshape(-1),
            rtol=1e-9, atol=1e-13 * scale.max(), err_msg=name,
        )


# ----------------------------------------------------------------------------- dtype, no mutation


def _all_calls(dtype):
    rng = _rng(3)
    x4 = rng.standard_normal((3, 2, 4, 5)).astype(dtype)
    g4 = rng.standard_normal(x4.shape).astype(dtype)
    wc, bc = _params("weight+bias", (2,), dtype)
    wl, bl = _params("weight+bias", (4, 5), dtype)
    return [
        ("batch_norm", batch_norm, (x4, wc, bc), {}),
        ("batch_norm_backward", batch_norm_backward, (g4, x4, wc, bc), {"eps": 1e-3}),
        ("batch_norm_backward no affine", batch_norm_backward, (g4, x4), {}),
        ("layer_norm", layer_norm, (x4, wl, bl), {"normalized_shape": (4, 5)}),
        ("layer_norm_backward", layer_norm_backward, (g4, x4, wl, bl), {"normalized_shape": (4, 5)}),
        ("layer_norm_backward no leading", layer_norm_backward, (g4, x4, None, None), {"normalized_shape": (3, 2, 4, 5)}),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_keep_the_dtype_and_inputs_are_not_modified(dtype):
    for name, fn, args, kwargs in _all_calls(dtype):
        before = [a.copy() if a is not None else None for a in args]
        out = fn(*args, **kwargs)
        for result in out if isinstance(out, tuple) else (out,):
            if result is None:
                continue
            assert isinstance(result, np.ndarray), name
            assert result.dtype == np.dtype(dtype), f"{name}: {result.dtype}"
            for a in args:
                assert a is None or not np.shares_memory(result, a), f"{name} returned a view of an input"
        for a, b in zip(args, before):
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"{name} modified an input")


def test_configuration_is_keyword_only():
    x = np.ones((2, 3))
    with pytest.raises(TypeError):
        batch_norm(x, None, None, 1e-3)
    with pytest.raises(TypeError):
        layer_norm(x, None, None, (3,))
    with pytest.raises(TypeError):
        layer_norm(x)  # normalized_shape is required


# ----------------------------------------------------------------------------- validation

X = np.ones((4, 3, 2, 2))
X2 = np.ones((4, 3))
C3 = np.ones(3)

BAD_CALLS = [
    # (id, call, exception, words the message must contain)
    ("bn x list", lambda: batch_norm([[1.0, 2.0]]), TypeError, "x"),
    ("bn x int", lambda: batch_norm(np.ones((4, 3), dtype=np.int64)), TypeError, "x"),
    ("bn x float16", lambda: batch_norm(np.ones((4, 3), dtype=np.float16)), TypeError, "dtype"),
    ("bn x 1-d", lambda: batch_norm(np.ones(4)), ValueError, "x must be at least 2-dimensional"),
    ("bn x 0-d", lambda: batch_norm(np.array(1.0)), ValueError, "x"),
    ("bn weight shape", lambda: batch_norm(X, np.ones(2)), ValueError, "weight must have shape"),
    ("bn weight 2-d", lambda: batch_norm(X, np.ones((3, 1))), ValueError, "weight"),
    ("bn bias shape", lambda: batch_norm(X, C3, np.ones(4)), ValueError, "bias must have shape"),
    ("bn weight list", lambda: batch_norm(X, [1.0, 1.0, 1.0]), TypeError, "weight"),
    ("bn mixed dtype", lambda: batch_norm(X, C3.astype(np.float32)), TypeError, "dtype"),
    ("bn eps 0", lambda: batch_norm(X, eps=0.0), ValueError, "eps must be a positive"),
    ("bn eps negative", lambda: batch_norm(X, eps=-1e-5), ValueError, "eps"),
    ("bn eps nan", lambda: batch_norm(X, eps=float("nan")), ValueError, "eps"),
    ("bn eps inf", lambda: batch_norm(X, eps=float("inf")), ValueError, "eps"),
    ("bn eps int", lambda: batch_norm(X, eps=1), TypeError, "eps must be a float"),
    ("bn eps bool", lambda: batch_norm(X, eps=True), TypeError, "eps"),
    ("bn eps str", lambda: batch_norm(X, eps="1e-5"), TypeError, "eps"),
    ("bn eps array", lambda: batch_norm(X, eps=np.array([1e-5])), TypeError, "eps"),
    ("bn one value", lambda: batch_norm(np.ones((1, 3, 1, 1))), ValueError, "more than 1 value per channel"),
    ("bn_backward g shape", lambda: batch_norm_backward(np.ones((4, 3)), X), ValueError, "grad_output"),
    ("bn_backward g dtype", lambda: batch_norm_backward(X.astype(np.float32), X), TypeError, "grad_output"),
    ("bn_backward g list", lambda: batch_norm_backward([[1.0] * 3] * 4, X2), TypeError, "grad_output"),
    ("bn_backward weight shape", lambda: batch_norm_backward(X, X, np.ones(4)), ValueError, "weight"),
    ("bn_backward eps", lambda: batch_norm_backward(X, X, eps=0.0), ValueError, "eps"),
    ("ln x int", lambda: layer_norm(np.ones((4, 3), dtype=int), normalized_shape=3), TypeError, "x"),
    ("ln shape mismatch", lambda: layer_norm(X2, normalized_shape=(2,)), ValueError, "trailing dimensions"),
    ("ln shape order", lambda: layer_norm(X, normalized_shape=(2, 3)), ValueError, "normalized_shape"),
    ("ln shape too long", lambda: layer_norm(X2, normalized_shape=(1, 4, 3)), ValueError, "trailing dimensions"),
    ("ln shape empty", lambda: layer_norm(X2, normalized_shape=()), ValueError, "normalized_shape"),
    ("ln shape negative", lambda: layer_norm(X2, normalized_shape=(-3,)), ValueError, "normalized_shape"),
    ("ln shape float", lambda: layer_norm(X2, normalized_shape=3.0), TypeError, "normalized_shape"),
    ("ln shape float in tuple", lambda: layer_norm(X2, normalized_shape=(3.0,)), TypeError, "normalized_shape"),
    ("ln shape bool", lambda: layer_norm(X2, normalized_shape=True), TypeError, "normalized_shape"),
    ("ln shape None", lambda: layer_norm(X2, normalized_shape=None), TypeError, "normalized_shape"),
    ("ln weight shape", lambda: layer_norm(X, np.ones(2), normalized_shape=(2, 2)), ValueError, "weight must have shape"),
    ("ln bias shape", lambda: layer_norm(X, None, np.ones((2, 1)), normalized_shape=(2, 2)), ValueError, "bias must have shape"),
    ("ln mixed dtype", lambda: layer_norm(X2, None, C3.astype(np.float32), normalized_shape=3), TypeError, "dtype"),
    ("ln eps 0", lambda: layer_norm(X2, normalized_shape=3, eps=0.0), ValueError, "eps"),
    ("ln eps int", lambda: layer_norm(X2, normalized_shape=3, eps=0), TypeError, "eps"),
    ("ln_backward g shape", lambda: layer_norm_backward(np.ones((4, 2)), X2, normalized_shape=3), ValueError, "grad_output"),
    ("ln_backward g dtype", lambda: layer_norm_backward(X2.astype(np.float32), X2, normalized_shape=3), TypeError, "grad_output"),
    ("ln_backward shape", lambda: layer_norm_backward(X2, X2, normalized_shape=4), ValueError, "normalized_shape"),
]


@pytest.mark.parametrize("call,exception,words", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_are_rejected_with_the_argument_named(call, exception, words):
    with pytest.raises(exception, match=words):
        call()


def test_numpy_float_eps_and_list_normalized_shape_are_accepted():
    x = _rng(11).standard_normal((3, 4))
    np.testing.assert_array_equal(batch_norm(x, eps=np.float32(1e-3)), batch_norm(x, eps=float(np.float32(1e-3))))
    np.testing.assert_array_equal(layer_norm(x, normalized_shape=[4]), layer_norm(x, normalized_shape=np.int64(4)))
