"""conv1d and conv3d: the rank-1 and rank-3 cases of one N-d convolution core.

Forward and both backward rules (the fast path exported by ``refimpl`` and the
derivation's form in ``refimpl.convolution``) against torch autograd over a grid
of stride / padding / dilation / groups; the generic core at rank 2 against
today's conv2d; the N-d named steps; validation; no mutation; NaN and inf
confined as torch confines them.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import refimpl
from refimpl import convolution, fast
from refimpl.correlation import correlate, correlate2d, correlate_taps, crop, dilate, flip, pad, swap_filter_channels

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}  # relative to the largest magnitude
OPS = {
    1: (refimpl.conv1d, refimpl.conv1d_backward, convolution.conv1d_backward, F.conv1d),
    2: (refimpl.conv2d, refimpl.conv2d_backward, convolution.conv2d_backward, F.conv2d),
    3: (refimpl.conv3d, refimpl.conv3d_backward, convolution.conv3d_backward, F.conv3d),
}


def assert_close(actual, expected, dtype, what=""):
    expected = np.asarray(expected)
    assert actual.dtype == np.dtype(dtype), (what, actual.dtype)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOL[np.dtype(dtype)] * scale, err_msg=what)


def torch_reference(rank, x, w, b, g, cfg):
    """(z, grad_x, grad_weight, grad_bias) from torch autograd, in float64 whatever the dtype."""
    xt, wt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w))
    bt = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    z = OPS[rank][3](xt, wt, bt, **cfg)
    inputs = (xt, wt) if bt is None else (xt, wt, bt)
    grads = torch.autograd.grad(z, inputs, torch.tensor(g, dtype=torch.float64))
    return (z.detach().numpy(),) + tuple(t.numpy() for t in grads) + ((None,) if bt is None else ())


# (spatial size, kernel, stride, padding, dilation, groups, C_in/groups, C_out/groups, bias)
GRID_1D = [
    ((7,), (3,), 1, 0, 1, 1, 2, 3, True),
    ((9,), (3,), 2, 0, 1, 1, 2, 2, True),  # stride 2 over 9: every element read
    ((10,), (3,), 2, 0, 1, 1, 2, 2, False),  # (10-3)%2 = 1: the last element is never read
    ((11,), (2,), 3, 1, 1, 1, 1, 2, True),  # stride 3 leaves input at the end
    ((12,), (3,), 1, 2, 2, 1, 2, 3, True),  # dilation
    ((13,), (3,), 2, 1, 3, 1, 2, 1, False),  # dilation and stride
    ((8,), (3,), 1, 1, 1, 2, 2, 3, True),  # groups
    ((9,), (2,), 2, 1, 2, 3, 1, 2, True),  # groups, stride, dilation
    ((6,), (1,), 1, 0, 1, 4, 1, 1, False),  # depthwise 1x1
    ((5,), (5,), 1, 2, 1, 1, 3, 2, True),  # kernel as wide as the input
    ((3,), (4,), 1, 3, 2, 1, 1, 1, True),  # dilated kernel wider than the input, padding
]
GRID_3D = [
    ((4, 5, 6), (2, 3, 2), 1, 0, 1, 1, 2, 2, True),
    ((5, 5, 5), (3, 3, 3), 2, 1, 1, 1, 2, 2, False),
    ((6, 7, 5), (2, 2, 3), (2, 3, 1), (0, 1, 1), 1, 1, 1, 2, True),  # strides that leave unused input
    ((6, 6, 6), (2, 3, 2), 1, (1, 2, 0), (2, 2, 1), 1, 2, 1, True),  # dilation
    ((5, 6, 4), (3, 2, 2), (1, 2, 2), 1, (1, 2, 1), 2, 2, 2, True),  # groups, stride, dilation
    ((4, 4, 4), (1, 1, 1), 1, 0, 1, 3, 1, 1, False),  # depthwise 1x1x1
    ((3, 4, 5), (3, 4, 5), 1, 0, 1, 1, 2, 3, True),  # kernel the size of the input: a 1x1x1 output
    ((2, 3, 3), (3, 2, 2), 3, 2, 1, 2, 1, 2, True),  # padding wider than the input, stride 3
]


def case(rank, entry, dtype, seed):
    size, kernel, stride, padding, dilation, groups, cg, og, bias = entry
    rng = np.random.default_rng(seed)
    n = 2
    x = rng.standard_normal((n, groups * cg) + size).astype(dtype)
    w = rng.standard_normal((groups * og, cg) + kernel).astype(dtype)
    b = rng.standard_normal(groups * og).astype(dtype) if bias else None
    cfg = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    torch_cfg = {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    z = OPS[rank][0](x, w, b, **cfg)
    g = rng.standard_normal(z.shape).astype(dtype)
    return x, w, b, g, cfg, torch_cfg, z


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "rank, entry",
    [(1, e) for e in GRID_1D] + [(3, e) for e in GRID_3D],
    ids=[f"1d-{i}" for i in range(len(GRID_1D))] + [f"3d-{i}" for i in range(len(GRID_3D))],
)
def test_forward_and_backward_match_torch(rank, entry, dtype):
    x, w, b, g, cfg, torch_cfg, z = case(rank, entry, dtype, seed=rank * 100 + len(entry[0]))
    copies = [None if a is None else a.copy() for a in (x, w, b, g)]
    z_t, gx_t, gw_t, gb_t = torch_reference(rank, x, w, b, g, torch_cfg)
    assert_close(z, z_t, dtype, "forward")
    for label, backward in (("fast", OPS[rank][1]), ("derivation", OPS[rank][2])):
        gx, gw, gb = backward(g, x, w, b, **cfg)
        assert_close(gx, gx_t, dtype, f"{label} grad_x")
        assert_close(gw, gw_t, dtype, f"{label} grad_weight")
        if b is None:
            assert gb is None
        else:
            assert_close(gb, gb_t, dtype, f"{label} grad_bias")
        for a, before in zip((x, w, b, g), copies):  # inputs never modified
            if a is not None:
                np.testing.assert_array_equal(a, before)


def test_int_and_tuple_configuration_agree():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 5, 6, 7)), rng.standard_normal((2, 1, 2, 2, 2))
    cfg = dict(stride=2, padding=1, dilation=2, groups=2)
    tup = dict(stride=(2, 2, 2), padding=[1, 1, 1], dilation=(np.int64(2),) * 3, groups=2)
    np.testing.assert_array_equal(refimpl.conv3d(x, w, **cfg), refimpl.conv3d(x, w, **tup))
    x1, w1 = x[:, :, 0, 0], w[:, :, 0, 0]
    np.testing.assert_array_equal(refimpl.conv1d(x1, w1, stride=3, groups=2), refimpl.conv1d(x1, w1, stride=(3,), groups=2))


# ----------------------------------------------------------------------------- the core at rank 2


def random_2d_config(rng):
    while True:
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, og = (int(v) for v in rng.integers(1, 4, size=2))
        k = tuple(int(v) for v in rng.integers(1, 5, size=2))
        s = tuple(int(v) for v in rng.integers(1, 4, size=2))
        d = tuple(int(v) for v in rng.integers(1, 3, size=2))
        p = tuple(int(v) for v in rng.integers(0, 4, size=2))
        size = tuple(int(v) for v in rng.integers(1, 13, size=2))
        if all(size[a] + 2 * p[a] - d[a] * (k[a] - 1) >= 1 for a in (0, 1)):
            shapes = (int(rng.integers(1, 4)), groups * cg) + size, (groups * og, cg) + k
            return shapes, dict(stride=s, padding=p, dilation=d, groups=groups)


@pytest.mark.parametrize("seed", range(3))
def test_generic_core_at_rank_2_equals_conv2d(seed):
    """``correlate_taps`` and ``backward_taps`` (the rank-generic evaluation, what conv3d runs)
    at rank 2 equal today's conv2d (``correlate2d``, the row-phase backward) within 1e-12."""
    rng = np.random.default_rng(seed)
    for _ in range(25):
        (xs, ws), cfg = random_2d_config(rng)
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        xp = pad(x, cfg["padding"])
        kw = dict(stride=cfg["stride"], dilation=cfg["dilation"], groups=cfg["groups"])
        z = correlate2d(xp, w, **kw)
        assert_close(correlate_taps(xp, w, **kw), z, np.float64, f"forward {xs} {ws} {cfg}")
        np.testing.assert_array_equal(correlate(xp, w, **kw), z)  # rank 2 dispatches to correlate2d
        np.testing.assert_array_equal(refimpl.conv2d(x, w, **cfg), z)
        g = rng.standard_normal(z.shape)
        c = convolution.conv2d_config(x, w, None, **cfg)
        want = refimpl.conv2d_backward(g, x, w, **cfg)
        got = fast.backward_taps(g, x, w, c)
        assert_close(got[0], want[0], np.float64, f"grad_x {xs} {ws} {cfg}")
        assert_close(got[1], want[1], np.float64, f"grad_weight {xs} {ws} {cfg}")


@pytest.mark.parametrize("seed", range(2))
def test_rank_1_lifted_to_rank_2_equals_the_generic_core(seed):
    """conv1d runs the rank-2 evaluation with a unit first axis; the generic one agrees with it."""
    rng = np.random.default_rng(10 + seed)
    for _ in range(20):
        (xs, ws), cfg = random_2d_config(rng)
        x, w = rng.standard_normal(xs)[:, :, 0], rng.standard_normal(ws)[:, :, 0]
        cfg = {k: (v[1] if isinstance(v, tuple) else v) for k, v in cfg.items()}
        if x.shape[-1] + 2 * cfg["padding"] - cfg["dilation"] * (w.shape[-1] - 1) < 1:
            continue
        xp = pad(x, (cfg["padding"],))
        kw = dict(stride=(cfg["stride"],), dilation=(cfg["dilation"],), groups=cfg["groups"])
        z = correlate(xp, w, **kw)
        assert_close(correlate_taps(xp, w, **kw), z, np.float64)
        g = rng.standard_normal(z.shape)
        c = convolution.conv1d_config(x, w, None, **cfg)
        want = refimpl.conv1d_backward(g, x, w, **cfg)
        got = fast.backward_taps(g, x, w, c)
        assert_close(got[0], want[0], np.float64)
        assert_close(got[1], want[1], np.float64)


def test_correlate_taps_matches_its_formula_in_3d():
    rng = np.random.default_rng(3)
    for groups, size, k, s, d in [(1, (5, 6, 7), (2, 3, 2), (1, 2, 3), (2, 1, 1)), (2, (3, 3, 4), (3, 3, 4), (1, 1, 1), (1, 1, 1))]:
        x = rng.standard_normal((2, 2 * groups) + size)
        w = rng.standard_normal((3 * groups, 2) + k)
        out = correlate(x, w, stride=s, dilation=d, groups=groups)
        want = np.zeros_like(out)
        for o in range(w.shape[0]):
            grp = o // 3
            for t in np.ndindex(*k):
                reads = tuple(slice(t[a] * d[a], t[a] * d[a] + s[a] * (out.shape[2 + a] - 1) + 1, s[a]) for a in range(3))
                want[:, o] += np.einsum("nc...,c->n...", x[(slice(None), slice(2 * grp, 2 * grp + 2)) + reads], w[(o, slice(None)) + t])
        assert_close(out, want, np.float64)


# ----------------------------------------------------------------------------- named steps in N-d


def test_named_steps_in_1d_and_3d():
    a = np.arange(1.0, 4.0).reshape(1, 1, 3)
    np.testing.assert_array_equal(dilate(a, (2,))[0, 0], [1, 0, 2, 0, 3])
    assert dilate(a, (2,), size=(7,)).shape == (1, 1, 7)
    np.testing.assert_array_equal(pad(a, (1,))[0, 0], [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(crop(pad(a, (2,)), (2,)), a)
    np.testing.assert_array_equal(flip(a)[0, 0], [3, 2, 1])
    b = np.arange(8.0).reshape(1, 1, 2, 2, 2)
    d = dilate(b, (2, 1, 3))
    assert d.shape == (1, 1, 3, 2, 4)
    np.testing.assert_array_equal(d[:, :, ::2, :, ::3], b)
    assert d.sum() == b.sum()
    np.testing.assert_array_equal(crop(pad(b, (1, 0, 2)), (1, 0, 2)), b)
    assert pad(b, (1, 0, 2)).shape == (1, 1, 4, 2, 6)
    np.testing.assert_array_equal(flip(b)[0, 0], b[0, 0, ::-1, ::-1, ::-1])
    w = np.arange(4 * 2 * 2.0).reshape(4, 2, 2)  # groups=2: Og=2, Cg=2, k=2
    s = swap_filter_channels(w, 2)
    np.testing.assert_array_equal(s[:2, :, 1], w[:2, :, 1].T)
    np.testing.assert_array_equal(s[2:, :, 0], w[2:, :, 0].T)


# ----------------------------------------------------------------------------- validation, dtypes, non-finite

X1, W1 = np.zeros((1, 4, 8)), np.zeros((2, 2, 3))
X3, W3 = np.zeros((1, 4, 4, 4, 4)), np.zeros((2, 2, 3, 3, 3))

BAD = [
    (lambda: refimpl.conv1d(X3, W1), ValueError, "x must be 3-dimensional"),
    (lambda: refimpl.conv3d(X1, W3), ValueError, "x must be 5-dimensional"),
    (lambda: refimpl.conv3d(X3, np.zeros((2, 2, 3, 3))), ValueError, "weight must be 5-dimensional"),
    (lambda: refimpl.conv1d(X1, W1, groups=2, stride=(1, 1)), ValueError, r"stride must be an int or an \(l,\) 1-tuple"),
    (lambda: refimpl.conv3d(X3, W3, padding=(1, 1)), ValueError, r"padding must be an int or an \(d, h, w\) triple"),
    (lambda: refimpl.conv3d(X3, W3, stride=(1, 0, 1)), ValueError, "stride must be >= 1"),
    (lambda: refimpl.conv1d(X1, W1, groups=2, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: refimpl.conv1d(X1, W1, groups=2, dilation=True), TypeError, "dilation must be an int"),
    (lambda: refimpl.conv3d(X3, W3, stride=1.0), TypeError, "stride must be an int"),
    (lambda: refimpl.conv3d(X3, W3, groups=3), ValueError, "groups=3 must divide"),
    (lambda: refimpl.conv3d(X3, W3), ValueError, r"weight.shape\[1\] \* groups must equal"),
    (lambda: refimpl.conv1d(X1, W1, groups=2.0), TypeError, "groups must be an int"),
    (lambda: refimpl.conv1d(X1, np.zeros((2, 2, 9)), groups=2), ValueError, "conv1d: output size would be 0"),
    (lambda: refimpl.conv3d(X3, np.zeros((2, 4, 3, 5, 3))), ValueError, "conv3d: output size would be 2x0x2"),
    (lambda: refimpl.conv1d(X1, W1.astype(np.float32), groups=2), TypeError, "share one dtype"),
    (lambda: refimpl.conv1d(X1.astype(int), W1, groups=2), TypeError, "x must have dtype float32 or float64"),
    (lambda: refimpl.conv1d(X1, W1, np.zeros(3), groups=2), ValueError, r"bias must have shape \(C_out,\)"),
    (lambda: refimpl.conv1d_backward(np.zeros((1, 2, 5)), X1, W1, groups=2), ValueError, "grad_output must have the forward output's shape"),
    (lambda: refimpl.conv3d_backward(np.zeros((1, 2, 2, 2, 2), np.float32), X3, np.zeros((2, 4, 3, 3, 3))), TypeError, "grad_output must have the inputs' dtype"),
    (lambda: convolution.conv3d_backward(np.zeros((1, 2, 2, 2)), X3, np.zeros((2, 4, 3, 3, 3))), ValueError, "grad_output must have"),
    (lambda: refimpl.conv3d([[1.0]], W3), TypeError, "x must be a numpy.ndarray"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[m for _, _, m in BAD])
def test_bad_arguments_raise_naming_them(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("rank", [1, 3])
def test_float32_stays_float32(rank):
    rng = np.random.default_rng(rank)
    size = (9,) if rank == 1 else (4, 5, 3)
    x = rng.standard_normal((2, 2) + size).astype(np.float32)
    w = rng.standard_normal((3, 2) + (2,) * rank).astype(np.float32)
    b = np.ones(3, np.float32)
    z = OPS[rank][0](x, w, b, padding=1)
    assert z.dtype == np.float32
    for backward in OPS[rank][1:3]:
        assert all(a.dtype == np.float32 for a in backward(np.ones_like(z), x, w, b, padding=1))


def _special_positions(a):
    return [np.argwhere(m(a)).tolist() for m in (np.isnan, np.isposinf, np.isneginf)]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN inputs, on purpose
@pytest.mark.parametrize("where", ["x", "weight", "grad_output"])
@pytest.mark.parametrize("rank", [1, 3])
def test_non_finite_values_stay_where_torch_puts_them(rank, where):
    """NaN and inf reach exactly the elements they touch in torch (float64), forward and both backwards."""
    rng = np.random.default_rng(7)
    size, k = ((11,), (3,)) if rank == 1 else ((5, 6, 5), (2, 3, 2))
    cfg = dict(stride=2, padding=1, dilation=1, groups=2)
    x = rng.standard_normal((2, 4) + size)
    w = rng.standard_normal((4, 2) + k)
    b = rng.standard_normal(4)
    g = rng.standard_normal(OPS[rank][0](x, w, b, **cfg).shape)
    arrays = dict(x=x, weight=w, grad_output=g)
    target = arrays[where]
    target[(0, 1) + tuple(n // 2 for n in target.shape[2:])] = np.nan
    target[(1, 0) + (0,) * rank] = np.inf
    target[(1, 1) + tuple(n - 1 for n in target.shape[2:])] = -np.inf
    torch_cfg = {k_: (v if k_ == "groups" else (v,) * rank) for k_, v in cfg.items()}
    want = torch_reference(rank, x, w, b, g, torch_cfg)
    got_z = OPS[rank][0](x, w, b, **cfg)
    assert _special_positions(got_z) == _special_positions(want[0])
    for backward in OPS[rank][1:3]:
        got = backward(g, x, w, b, **cfg)
        for label, a, e in zip(("grad_x", "grad_weight"), got[:2], want[1:3]):
            assert _special_positions(a) == _special_positions(e), (backward.__module__, label)
            finite = np.isfinite(e)
            np.testing.assert_allclose(a[finite], e[finite], rtol=1e-10, atol=1e-10)
