"""Unit tests of the rules of issue 12: tanh, leaky_relu, gelu (and refimpl.erf), softmax,
log_softmax, cross_entropy and mse_loss.

Hand-computed examples for every rule, then every rule against torch autograd
on parametrized configurations (float64 tight, float32 looser), then the edge
cases where torch's own choices matter (leaky_relu at 0, -0.0 and NaN, gelu
near 0 and at +-1e4, logits at +-1e4, a softmax dimension of size 1, empty and
0-d arrays, non-finite rows), then argument validation, dtypes and the
no-mutation guarantee. Deterministic: every random array comes from a fixed seed.
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as tf

import refimpl
from refimpl.activations import gelu, gelu_backward, leaky_relu, leaky_relu_backward, tanh, tanh_backward
from refimpl.erf import erf
from refimpl.losses import cross_entropy, cross_entropy_backward, mse_loss, mse_loss_backward
from refimpl.softmax import log_softmax, log_softmax_backward, softmax, softmax_backward

RTOL64 = ATOL64 = 1e-12
RTOL32, ATOL32 = 1e-5, 1e-6
TOL = {np.float64: {"rtol": RTOL64, "atol": ATOL64}, np.float32: {"rtol": RTOL32, "atol": ATOL32}}
DTYPES = [np.float64, np.float32]
REDUCTIONS = ["mean", "sum", "none"]
APPROXIMATIONS = ["none", "tanh"]
NEW_FUNCTIONS = [
    "tanh", "tanh_backward", "leaky_relu", "leaky_relu_backward", "gelu", "gelu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
]


def close(actual, expected, dtype, **kw):
    assert type(actual) is np.ndarray, type(actual)
    assert actual.dtype == np.dtype(dtype), f"dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == np.shape(expected), f"shape {actual.shape}, expected {np.shape(expected)}"
    np.testing.assert_allclose(actual, expected, **{**TOL[dtype], **kw})


def t(a, grad=False):
    return torch.tensor(a, requires_grad=grad)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _normal(shape, dtype, seed=0, scale=1.0):
    return np.asarray(_rng(seed).standard_normal(shape) * scale).astype(dtype)


@contextlib.contextmanager
def _no_warnings():
    """Any warning (overflow, invalid value, divide by zero) inside is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------- erf


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of the spacing of the dtype at ``want`` (want computed in float64)."""
    spacing = np.spacing(np.abs(want).astype(got.dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


def _erf_grid() -> np.ndarray:
    boundaries = [2.0**-28, 0.84375, 1.25, refimpl.erf.TAIL_SPLIT, 6.0]
    around = [np.nextafter(b, d) for b in boundaries for d in (0.0, np.inf)] + boundaries
    tiny = np.geomspace(5e-324, 1.0, 4000)
    huge = np.geomspace(1.0, 1e300, 1000)
    points = np.concatenate([np.linspace(-7.0, 7.0, 140001), tiny, huge, around])
    return np.concatenate([points, -points])


def test_erf_is_within_one_ulp_of_the_c_library_in_float64():
    x = _erf_grid()
    want = np.array([math.erf(v) for v in x])
    with _no_warnings():
        got = erf(x)
    assert got.dtype == np.float64 and got.shape == x.shape
    ulps = _ulps(got, want)
    assert ulps.max() <= 1.0, f"{ulps.max()} ulp at x = {x[ulps.argmax()]!r}"
    assert (ulps > 0.5).mean() < 0.05  # nearly always correctly rounded
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # erf(-0.0) = -0.0, odd everywhere


def test_erf_in_float32_is_within_one_ulp_and_stays_float32():
    x = _erf_grid()
    x32 = x[np.abs(x) < 3e38].astype(np.float32)
    want = np.array([math.erf(float(v)) for v in x32])
    got = erf(x32)
    assert got.dtype == np.float32
    ulps = _ulps(got, want)
    assert ulps.max() <= 1.0, f"{ulps.max()} ulp at x = {x32[ulps.argmax()]!r}"


def test_erf_special_values_and_shapes():
    got = erf(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-320, -1e4, 1e4]))
    np.testing.assert_array_equal(got[1:], [1.0, -1.0, 0.0, -0.0, math.erf(1e-320), -1.0, 1.0])
    assert np.isnan(got[0])
    assert np.signbit(got[4])
    zero_d = erf(np.array(0.5))
    assert type(zero_d) is np.ndarray and zero_d.shape == () and zero_d == math.erf(0.5)
    x = _normal((3, 0, 2), np.float64)
    assert erf(x).shape == (3, 0, 2)
    x = _normal((2, 3, 4), np.float64, scale=3.0)
    np.testing.assert_array_equal(erf(x), erf(x.reshape(-1)).reshape(2, 3, 4))
    assert erf(x[:, ::2].T).shape == (4, 2, 2)  # non-contiguous input


# ----------------------------------------------------------------------------- hand-computed examples


def test_tanh_by_hand():
    x = np.array([0.0, math.log(2.0), -math.log(3.0)])
    # tanh(log a) = (a^2 - 1) / (a^2 + 1): 3/5 and -(8/10)
    np.testing.assert_allclose(tanh(x), [0.0, 0.6, -0.8], rtol=1e-15)
    # 1 - t^2: 1, 16/25, 9/25
    np.testing.assert_allclose(tanh_backward(np.array([2.0, 1.0, 5.0]), x), [2.0, 0.64, 1.8], rtol=1e-15)


def test_leaky_relu_by_hand():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(leaky_relu(x), [-0.02, 0.0, 3.0])
    np.testing.assert_array_equal(leaky_relu(x, negative_slope=0.5), [-1.0, 0.0, 3.0])
    g = np.array([10.0, 10.0, 10.0])
    np.testing.assert_allclose(leaky_relu_backward(g, x), [0.1, 0.1, 10.0], rtol=1e-15)  # slope at exactly 0
    np.testing.assert_array_equal(leaky_relu_backward(g, x, negative_slope=0.5), [5.0, 5.0, 10.0])


def test_gelu_by_hand():
    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # Phi(1) = 0.8413447460685429
    x = np.array([0.0, 1.0, -1.0, 2.0])
    expected = [0.0, phi1, -(1 - phi1), 2 * 0.5 * (1 + math.erf(math.sqrt(2)))]
    np.testing.assert_allclose(gelu(x), expected, rtol=1e-15)
    np.testing.assert_allclose(0.8413447460685429, phi1, rtol=1e-15)
    # gelu'(x) = Phi(x) + x phi(x): 1/2 at 0; Phi(1) + exp(-1/2)/sqrt(2 pi) at 1
    pdf1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(gelu_backward(np.array([1.0, 2.0]), x[:2]), [0.5, 2 * (phi1 + pdf1)], rtol=1e-15)
    # tanh form at 1: 0.5 (1 + tanh(sqrt(2/pi) 1.044715))
    k = math.sqrt(2 / math.pi) * 1.044715
    np.testing.assert_allclose(gelu(x[:2], approximate="tanh"), [0.0, 0.5 * (1 + math.tanh(k))], rtol=1e-15)
    d1 = 0.5 * (1 + math.tanh(k)) + 0.5 * (1 - math.tanh(k) ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715)
    np.testing.assert_allclose(gelu_backward(np.array([1.0, 1.0]), x[:2], approximate="tanh"), [0.5, d1], rtol=1e-15)


def test_softmax_and_log_softmax_by_hand():
    x = np.array([[0.0, math.log(2.0), math.log(3.0)], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(softmax(x, dim=1), [[1 / 6, 2 / 6, 3 / 6], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)
    np.testing.assert_allclose(log_softmax(x, dim=-1), np.log([[1 / 6, 2 / 6, 3 / 6], [1 / 3] * 3]), rtol=1e-15)
    np.testing.assert_allclose(softmax(x, dim=0)[:, 0], [1 / (1 + math.exp(5)), 1 / (1 + math.exp(-5))], rtol=1e-15)
    # s (g - <g, s>): s = (1, 2, 3)/6, g = (6, 0, 0): <g, s> = 1 -> (5/6, -2/6, -3/6)
    g = np.array([[6.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(softmax_backward(g, x, dim=1), [[5 / 6, -2 / 6, -3 / 6], [0.0, 0.0, 0.0]], atol=1e-15)
    # g - s sum(g): (6, 0, 0) - 6 (1, 2, 3)/6 = (5, -2, -3); (1, 1, 1) - 3/3 = 0
    np.testing.assert_allclose(log_softmax_backward(g, x, dim=1), [[5.0, -2.0, -3.0], [0.0, 0.0, 0.0]], atol=1e-15)


def test_cross_entropy_by_hand():
    x = np.array([[0.0, math.log(3.0)], [math.log(2.0), math.log(2.0)]])
    target = np.array([1, 0])
    expected = np.array([-math.log(0.75), math.log(2.0)])
    np.testing.assert_allclose(cross_entropy(x, target, reduction="none"), expected, rtol=1e-15)
    np.testing.assert_allclose(cross_entropy(x, target, reduction="sum"), expected.sum(), rtol=1e-15)
    mean = cross_entropy(x, target)
    assert type(mean) is np.ndarray and mean.shape == ()
    np.testing.assert_allclose(mean, expected.mean(), rtol=1e-15)
    # softmax - onehot: (1/4, 3/4) - (0, 1) and (1/2, 1/2) - (1, 0); halved for the mean
    np.testing.assert_allclose(cross_entropy_backward(np.array(1.0), x, target), [[0.125, -0.125], [-0.25, 0.25]])
    np.testing.assert_allclose(
        cross_entropy_backward(np.array([4.0, 2.0]), x, target, reduction="none"), [[1.0, -1.0], [-1.0, 1.0]]
    )


def test_mse_loss_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[0.0, 2.0], [5.0, 3.0]])
    np.testing.assert_array_equal(mse_loss(x, y, reduction="none"), [[1.0, 0.0], [4.0, 1.0]])
    np.testing.assert_array_equal(mse_loss(x, y, reduction="sum"), 6.0)
    np.testing.assert_array_equal(mse_loss(x, y), 1.5)
    # 2 (x - y) g, / 4 for the mean
    np.testing.assert_array_equal(mse_loss_backward(np.array(2.0), x, y), [[1.0, 0.0], [-2.0, 1.0]])
    np.testing.assert_array_equal(mse_loss_backward(np.array(1.0), x, y, reduction="sum"), [[2.0, 0.0], [-4.0, 2.0]])
    g = np.array([[1.0, 1.0], [0.5, 3.0]])
    np.testing.assert_array_equal(mse_loss_backward(g, x, y, reduction="none"), [[2.0, 0.0], [-2.0, 6.0]])


# ----------------------------------------------------------------------------- against torch autograd

SHAPES = [(7,), (3, 4), (2, 3, 4, 5), (1, 1, 1)]


def _elementwise_vs_torch(dtype, x, ours, ours_backward, theirs, seed=1, **tol):
    g = _normal(x.shape, dtype, seed)
    tx = t(x, True)
    ty = theirs(tx)
    ty.backward(t(g))
    with _no_warnings():
        y = ours(x)
        gx = ours_backward(g, x)
    close(y, ty.detach().numpy(), dtype, **tol)
    close(gx, tx.grad.numpy(), dtype, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_tanh_vs_torch(dtype, shape):
    x = _normal(shape, dtype, scale=3.0)
    _elementwise_vs_torch(dtype, x, tanh, tanh_backward, torch.tanh)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("negative_slope", [0.01, 0.2, 0.0, 1.0, -0.5, 3])
def test_leaky_relu_vs_torch(dtype, shape, negative_slope):
    x = _normal(shape, dtype, scale=3.0)
    x.flat[0] = 0.0
    _elementwise_vs_torch(
        dtype,
        x,
        lambda a: leaky_relu(a, negative_slope=negative_slope),
        lambda g, a: leaky_relu_backward(g, a, negative_slope=negative_slope),
        lambda a: tf.leaky_relu(a, negative_slope),
        rtol=0, atol=0,  # one multiplication, the same in both: bit for bit
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_gelu_vs_torch(dtype, shape, approximate):
    x = _normal(shape, dtype, scale=3.0)
    _elementwise_vs_torch(
        dtype,
        x,
        lambda a: gelu(a, approximate=approximate),
        lambda g, a: gelu_backward(g, a, approximate=approximate),
        lambda a: tf.gelu(a, approximate=approximate),
    )


SOFTMAX_SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 3, 4, 5), (2, 1, 3), (1,)]
SOFTMAX_CASES = [(shape, dim) for shape in SOFTMAX_SHAPES for dim in range(-max(len(shape), 1), max(len(shape), 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=[f"{s}-dim{d}" for s, d in SOFTMAX_CASES])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_vs_torch(dtype, shape, dim, log):
    ours, ours_backward = (log_softmax, log_softmax_backward) if log else (softmax, softmax_backward)
    theirs = tf.log_softmax if log else tf.softmax
    x = _normal(shape, dtype, scale=3.0)
    _elementwise_vs_torch(
        dtype, x, lambda a: ours(a, dim=dim), lambda g, a: ours_backward(g, a, dim=dim), lambda a: theirs(a, dim=dim)
    )


def _loss_vs_torch(dtype, reduction, ours, ours_backward, theirs, x, target, torch_target, seed=1, **tol):
    loss_shape = () if reduction != "none" else theirs(t(x), torch_target, reduction="none").shape
    g = _normal(tuple(loss_shape), dtype, seed)
    tx = t(x, True)
    tl = theirs(tx, torch_target, reduction=reduction)
    tl.backward(t(g))
    with _no_warnings():
        loss = ours(x, target, reduction=reduction)
        grad = ours_backward(g, x, target, reduction=reduction)
    close(loss, tl.detach().numpy(), dtype, **tol)
    close(grad, tx.grad.numpy(), dtype, **tol)
    return loss, grad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("n,c", [(1, 1), (5, 3), (8, 10), (3, 1000), (64, 2)])
def test_cross_entropy_vs_torch(dtype, reduction, n, c):
    x = _normal((n, c), dtype, scale=4.0)
    target = _rng(2).integers(0, c, size=n)
    _loss_vs_torch(dtype, reduction, cross_entropy, cross_entropy_backward, tf.cross_entropy, x, target, t(target))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 3, 4, 5)])
def test_mse_loss_vs_torch(dtype, reduction, shape):
    x = _normal(shape, dtype, scale=2.0)
    y = _normal(shape, dtype, seed=3)
    _loss_vs_torch(dtype, reduction, mse_loss, mse_loss_backward, tf.mse_loss, x, y, t(y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_target_integer_dtypes_all_give_torchs_answer(dtype):
    x = _normal((4, 3), dtype)
    target = np.array([0, 2, 1, 2])
    want = tf.cross_entropy(t(x), t(target)).numpy()
    for int_dtype in (np.int64, np.int32, np.uint8, np.int16):
        close(cross_entropy(x, target.astype(int_dtype)), want, dtype)


# ----------------------------------------------------------------------------- edges


@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_at_zero_minus_zero_and_nan_matches_torch(dtype):
    """torch: ``x > 0 ? g : g * slope``: the slope at 0 and -0.0, and at NaN too (not NaN)."""
    x = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45], dtype=dtype)
    g = np.array([3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0], dtype=dtype)
    tx = t(x, True)
    ty = tf.leaky_relu(tx, 0.01)
    ty.backward(t(g))
    y, gx = leaky_relu(x), leaky_relu_backward(g, x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ty.detach().numpy()))  # leaky_relu(-0.0) = -0.0
    np.testing.assert_array_equal(gx, tx.grad.numpy())
    slope_g = dtype(3.0) * dtype(0.01)
    np.testing.assert_array_equal(gx[:3], [slope_g, slope_g, slope_g])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_gelu_near_zero_matches_torch(dtype, approximate):
    tiny = np.finfo(dtype).tiny
    x = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, tiny, -tiny, 1e-3, -1e-3], dtype=dtype)
    g = np.ones_like(x)
    tx = t(x, True)
    ty = tf.gelu(tx, approximate=approximate)
    ty.backward(t(g))
    y, gx = gelu(x, approximate=approximate), gelu_backward(g, x, approximate=approximate)
    close(y, ty.detach().numpy(), dtype, atol=0)  # relative accuracy, down to the smallest normal
    close(gx, tx.grad.numpy(), dtype, atol=0)
    np.testing.assert_array_equal(np.signbit(y[:2]), [False, True])  # gelu(-0.0) = -0.0, as torch
    np.testing.assert_allclose(y[2:4], [5e-31, -5e-31], rtol=1e-6)  # x / 2 near 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_gelu_in_the_tails_matches_torch(dtype, approximate):
    x = np.array([1e4, -1e4, 1e3, -1e3, 40.0, -40.0, 10.0, -10.0, 6.0, -6.0, 5.0, -5.0, 3e4, -3e4], dtype=dtype)
    if dtype == np.float64:
        x = np.concatenate([x, np.array([1e20, -1e20, 1e200, -1e200])])
    g = _normal(x.shape, dtype, seed=4)
    tx = t(x, True)
    ty = tf.gelu(tx, approximate=approximate)
    ty.backward(t(g))
    with _no_warnings():
        y, gx = gelu(x, approximate=approximate), gelu_backward(g, x, approximate=approximate)
    close(y, ty.detach().numpy(), dtype)
    close(gx, tx.grad.numpy(), dtype)
    np.testing.assert_array_equal(y[:2], [1e4, 0.0])  # x and -0.0: 1 + erf(-7071) is exactly 0
    np.testing.assert_array_equal(gx[:2], [g[0], 0.0])


@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_gelu_non_finite_matches_torch_in_float64(approximate):
    """float64: gelu(inf) = inf, gelu(-inf) = nan (-inf * 0), gradients nan (inf * 0), as torch's kernel.

    (torch's *vectorized float32* kernel returns NaN for gelu(+inf) and inf for
    gelu(3e38) with approximate='none', unlike its own float64 kernel: refimpl
    follows the float64 answer in both dtypes.)
    """
    x = np.array([np.inf, -np.inf, np.nan])
    tx = t(x, True)
    ty = tf.gelu(tx, approximate=approximate)
    ty.backward(torch.ones(3, dtype=torch.float64))
    close(gelu(x, approximate=approximate), ty.detach().numpy(), np.float64)
    close(gelu_backward(np.ones(3), x, approximate=approximate), tx.grad.numpy(), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_saturates_like_torch(dtype):
    x = np.array([1e4, -1e4, 30.0, -30.0, np.inf, -np.inf, np.nan, -0.0], dtype=dtype)
    g = np.ones_like(x)
    tx = t(x, True)
    ty = torch.tanh(tx)
    ty.backward(t(g))
    with _no_warnings():
        close(tanh(x), ty.detach().numpy(), dtype)
        close(tanh_backward(g, x), tx.grad.numpy(), dtype)
    assert np.signbit(tanh(x)[-1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_at_huge_logits(dtype, reduction):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]], dtype=dtype)
    target = np.array([1, 1, 0, 2])
    loss, grad = _loss_vs_torch(dtype, reduction, cross_entropy, cross_entropy_backward, tf.cross_entropy, x, target, t(target))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    per_row = cross_entropy(x, target, reduction="none")
    np.testing.assert_allclose(per_row, [2e4, 0.0, math.log(2.0), math.log(3.0)], rtol=1e-6)
    grad = cross_entropy_backward(np.ones(4, dtype=dtype), x, target, reduction="none")
    np.testing.assert_allclose(grad, [[1, -1, 0], [0, 0, 0], [-0.5, 0.5, 0], [1 / 3, 1 / 3, -2 / 3]], rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_of_huge_logits_does_not_overflow(dtype, log):
    x = np.array([[1e4, -1e4, 0.0], [3e38, 3e38, -3e38]], dtype=dtype)
    ours, theirs = (log_softmax, tf.log_softmax) if log else (softmax, tf.softmax)
    with _no_warnings():
        y = ours(x, dim=1)
    close(y, theirs(t(x), dim=1).numpy(), dtype)
    assert np.all(np.isfinite(y[:, :2]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_along_a_dimension_of_size_1(dtype, log):
    x = _normal((3, 1, 4), dtype, scale=5.0)
    g = _normal((3, 1, 4), dtype, seed=1)
    ours, ours_backward = (log_softmax, log_softmax_backward) if log else (softmax, softmax_backward)
    np.testing.assert_array_equal(ours(x, dim=1), np.zeros_like(x) if log else np.ones_like(x))
    np.testing.assert_array_equal(ours_backward(g, x, dim=-2), np.zeros_like(x))  # a constant has no gradient
    _elementwise_vs_torch(
        dtype, x, lambda a: ours(a, dim=1), lambda gg, a: ours_backward(gg, a, dim=1),
        lambda a: (tf.log_softmax if log else tf.softmax)(a, dim=1),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_non_finite_rows_follow_torch(dtype, log):
    """A row with NaN or +inf is all NaN; a row of -inf only is NaN; a -inf among finite logits is p = 0."""
    x = np.array(
        [[1.0, np.nan, 2.0], [1.0, np.inf, 2.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0]], dtype=dtype
    )
    ours, ours_backward = (log_softmax, log_softmax_backward) if log else (softmax, softmax_backward)
    theirs = tf.log_softmax if log else tf.softmax
    for dim, xx in ((1, x), (0, np.ascontiguousarray(x.T))):  # torch's last-dim and inner-dim kernels
        g = np.ones_like(xx)
        tx = t(xx, True)
        ty = theirs(tx, dim=dim)
        ty.backward(t(g))
        with _no_warnings():
            close(ours(xx, dim=dim), ty.detach().numpy(), dtype)
            close(ours_backward(g, xx, dim=dim), tx.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_d_inputs_give_zero_d_arrays(dtype):
    x, y, g = (np.array(v, dtype=dtype) for v in (0.3, -1.2, 0.7))
    calls = {
        "tanh": lambda: tanh(x), "tanh_backward": lambda: tanh_backward(g, x),
        "leaky_relu": lambda: leaky_relu(y), "leaky_relu_backward": lambda: leaky_relu_backward(g, y),
        "gelu": lambda: gelu(x), "gelu_backward": lambda: gelu_backward(g, x),
        "gelu tanh": lambda: gelu(x, approximate="tanh"),
        "gelu_backward tanh": lambda: gelu_backward(g, x, approximate="tanh"),
        "softmax": lambda: softmax(x, dim=0), "softmax_backward": lambda: softmax_backward(g, x, dim=-1),
        "log_softmax": lambda: log_softmax(x, dim=-1), "log_softmax_backward": lambda: log_softmax_backward(g, x, dim=0),
        "mse_loss": lambda: mse_loss(x, y), "mse_loss none": lambda: mse_loss(x, y, reduction="none"),
        "mse_loss_backward": lambda: mse_loss_backward(g, x, y),
        "cross_entropy mean": lambda: cross_entropy(np.ones((2, 3), dtype=dtype), np.array([0, 1])),
        "cross_entropy sum": lambda: cross_entropy(np.ones((2, 3), dtype=dtype), np.array([0, 1]), reduction="sum"),
    }
    wrong = {}
    for name, call in calls.items():
        result = call()
        if type(result) is not np.ndarray or result.dtype != np.dtype(dtype) or result.shape != ():
            wrong[name] = f"{type(result).__name__} {getattr(result, 'dtype', None)} {getattr(result, 'shape', None)}"
    assert not wrong, wrong
    # the values, as torch: softmax of one element is 1, its log 0, the gradients 0
    assert softmax(x, dim=0) == tf.softmax(t(x), dim=0).item() == 1.0
    assert log_softmax(x, dim=0) == 0.0
    assert softmax_backward(g, x, dim=0) == 0.0 and log_softmax_backward(g, x, dim=0) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_arrays_follow_torch(dtype):
    with _no_warnings():
        for shape, dim in (((0,), 0), ((0, 3), 1), ((0, 3), 0), ((3, 0), 1), ((2, 0, 4), -1)):
            x = np.zeros(shape, dtype=dtype)
            for fn, backward, theirs in ((softmax, softmax_backward, tf.softmax), (log_softmax, log_softmax_backward, tf.log_softmax)):
                close(fn(x, dim=dim), theirs(t(x), dim=dim).numpy(), dtype)
                assert backward(x, x, dim=dim).shape == shape
            for fn, backward in ((tanh, tanh_backward), (leaky_relu, leaky_relu_backward), (gelu, gelu_backward)):
                assert fn(x).shape == shape and fn(x).dtype == dtype
                assert backward(x, x).shape == shape
        e = np.zeros((0, 5), dtype=dtype)
        no_targets = np.zeros((0,), dtype=np.int64)
        assert np.isnan(cross_entropy(e, no_targets))
        assert np.isnan(tf.cross_entropy(t(e), t(no_targets)).item())
        assert cross_entropy(e, no_targets, reduction="sum") == 0
        assert cross_entropy(e, no_targets, reduction="none").shape == (0,)
        assert cross_entropy_backward(np.array(1.0, dtype=dtype), e, no_targets).shape == (0, 5)
        assert cross_entropy_backward(np.zeros(0, dtype=dtype), e, no_targets, reduction="none").shape == (0, 5)
        assert np.isnan(mse_loss(e, e)) and np.isnan(tf.mse_loss(t(e), t(e)).item())
        assert mse_loss(e, e, reduction="sum") == 0
        assert mse_loss_backward(np.array(1.0, dtype=dtype), e, e).shape == (0, 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_non_finite_logits_follow_torch(dtype):
    x = np.array([[np.nan, 0.0], [np.inf, 0.0], [-np.inf, 0.0], [0.0, -np.inf]], dtype=dtype)
    target = np.array([1, 1, 1, 0])
    _loss_vs_torch(dtype, "none", cross_entropy, cross_entropy_backward, tf.cross_entropy, x, target, t(target))


# ----------------------------------------------------------------------------- dtype, no mutation


def _all_calls(dtype):
    """(name, callable, args, kwargs) for every new public function, on valid arrays of ``dtype``."""
    x = _normal((4, 3), dtype, seed=3)
    g = _normal((4, 3), dtype, seed=4)
    y = _normal((4, 3), dtype, seed=5)
    target = np.array([0, 2, 1, 1])
    g0 = np.array(0.7, dtype=dtype)
    g4 = _normal((4,), dtype, seed=6)
    return [
        ("tanh", tanh, (x,), {}),
        ("tanh_backward", tanh_backward, (g, x), {}),
        ("leaky_relu", leaky_relu, (x,), {"negative_slope": 0.1}),
        ("leaky_relu_backward", leaky_relu_backward, (g, x), {}),
        ("gelu", gelu, (x,), {}),
        ("gelu tanh", gelu, (x,), {"approximate": "tanh"}),
        ("gelu_backward", gelu_backward, (g, x), {}),
        ("gelu_backward tanh", gelu_backward, (g, x), {"approximate": "tanh"}),
        ("softmax", softmax, (x,), {"dim": 1}),
        ("softmax_backward", softmax_backward, (g, x), {"dim": 0}),
        ("log_softmax", log_softmax, (x,), {"dim": -1}),
        ("log_softmax_backward", log_softmax_backward, (g, x), {"dim": -2}),
        ("cross_entropy", cross_entropy, (x, target), {}),
        ("cross_entropy none", cross_entropy, (x, target), {"reduction": "none"}),
        ("cross_entropy_backward", cross_entropy_backward, (g0, x, target), {}),
        ("cross_entropy_backward none", cross_entropy_backward, (g4, x, target), {"reduction": "none"}),
        ("mse_loss", mse_loss, (x, y), {"reduction": "sum"}),
        ("mse_loss_backward", mse_loss_backward, (g0, x, y), {}),
        ("mse_loss_backward none", mse_loss_backward, (g, x, y), {"reduction": "none"}),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_results_keep_the_dtype_and_inputs_are_not_modified(dtype):
    covered = set()
    for name, fn, args, kwargs in _all_calls(dtype):
        covered.add(fn.__name__)
        before = [a.copy() for a in args]
        flags = [a.flags.writeable for a in args]
        out = fn(*args, **kwargs)
        assert type(out) is np.ndarray, name
        assert out.dtype == np.dtype(dtype), f"{name}: {out.dtype}"
        for a in args:
            assert not np.shares_memory(out, a), f"{name} returned a view of an input"
        for a, b, w in zip(args, before, flags):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} modified an input")
            assert a.flags.writeable == w
            assert a.dtype == b.dtype
    assert covered == set(NEW_FUNCTIONS)


def test_read_only_inputs_are_accepted():
    """Nothing is written into an input, not even temporarily: read-only arrays (e.g. memory-mapped data) work."""
    for name, fn, args, kwargs in _all_calls(np.float64):
        frozen = []
        for a in args:
            a = a.copy()
            a.flags.writeable = False
            frozen.append(a)
        expected = fn(*args, **kwargs)
        np.testing.assert_array_equal(fn(*frozen, **kwargs), expected, err_msg=name)


#: the new ops with an oracle record (issue 12): part of the contract
IN_CONTRACT = {"tanh", "leaky_relu", "gelu"}


def test_the_new_rules_are_exported_and_in_the_contract_once_recorded():
    for name in NEW_FUNCTIONS:
        assert name in refimpl.__all__
        assert getattr(refimpl, name).__doc__
        op = name.removesuffix("_backward")
        assert (op in refimpl.CONTRACT) == (op in IN_CONTRACT), op


def test_every_rule_states_its_formula():
    for name in NEW_FUNCTIONS:
        doc = getattr(refimpl, name).__doc__
        assert "=" in doc, f"{name}'s docstring has no formula"


def test_configuration_is_keyword_only():
    x = np.ones((2, 3))
    calls = [
        lambda: leaky_relu(x, 0.1),
        lambda: leaky_relu_backward(x, x, 0.1),
        lambda: gelu(x, "tanh"),
        lambda: gelu_backward(x, x, "tanh"),
        lambda: softmax(x, 1),
        lambda: log_softmax_backward(x, x, 1),
        lambda: cross_entropy(x, np.array([0, 1]), "sum"),
        lambda: mse_loss(x, x, "sum"),
        lambda: mse_loss_backward(np.array(1.0), x, x, "sum"),
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()
    with pytest.raises(TypeError):
        softmax(x)  # dim is required, as torch would like it to be


# ----------------------------------------------------------------------------- validation

A = np.ones((4, 3))
G0 = np.array(1.0)
T4 = np.array([0, 1, 2, 0])

BAD_CALLS = [
    # (id, call, exception, words the message must contain)
    ("tanh list", lambda: tanh([1.0]), TypeError, "x"),
    ("tanh int", lambda: tanh(np.arange(3)), TypeError, "dtype"),
    ("tanh_backward shape", lambda: tanh_backward(np.ones(2), np.ones(3)), ValueError, "grad_output"),
    ("tanh_backward dtype", lambda: tanh_backward(np.ones(3, dtype=np.float32), np.ones(3)), TypeError, "grad_output"),
    ("leaky_relu float16", lambda: leaky_relu(np.ones(3, dtype=np.float16)), TypeError, "dtype"),
    ("leaky_relu slope str", lambda: leaky_relu(A, negative_slope="0.1"), TypeError, "negative_slope"),
    ("leaky_relu slope bool", lambda: leaky_relu(A, negative_slope=True), TypeError, "negative_slope"),
    ("leaky_relu slope None", lambda: leaky_relu_backward(A, A, negative_slope=None), TypeError, "negative_slope"),
    ("leaky_relu_backward shape", lambda: leaky_relu_backward(np.ones((3, 4)), A), ValueError, "grad_output"),
    ("gelu approximate", lambda: gelu(A, approximate="erf"), ValueError, "approximate"),
    ("gelu approximate None", lambda: gelu(A, approximate=None), TypeError, "approximate"),
    ("gelu approximate bool", lambda: gelu_backward(A, A, approximate=True), TypeError, "approximate"),
    ("gelu int", lambda: gelu(np.ones(3, dtype=int)), TypeError, "x"),
    ("gelu_backward shape", lambda: gelu_backward(np.ones(3), A), ValueError, "grad_output"),
    ("gelu_backward g list", lambda: gelu_backward([1.0], np.ones(1)), TypeError, "grad_output"),
    ("softmax dim out of range", lambda: softmax(A, dim=2), ValueError, "dim"),
    ("softmax dim too negative", lambda: softmax(A, dim=-3), ValueError, "dim"),
    ("softmax 0-d dim 1", lambda: softmax(np.array(1.0), dim=1), ValueError, "dim"),
    ("softmax dim float", lambda: softmax(A, dim=1.0), TypeError, "dim"),
    ("softmax dim None", lambda: log_softmax(A, dim=None), TypeError, "dim"),
    ("softmax dim bool", lambda: softmax(A, dim=True), TypeError, "dim"),
    ("softmax dim tuple", lambda: softmax(A, dim=(0, 1)), TypeError, "dim"),
    ("softmax x int", lambda: softmax(np.ones((2, 2), dtype=int), dim=0), TypeError, "x"),
    ("softmax_backward g shape", lambda: softmax_backward(np.ones((3, 4)), A, dim=0), ValueError, "grad_output"),
    ("log_softmax_backward g dtype", lambda: log_softmax_backward(A.astype(np.float32), A, dim=0), TypeError, "grad_output"),
    ("ce input 1-d", lambda: cross_entropy(np.ones(3), np.array(0)), ValueError, "input"),
    ("ce input 3-d", lambda: cross_entropy(np.ones((2, 3, 4)), np.array([0, 1])), ValueError, "input"),
    ("ce input int", lambda: cross_entropy(np.ones((4, 3), dtype=int), T4), TypeError, "input"),
    ("ce target float", lambda: cross_entropy(A, T4.astype(float)), TypeError, "target"),
    ("ce target bool", lambda: cross_entropy(A, np.array([True, False, True, False])), TypeError, "target"),
    ("ce target list", lambda: cross_entropy(A, [0, 1, 2, 0]), TypeError, "target"),
    ("ce target probabilities", lambda: cross_entropy(A, A / 3), TypeError, "target"),
    ("ce target length", lambda: cross_entropy(A, np.array([0, 1, 2])), ValueError, "target"),
    ("ce target 2-d", lambda: cross_entropy(A, T4.reshape(4, 1)), ValueError, "target"),
    ("ce target too big", lambda: cross_entropy(A, np.array([0, 1, 3, 0])), ValueError, "target"),
    ("ce target negative", lambda: cross_entropy(A, np.array([0, -1, 2, 0])), ValueError, "target"),
    ("ce target ignore_index", lambda: cross_entropy(A, np.array([0, -100, 2, 0])), ValueError, "ignore_index"),
    ("ce reduction", lambda: cross_entropy(A, T4, reduction="average"), ValueError, "reduction"),
    ("ce reduction None", lambda: cross_entropy(A, T4, reduction=None), TypeError, "reduction"),
    ("ce_backward g shape mean", lambda: cross_entropy_backward(np.ones(4), A, T4), ValueError, "grad_output"),
    ("ce_backward g shape none", lambda: cross_entropy_backward(G0, A, T4, reduction="none"), ValueError, "grad_output"),
    ("ce_backward g (N, C) none", lambda: cross_entropy_backward(A, A, T4, reduction="none"), ValueError, "grad_output"),
    ("ce_backward g dtype", lambda: cross_entropy_backward(np.array(1.0, dtype=np.float32), A, T4), TypeError, "grad_output"),
    ("ce_backward target", lambda: cross_entropy_backward(G0, A, np.array([0, 1, 2, 5])), ValueError, "target"),
    ("mse shape", lambda: mse_loss(A, np.ones(3)), ValueError, "target"),
    ("mse mixed dtype", lambda: mse_loss(A, A.astype(np.float32)), TypeError, "dtype"),
    ("mse target int", lambda: mse_loss(A, np.ones((4, 3), dtype=int)), TypeError, "target"),
    ("mse input list", lambda: mse_loss([1.0], np.ones(1)), TypeError, "input"),
    ("mse reduction", lambda: mse_loss(A, A, reduction="elementwise_mean"), ValueError, "reduction"),
    ("mse_backward g shape", lambda: mse_loss_backward(np.ones((4, 3)), A, A), ValueError, "grad_output"),
    ("mse_backward g shape none", lambda: mse_loss_backward(G0, A, A, reduction="none"), ValueError, "grad_output"),
    ("mse_backward mixed", lambda: mse_loss_backward(G0, A, A.astype(np.float32)), TypeError, "dtype"),
]


@pytest.mark.parametrize("call,exception,words", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_bad_arguments_are_rejected_with_the_argument_named(call, exception, words):
    with pytest.raises(exception, match=words):
        call()
