"""refimpl.transposed (conv_transpose2d) and refimpl.adaptive_pooling (adaptive_avg_pool2d), issue 12.

Evidence:
  * torch autograd over a grid of configurations, float64 (tight) and float32 (looser);
  * the derivation's symmetry: conv_transpose2d's forward is conv2d's grad_x rule, its
    grad_x is conv2d's forward, its grad_weight is conv2d's grad_weight rule with x and
    the output gradient exchanged; and the adjoint identity <T x, y> = <x, conv y>;
  * the adaptive pool's backward is the transpose of its forward (adjoint identity);
  * NaN and inf positions as torch's;
  * argument validation, no in-place modification, dtype preserved.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import refimpl
from refimpl import (
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, conv2d, conv_transpose2d, conv_transpose2d_backward,
)

DTYPES = [np.float64, np.float32]


def tolerance(dtype, scale: float = 1.0) -> dict:
    if np.dtype(dtype) == np.float64:
        return dict(rtol=1e-10, atol=1e-11 * scale)
    return dict(rtol=2e-5, atol=2e-5 * scale)


def _rng(*key) -> np.random.Generator:
    """A generator seeded from ``key`` the same way in every run (str hashes are salted per process)."""
    return np.random.default_rng([sum((i + 1) * ord(ch) for i, ch in enumerate(str(k))) for k in key])


# ----------------------------------------------------------------------------- conv_transpose2d: configurations


def _configs():
    """(stride, padding, dilation, output_padding, groups, bias) over the grid; output_padding < max(s, d)."""
    out = []
    for s, d, p, groups in itertools.product((1, 2, 3), (1, 2), (0, 2), (1, 2)):
        for op in range(max(s, d)):
            out.append(dict(stride=s, padding=p, dilation=d, output_padding=op, groups=groups))
    # non-square: every pair different on the two axes, op >= s on one axis (allowed since d > s)
    out.append(dict(stride=(2, 1), padding=(1, 0), dilation=(1, 3), output_padding=(1, 2), groups=1))
    out.append(dict(stride=(1, 3), padding=(0, 1), dilation=(2, 1), output_padding=(1, 2), groups=2))
    out.append(dict(stride=(3, 2), padding=(2, 1), dilation=(2, 3), output_padding=(2, 0), groups=4))
    return out


CONFIGS = _configs()


def _config_id(cfg) -> str:
    return "s{stride}-p{padding}-d{dilation}-op{output_padding}-g{groups}".format(**cfg).replace(" ", "")


def _operands(cfg, dtype, bias=True, key=()):
    rng = _rng("ct", _config_id(cfg), np.dtype(dtype).name, bias, *key)
    g = cfg["groups"]
    x = rng.standard_normal((2, 4, 5, 4)).astype(dtype)
    w = rng.standard_normal((4, 6 // g if g < 4 else 1, 3, 2)).astype(dtype)
    b = rng.standard_normal(w.shape[1] * g).astype(dtype) if bias else None
    return x, w, b


def _torch_conv_transpose(x, w, b, cfg, grad_output=None):
    ts = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    z = F.conv_transpose2d(ts[0], ts[1], ts[2], **cfg)
    if grad_output is None:
        return z.detach().numpy()
    wrt = [t for t in ts if t is not None]
    grads = torch.autograd.grad(z, wrt, torch.tensor(grad_output))
    return [g.numpy() for g in grads] + ([None] if b is None else [])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=_config_id)
def test_conv_transpose2d_matches_torch(cfg, dtype, bias):
    x, w, b = _operands(cfg, dtype, bias)
    z = conv_transpose2d(x, w, b, **cfg)
    z_t = _torch_conv_transpose(x, w, b, cfg)
    assert z.dtype == np.dtype(dtype) and z.shape == z_t.shape
    np.testing.assert_allclose(z, z_t, **tolerance(dtype, scale=10))

    g = _rng("g", _config_id(cfg)).standard_normal(z.shape).astype(dtype)
    ours = conv_transpose2d_backward(g, x, w, b, **cfg)
    theirs = _torch_conv_transpose(x, w, b, cfg, grad_output=g)
    for name, a, t in zip(("grad_x", "grad_weight", "grad_bias"), ours, theirs):
        if t is None:
            assert a is None, name
            continue
        assert type(a) is np.ndarray and a.dtype == np.dtype(dtype) and a.shape == t.shape, name
        np.testing.assert_allclose(a, t, **tolerance(dtype, scale=float(np.abs(t).max()) + 1), err_msg=name)


def test_conv_transpose2d_output_size_is_torchs_formula():
    x = np.zeros((1, 2, 5, 7))
    w = np.zeros((2, 3, 4, 3))
    z = conv_transpose2d(x, w, stride=(2, 3), padding=(1, 2), output_padding=(1, 2), dilation=(1, 2))
    assert z.shape == (1, 3, (5 - 1) * 2 - 2 + 1 * 3 + 1 + 1, (7 - 1) * 3 - 4 + 2 * 2 + 2 + 1)


# ----------------------------------------------------------------------------- the derivation's symmetry

SYMMETRY = [c for c in CONFIGS if c["groups"] > 1 or c["stride"] == 2] + [CONFIGS[0]]


def _pad_rows(x, cfg):
    """x with the op // s zero rows/columns of the adjoint conv2d's output (only when op >= s)."""
    s = refimpl.arguments.as_pair(cfg["stride"], "stride", minimum=1)
    op = refimpl.arguments.as_pair(cfg["output_padding"], "output_padding", minimum=0)
    return np.pad(x, [(0, 0), (0, 0), (0, op[0] // s[0]), (0, op[1] // s[1])])


def _conv_cfg(cfg):
    return {k: cfg[k] for k in ("stride", "padding", "dilation", "groups")}


@pytest.mark.parametrize("cfg", SYMMETRY, ids=_config_id)
def test_forward_is_conv2d_grad_x_rule(cfg):
    """conv_transpose2d(x) = conv2d's grad_x for output gradient x, on an input of the transposed output's size."""
    x, w, _ = _operands(cfg, np.float64, bias=False)
    z = conv_transpose2d(x, w, **cfg)
    conv_input = np.zeros((x.shape[0], w.shape[1] * cfg["groups"]) + z.shape[2:])  # the value of x is irrelevant to grad_x
    for rule in (refimpl.conv2d_backward, refimpl.conv2d_backward_by_derivation):
        grad_x, _, _ = rule(_pad_rows(x, cfg), conv_input, w, **_conv_cfg(cfg))
        np.testing.assert_allclose(z, grad_x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", SYMMETRY, ids=_config_id)
def test_backward_is_conv2d_forward_and_conv2d_grad_weight_rule(cfg):
    """grad_x = conv2d(G, W) (cropped to x's size); grad_weight = conv2d's grad_weight with x and G exchanged."""
    x, w, b = _operands(cfg, np.float64)
    z = conv_transpose2d(x, w, b, **cfg)
    g = _rng("sym", _config_id(cfg)).standard_normal(z.shape)
    grad_x, grad_w, grad_b = conv_transpose2d_backward(g, x, w, b, **cfg)

    np.testing.assert_allclose(grad_x, conv2d(g, w, **_conv_cfg(cfg))[:, :, : x.shape[2], : x.shape[3]], rtol=1e-12, atol=1e-12)
    for rule in (refimpl.conv2d_backward, refimpl.conv2d_backward_by_derivation):
        # conv2d's input is G, its output gradient is x: the roles exchanged
        _, conv_grad_w, _ = rule(_pad_rows(x, cfg), g, w, **_conv_cfg(cfg))
        np.testing.assert_allclose(grad_w, conv_grad_w, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_b, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_config_id)
def test_adjoint_identity(cfg):
    """<conv_transpose2d(x), y> = <x, conv2d(y)> (bias None; conv2d's output cropped to x's size)."""
    x, w, _ = _operands(cfg, np.float64, bias=False)
    z = conv_transpose2d(x, w, **cfg)
    y = _rng("adj", _config_id(cfg)).standard_normal(z.shape)
    lhs = float(np.vdot(z, y))
    rhs = float(np.vdot(x, conv2d(y, w, **_conv_cfg(cfg))[:, :, : x.shape[2], : x.shape[3]]))
    assert lhs == pytest.approx(rhs, rel=1e-11, abs=1e-11 * (np.abs(z).sum() * np.abs(y).max()))


# ----------------------------------------------------------------------------- adaptive_avg_pool2d

POOL_CASES = [
    # (input shape, output_size)
    ((2, 3, 8, 6), (4, 3)),  # dividing: tiling bins
    ((2, 3, 8, 6), (8, 6)),  # output = input: the identity
    ((2, 3, 8, 6), (1, 1)),  # global average
    ((2, 3, 7, 10), (3, 4)),  # not dividing: overlapping bins
    ((2, 3, 7, 10), (5, 7)),
    ((2, 3, 5, 4), (7, 9)),  # larger than the input: repeated elements
    ((1, 2, 30, 30), (7, 7)),
    ((3, 7, 5), (2, 3)),  # CHW
    ((2, 3, 1, 9), (1, 4)),
    ((0, 3, 6, 6), (4, 4)),  # empty batch, as torch allows
    ((2, 3, 9, 9), 4),  # an int output_size
    ((2, 3, 9, 7), (None, 3)),  # None keeps the axis
]


def _pool_id(case) -> str:
    shape, size = case
    return "x".join(map(str, shape)) + "-to-" + str(size).replace(" ", "")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_adaptive_avg_pool2d_matches_torch(case, dtype):
    shape, size = case
    rng = _rng("ap", _pool_id(case), np.dtype(dtype).name)
    x = rng.standard_normal(shape).astype(dtype)
    y = adaptive_avg_pool2d(x, output_size=size)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.adaptive_avg_pool2d(xt, size)
    assert type(y) is np.ndarray and y.dtype == np.dtype(dtype) and y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), **tolerance(dtype))
    g = rng.standard_normal(y.shape).astype(dtype)
    (gx_t,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    gx = adaptive_avg_pool2d_backward(g, x, output_size=size)
    assert type(gx) is np.ndarray and gx.dtype == np.dtype(dtype) and gx.shape == x.shape
    np.testing.assert_allclose(gx, gx_t.numpy(), **tolerance(dtype))


def test_adaptive_bins_are_torchs_on_paper():
    """H = 5 -> 3: bins [0, 2), [1, 4), [3, 5) (start floor(i*5/3), end ceil((i+1)*5/3)): overlapping."""
    x = np.arange(5.0)[None, None, :, None]
    y = adaptive_avg_pool2d(x, output_size=(3, 1))
    np.testing.assert_allclose(y.ravel(), [(0 + 1) / 2, (1 + 2 + 3) / 3, (3 + 4) / 2])
    g = np.ones((1, 1, 3, 1))
    # element 1 is in bins 0 and 1, element 3 in bins 1 and 2: overlapping bins add
    np.testing.assert_allclose(adaptive_avg_pool2d_backward(g, x, output_size=(3, 1)).ravel(), [1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1 / 2, 1 / 2])


@pytest.mark.parametrize("case", POOL_CASES[:8], ids=_pool_id)
def test_adaptive_backward_is_the_transpose(case):
    """<pool(x), g> = <x, pool_backward(g)>: the backward is the forward's transpose."""
    shape, size = case
    rng = _rng("apadj", _pool_id(case))
    x = rng.standard_normal(shape)
    y = adaptive_avg_pool2d(x, output_size=size)
    g = rng.standard_normal(y.shape)
    assert float(np.vdot(y, g)) == pytest.approx(float(np.vdot(x, adaptive_avg_pool2d_backward(g, x, output_size=size))), rel=1e-12)


# ----------------------------------------------------------------------------- NaN and inf, as torch


def _same_positions(got, want, what):
    for mask in (np.isnan, np.isposinf, np.isneginf):
        assert np.array_equal(mask(got), mask(want)), f"{what}: {mask.__name__} positions differ from torch"
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-10, atol=1e-10, err_msg=what)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[-1], CONFIGS[-3]] + [c for c in CONFIGS if c["stride"] == 2][:3], ids=_config_id)
@pytest.mark.parametrize("where", ["x", "weight", "grad_output"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_conv_transpose2d_nonfinite_as_torch(cfg, where):
    x, w, b = _operands(cfg, np.float64)
    z_shape = conv_transpose2d(x, w, b, **cfg).shape
    g = _rng("nf", _config_id(cfg)).standard_normal(z_shape)
    target = {"x": x, "weight": w, "grad_output": g}[where]
    flat = target.reshape(-1)
    flat[0], flat[flat.size // 2], flat[-1] = np.nan, np.inf, -np.inf
    _same_positions(conv_transpose2d(x, w, b, **cfg), _torch_conv_transpose(x, w, b, cfg), f"forward, special in {where}")
    ours = conv_transpose2d_backward(g, x, w, b, **cfg)
    theirs = _torch_conv_transpose(x, w, b, cfg, grad_output=g)
    for name, a, t in zip(("grad_x", "grad_weight", "grad_bias"), ours, theirs):
        _same_positions(a, t, f"{name}, special in {where}")


@pytest.mark.parametrize("case", [POOL_CASES[1], POOL_CASES[2], POOL_CASES[3], POOL_CASES[5]], ids=_pool_id)
def test_adaptive_nonfinite_as_torch(case):
    shape, size = case
    rng = _rng("apnf", _pool_id(case))
    x = rng.standard_normal(shape)
    x[0, 0, 0, 0], x[0, 1, 2, 2], x[0, 1, 3, 2], x[1, 2, -1, -1] = np.inf, np.inf, -np.inf, np.nan
    y = adaptive_avg_pool2d(x, output_size=size)
    g = rng.standard_normal(y.shape)
    g[0, 0, 0, 0], g[1, 1, -1, -1], g[1, 2, 0, -1] = np.nan, np.inf, -np.inf
    xt = torch.tensor(x, requires_grad=True)
    yt = F.adaptive_avg_pool2d(xt, size)
    (gx_t,) = torch.autograd.grad(yt, xt, torch.tensor(g))
    _same_positions(y, yt.detach().numpy(), "forward")
    _same_positions(adaptive_avg_pool2d_backward(g, x, output_size=size), gx_t.numpy(), "backward")


# ----------------------------------------------------------------------------- validation, mutation, dtype

X, W = np.zeros((1, 4, 5, 5)), np.zeros((4, 3, 3, 3))

BAD_CONV_TRANSPOSE = [
    (lambda: conv_transpose2d(X.astype(np.float32), W), TypeError, "dtype"),
    (lambda: conv_transpose2d(X.astype(int), W.astype(int)), TypeError, "x must have dtype"),
    (lambda: conv_transpose2d(X[0], W), ValueError, "x must be 4-dimensional"),
    (lambda: conv_transpose2d(X, W[:3]), ValueError, "weight.shape\\[0\\] must equal the channels of x"),
    (lambda: conv_transpose2d(X, W, groups=3), ValueError, "groups=3 must divide"),
    (lambda: conv_transpose2d(X, W, groups=0), ValueError, "groups must be >= 1"),
    (lambda: conv_transpose2d(X, W, np.zeros(4)), ValueError, "bias must have shape"),
    (lambda: conv_transpose2d(X, W, stride=2, output_padding=2), ValueError, "output_padding must be smaller than max"),
    (lambda: conv_transpose2d(X, W, stride=1, output_padding=1), ValueError, "output_padding must be smaller"),
    (lambda: conv_transpose2d(X, W, output_padding=-1), ValueError, "output_padding must be >= 0"),
    (lambda: conv_transpose2d(X, W, stride=0), ValueError, "stride must be >= 1"),
    (lambda: conv_transpose2d(X, W, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: conv_transpose2d(X, W, dilation=(1, 2, 3)), ValueError, "dilation must be an int or an"),
    (lambda: conv_transpose2d(X, W, stride=1.5), TypeError, "stride must be an int"),
    (lambda: conv_transpose2d(X, W, padding=4), ValueError, "output size would be"),
    (lambda: conv_transpose2d_backward(np.zeros((1, 3, 6, 6)), X, W), ValueError, "grad_output must have the forward output's shape"),
    (lambda: conv_transpose2d_backward(np.zeros((1, 3, 7, 7), np.float32), X, W), TypeError, "grad_output must have the inputs' dtype"),
]

BAD_ADAPTIVE = [
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3)), output_size=1), ValueError, "x must be 3 or 4-dimensional"),
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3, 0, 4)), output_size=1), ValueError, "non-empty H and W"),
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3, 4, 4), int), output_size=1), TypeError, "x must have dtype"),
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3, 4, 4)), output_size=0), ValueError, "output_size must be >= 1"),
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3, 4, 4)), output_size=(1, 2, 3)), ValueError, "output_size must be an int or an"),
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3, 4, 4)), output_size=(2.0, 2)), TypeError, "output_size must be an int or an"),
    (lambda: adaptive_avg_pool2d(np.zeros((2, 3, 4, 4)), output_size=True), TypeError, "output_size must be an int"),
    (lambda: adaptive_avg_pool2d_backward(np.zeros((2, 3, 2, 3)), np.zeros((2, 3, 4, 4)), output_size=2), ValueError, "grad_output must have the forward output's shape"),
]


@pytest.mark.parametrize("call, error, match", BAD_CONV_TRANSPOSE + BAD_ADAPTIVE)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
def test_inputs_not_modified_and_dtype_kept(dtype):
    cfg = CONFIGS[-1]
    x, w, b = _operands(cfg, dtype)
    z = conv_transpose2d(x, w, b, **cfg)
    g = np.ones_like(z)
    xp = x[:, :, ::-1]  # a non-contiguous view too
    before = [a.copy() for a in (x, w, b, g)]
    results = [conv_transpose2d(xp, w, b, **cfg), *conv_transpose2d_backward(g, xp, w, b, **cfg)]
    pool_x = x[:, :, :, ::-1]
    y = adaptive_avg_pool2d(pool_x, output_size=(3, 2))
    results += [y, adaptive_avg_pool2d_backward(np.ones_like(y), pool_x, output_size=(3, 2))]
    for a, a0 in zip((x, w, b, g), before):
        np.testing.assert_array_equal(a, a0)
    for r in results:
        assert type(r) is np.ndarray and r.dtype == np.dtype(dtype)
