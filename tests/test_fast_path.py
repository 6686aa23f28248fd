"""The fast path agrees with the readable rule.

``refimpl.convolution.conv2d_backward`` is the derivation (stride-s backward =
stride-1 backward of the dilated output gradient); ``refimpl.fast.conv2d_backward``
computes the same gradients as the adjoint of the forward's per-tap products.
Here they must agree to rounding on many random configurations, and validate
their arguments alike. ``correlate`` (whose body was regrouped for speed) is
checked against its docstring formula, evaluated directly.
"""

import numpy as np
import pytest

from refimpl.convolution import conv2d, conv2d_backward
from refimpl.correlation import correlate
from refimpl.fast import conv2d_backward as fast_conv2d_backward

# relative to the largest magnitude of the reference result
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def random_config(rng):
    """A random valid conv2d configuration: stride, padding, dilation, groups, non-square kernels."""
    while True:
        groups = int(rng.choice([1, 1, 2, 3]))
        cg, og = (int(v) for v in rng.integers(1, 4, size=2))
        kh, kw = (int(v) for v in rng.integers(1, 5, size=2))
        sh, sw = (int(v) for v in rng.integers(1, 4, size=2))
        dh, dw = (int(v) for v in rng.integers(1, 3, size=2))
        ph, pw = (int(v) for v in rng.integers(0, 4, size=2))
        n = int(rng.integers(1, 4))
        h, w = (int(v) for v in rng.integers(1, 13, size=2))
        if h + 2 * ph - dh * (kh - 1) >= 1 and w + 2 * pw - dw * (kw - 1) >= 1:
            cfg = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
            return (n, groups * cg, h, w), (groups * og, cg, kh, kw), cfg


def assert_close(actual, expected, dtype):
    assert actual.dtype == expected.dtype == dtype
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL[np.dtype(dtype)] * scale)


def check_agree(xs, ws, cfg, dtype, rng, bias=True):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    g = rng.standard_normal(conv2d(x, w, b, **cfg).shape).astype(dtype)
    copies = [a.copy() for a in (x, w, g)]
    want = conv2d_backward(g, x, w, b, **cfg)
    got = fast_conv2d_backward(g, x, w, b, **cfg)
    for a, before in zip((x, w, g), copies):
        np.testing.assert_array_equal(a, before)  # inputs never modified
    for name, a, e in zip(("grad_x", "grad_weight"), got[:2], want[:2]):
        try:
            assert_close(a, e, np.dtype(dtype))
        except AssertionError as exc:
            raise AssertionError(f"{name} differs for x{xs} w{ws} {cfg} {np.dtype(dtype)}") from exc
    if bias:
        assert_close(got[2], want[2], np.dtype(dtype))
    else:
        assert got[2] is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(6))
def test_fast_path_agrees_with_derivation_on_random_configs(seed, dtype):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        xs, ws, cfg = random_config(rng)
        check_agree(xs, ws, cfg, dtype, rng, bias=bool(rng.integers(2)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,ws,cfg", [
    ((1, 1, 6, 6), (1, 1, 3, 3), dict()),  # the worked example
    ((1, 1, 8, 8), (1, 1, 3, 3), dict(stride=3)),  # rows and columns 6, 7 unused at the end
    ((2, 3, 11, 7), (4, 3, 2, 3), dict(stride=(3, 2), padding=(0, 1))),  # unused rows, non-square kernel
    ((2, 2, 5, 5), (2, 2, 1, 1), dict(stride=3, padding=4)),  # whole row phases of padding only
    ((1, 2, 2, 2), (3, 2, 4, 4), dict(padding=1)),  # kernel wider than the unpadded input
    ((2, 6, 9, 9), (6, 1, 3, 3), dict(stride=2, padding=1, groups=6)),  # depthwise
    ((2, 4, 9, 10), (6, 2, 3, 2), dict(stride=(1, 2), padding=2, dilation=(2, 3), groups=2)),
    ((3, 5, 16, 16), (7, 5, 5, 5), dict(stride=2, padding=2)),
    ((1, 9, 32, 32), (3, 9, 5, 5), dict(stride=3, padding=1)),  # pytorch #25101
    ((5, 8, 12, 12), (8, 8, 3, 3), dict(padding=1)),  # several chunks of images
    ((2, 32, 9, 8), (5, 32, 3, 2), dict(stride=(2, 1), padding=1)),  # many channels (correlate's row-stacked loop)
    ((2, 64, 7, 7), (4, 16, 3, 3), dict(padding=1, dilation=(2, 1), groups=4)),
])
def test_fast_path_agrees_on_named_configs(xs, ws, cfg, dtype):
    check_agree(xs, ws, cfg, dtype, np.random.default_rng(3))


@pytest.mark.parametrize("chunk_bytes", [1, 2000, 20000])
def test_fast_path_over_several_chunks_of_images(monkeypatch, chunk_bytes):
    """With a small chunk budget the images are done one or a few at a time, the last chunk partial."""
    import refimpl.fast as fast

    monkeypatch.setattr(fast, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(fast, "MIN_WIDTH", 1)
    rng = np.random.default_rng(chunk_bytes)
    for _ in range(12):
        xs, ws, cfg = random_config(rng)
        check_agree((int(rng.integers(3, 6)),) + xs[1:], ws, cfg, np.float64, rng)


def test_fast_path_accepts_non_contiguous_inputs():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 10, 4, 9)).transpose(0, 2, 3, 1)[:, :, ::2, :]  # (3, 4, 5, 5), strided
    w = np.asfortranarray(rng.standard_normal((6, 2, 3, 3)))
    cfg = dict(stride=2, padding=1, groups=2)
    g = rng.standard_normal(conv2d(x, w, **cfg).shape)[..., ::-1]
    want = conv2d_backward(g, x, w, **cfg)
    got = fast_conv2d_backward(g, x, w, **cfg)
    for a, e in zip(got[:2], want[:2]):
        assert_close(a, e, np.dtype(np.float64))


@pytest.mark.parametrize("call", [
    lambda f: f(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))),  # wrong grad shape
    lambda f: f(np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))),
    lambda f: f(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), stride=0),
    lambda f: f(np.zeros((1, 2, 2, 2)), np.zeros((1, 3, 4, 4)), np.zeros((2, 1, 3, 3)), groups=2),
    lambda f: f(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), np.zeros(2)),
    lambda f: f(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3))),  # kernel too large
    lambda f: f([[0.0]], np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))),
])
def test_fast_path_validates_like_the_derivation(call):
    errors = []
    for f in (conv2d_backward, fast_conv2d_backward):
        with pytest.raises((TypeError, ValueError)) as info:
            call(f)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


def correlate_by_formula(x, weight, stride, dilation, groups):
    """The docstring of ``correlate``, term by term (small sizes only)."""
    n, c, h, w = x.shape
    out_ch, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    og = out_ch // groups
    out = np.zeros((n, out_ch, ho, wo))
    for o in range(out_ch):
        g = o // og
        for i in range(kh):
            for j in range(kw):
                tap = x[:, g * cg : (g + 1) * cg, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
                out[:, o] += np.einsum("nchw,c->nhw", tap.astype(np.float64), weight[o, :, i, j].astype(np.float64))
    return out


@pytest.mark.parametrize("grow", [0, 16])
@pytest.mark.parametrize("channels", [1, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correlate_matches_its_formula(dtype, channels, grow):
    """Random configurations with few channels and with many, on small images and on images ``grow``
    larger (correlate picks its loop by size; float32 images of >= 256 outputs take the runs path)."""
    rng = np.random.default_rng(21)
    for _ in range(60 // channels + 3):
        xs, ws, cfg = random_config(rng)
        xs = xs[:1] + (xs[1] * channels, xs[2] + grow, xs[3] + grow)
        ws = ws[:1] + (ws[1] * channels,) + ws[2:]
        h = xs[2] + 2 * cfg["padding"][0]
        w = xs[3] + 2 * cfg["padding"][1]
        x = rng.standard_normal((xs[0], xs[1], h, w)).astype(dtype)  # correlate takes the padded input
        wt = rng.standard_normal(ws).astype(dtype)
        got = correlate(x, wt, stride=cfg["stride"], dilation=cfg["dilation"], groups=cfg["groups"])
        want = correlate_by_formula(x, wt, cfg["stride"], cfg["dilation"], cfg["groups"]).astype(dtype)
        assert_close(got, want, np.dtype(dtype))


@pytest.mark.parametrize("xs,ws,cfg", [
    ((5, 4, 60, 60), (3, 4, 3, 3), dict()),  # float64: small strided im2col per image, chunks of 4 and 1 images
    ((5, 4, 60, 60), (3, 4, 3, 3), dict(dtype=np.float32)),  # float32, stride 1: im2col of runs, one image per chunk
    ((5, 4, 30, 30), (3, 4, 3, 3), dict(dtype=np.float32)),  # the same in chunks of 4 and 1 images
    ((9, 2, 20, 23), (3, 2, 2, 4), dict(dtype=np.float32)),  # the same with a non-square kernel, one chunk
    ((5, 4, 30, 30), (3, 4, 3, 3), dict(stride=(2, 2))),  # small strided im2col per image: several images per chunk
    ((3, 64, 70, 70), (8, 64, 3, 3), dict(stride=(2, 1))),  # large im2col per image: row-stacked, one image per chunk
    ((3, 16, 30, 30), (8, 4, 3, 3), dict(dilation=2, groups=4)),
])
def test_correlate_over_several_chunks_of_images(xs, ws, cfg):
    rng = np.random.default_rng(4)
    dtype = np.dtype(cfg.get("dtype", np.float64))
    x, w = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)
    stride, dilation = (cfg.get("stride", (1, 1)), (cfg.get("dilation", 1),) * 2)
    groups = cfg.get("groups", 1)
    got = correlate(x, w, stride=stride, dilation=dilation, groups=groups)
    assert_close(got, correlate_by_formula(x, w, stride, dilation, groups).astype(dtype), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_correlate_runs_path_keeps_what_it_drops_out(dtype):
    """Stride 1 reads each tap as a run of the flattened plane, whose columns past Wo wrap into
    the next row and are dropped: inf and NaN in the last and first columns (read only by those
    wrapped columns, by the windows at the edge, and at the plane's very end) land exactly where
    the formula puts them, and a non-contiguous x gives the same result."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 20, 18)).astype(dtype)  # 18 x 17 outputs: float32 takes the runs path
    x[0, 1, 4, -1], x[1, 0, 2, 0], x[2, 1, -1, -1] = np.inf, np.nan, -np.inf
    w = rng.standard_normal((4, 2, 3, 2)).astype(dtype)
    want = correlate_by_formula(x, w, (1, 1), (1, 1), 1).astype(dtype)
    for xv in (x, np.asfortranarray(x)):
        got = correlate(xv, w, stride=(1, 1), dilation=(1, 1), groups=1)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
        finite = np.isfinite(want)
        assert finite.sum() > 0.9 * want.size
        assert_close(np.where(finite, got, 0), np.where(finite, want, 0), np.dtype(dtype))
