"""The case strategies draw only valid cases, and reach every corner they claim to.

Validity is judged by PyTorch itself: the forward runs on the case's arrays
with the case's configuration and returns exactly ``shapes["grad_output"]``,
and the backward accepts that output gradient. Reachability is shown with
``hypothesis.find``: each corner the strategies label is found.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import NoSuchExample

from oracle import strategies as S
from oracle.case import DTYPES, Case

TORCH = {
    "conv2d": F.conv2d,
    "max_pool2d": F.max_pool2d,
    "avg_pool2d": F.avg_pool2d,
    "linear": F.linear,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "flatten": lambda x: torch.flatten(x, 1),
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
    "tanh": torch.tanh,
    "leaky_relu": F.leaky_relu,
    "gelu": F.gelu,
    "adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
    "cross_entropy": F.cross_entropy,
    "mse_loss": F.mse_loss,
    "conv1d": F.conv1d,
    "conv3d": F.conv3d,
    "conv_transpose2d": F.conv_transpose2d,
    "batch_norm": lambda x, weight, bias, *, eps: F.batch_norm(x, None, None, weight, bias, training=True, eps=eps),
    "layer_norm": lambda x, weight, bias, *, normalized_shape, eps: F.layer_norm(x, normalized_shape, weight, bias, eps),
}

CONFIG_KEYS = {
    "conv2d": {"stride", "padding", "dilation", "groups"},
    "max_pool2d": {"kernel_size", "stride", "padding", "dilation", "ceil_mode"},
    "avg_pool2d": {"kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"},
    "linear": set(),
    "relu": set(),
    "tanh": set(),
    "leaky_relu": {"negative_slope"},
    "gelu": {"approximate"},
    "adaptive_avg_pool2d": {"output_size"},
    "sigmoid": set(),
    "flatten": set(),
    "binary_cross_entropy": {"reduction"},
    "binary_cross_entropy_with_logits": {"reduction"},
    "softmax": {"dim"},
    "log_softmax": {"dim"},
    "cross_entropy": {"reduction"},
    "mse_loss": {"reduction"},
    "conv1d": {"stride", "padding", "dilation", "groups"},
    "conv3d": {"stride", "padding", "dilation", "groups"},
    "conv_transpose2d": {"stride", "padding", "output_padding", "groups", "dilation"},
    "batch_norm": {"eps"},
    "layer_norm": {"normalized_shape", "eps"},
}

#: the spatial rank of the ops whose configuration tuples are not pairs
RANK = {"conv1d": 1, "conv3d": 3}

SHAPE_KEYS = {
    "conv2d": ["x", "weight", "bias", "grad_output"],
    "linear": ["x", "weight", "bias", "grad_output"],
    "binary_cross_entropy": ["input", "target", "grad_output"],
    "binary_cross_entropy_with_logits": ["input", "target", "grad_output"],
    "cross_entropy": ["input", "target", "grad_output"],
    "mse_loss": ["input", "target", "grad_output"],
    "conv1d": ["x", "weight", "bias", "grad_output"],
    "conv3d": ["x", "weight", "bias", "grad_output"],
    "conv_transpose2d": ["x", "weight", "bias", "grad_output"],
    "batch_norm": ["x", "weight", "bias", "grad_output"],
    "layer_norm": ["x", "weight", "bias", "grad_output"],
}

FAST = settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FIND = settings(max_examples=600, deadline=None, database=None, phases=(Phase.generate,))


def _tensors(case: Case) -> dict[str, torch.Tensor | None]:
    return {k: (None if a is None else torch.from_numpy(a)) for k, a in case.arrays().items()}


def _forward(case: Case, *, requires_grad: bool = False):
    tensors = _tensors(case)
    grad_output = tensors.pop("grad_output")
    inputs = list(tensors.values())
    if requires_grad:
        for t in inputs:
            if t is not None and t.is_floating_point():  # class indices are not differentiated
                t.requires_grad_(True)
    # the declared shape: a 0-d grad_output must stay 0-d (see test_arrays_have_the_declared_shapes)
    grad_output = grad_output.reshape(case.shapes["grad_output"])
    return TORCH[case.op](*inputs, **case.config), inputs, grad_output


def _is_tuple(v, rank: int = 2) -> bool:
    return isinstance(v, tuple) and len(v) == rank and all(type(i) is int for i in v)


# --------------------------------------------------------------------------- validity


def test_cases_covers_every_op():
    assert set(S.CASES) == set(TORCH)


@pytest.mark.parametrize("op", sorted(S.CASES))
def test_torch_accepts_every_case(op):
    @FAST
    @given(S.CASES[op]())
    def check(case):
        assert case.op == op
        assert case.dtype in DTYPES
        assert 0 <= case.seed < 2**32
        assert list(case.shapes) == SHAPE_KEYS.get(op, ["x", "grad_output"])
        assert set(case.config) == CONFIG_KEYS[op]
        assert set(case.values) <= set(case.shapes) - {"grad_output"}
        for key, v in case.config.items():
            if key in ("kernel_size", "padding", "dilation", "output_padding", "output_size") or (key == "stride" and v is not None):
                assert _is_tuple(v, RANK.get(op, 2)), (key, v)
            elif key in ("ceil_mode", "count_include_pad"):
                assert type(v) is bool
            elif key == "groups":
                assert type(v) is int and v >= 1
            elif key == "divisor_override":
                assert v is None or (type(v) is int and v >= 1)
            elif key == "negative_slope":
                assert type(v) is float
            elif key == "approximate":
                assert v in ("none", "tanh")
            elif key == "eps":
                assert type(v) is float and 1e-12 * (1 - 1e-9) <= v <= 10 * (1 + 1e-9), v
            elif key == "normalized_shape":
                assert type(v) is tuple and 1 <= len(v) <= 3 and v == case.shapes["x"][len(case.shapes["x"]) - len(v):]
        out, inputs, grad_output = _forward(case, requires_grad=True)
        assert tuple(out.shape) == case.shapes["grad_output"]
        assert out.dtype == getattr(torch, case.dtype)
        out.backward(grad_output)
        for t in inputs:
            if t is not None and t.is_floating_point():
                assert t.grad is not None and t.grad.shape == t.shape
            elif t is not None:
                assert t.dtype == torch.long and t.grad is None

    check()


@pytest.mark.parametrize("op", sorted(S.CASES))
def test_arrays_have_the_declared_shapes(op):
    """``Case.arrays()`` builds every array with exactly its declared shape and the case's dtype (0-d included),
    class indices int64 whatever the case's dtype."""

    @settings(max_examples=20, deadline=None, database=None)
    @given(S.CASES[op]())
    def check(case):
        for name, a in case.arrays().items():
            shape = case.shapes[name]
            assert (a is None) == (shape is None)
            if a is not None:
                assert a.shape == shape, f"{name}: declared {shape}, built {a.shape}"
                assert a.dtype == case.dtype_of(name)
                assert a.dtype == (np.int64 if case.values.get(name) == "class_indices" else np.dtype(case.dtype))

    check()


@pytest.mark.parametrize("op", sorted(S.CASES))
def test_fixed_dtype(op):
    @settings(max_examples=5, deadline=None, database=None)
    @given(S.CASES[op]("float32"))
    def check(case):
        assert case.dtype == "float32"

    check()
    with pytest.raises(ValueError):
        S.CASES[op]("float8")
    S.CASES[op]("bfloat16")  # half precision, on request (oracle.dtypes.HALF)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_no_pool_window_is_all_padding(op):
    """Judged by torch: finite input in, finite output out (-inf / NaN would mark an empty window)."""

    @FAST
    @given(S.CASES[op]())
    def check(case):
        case = case.with_(values={"x": "gapped"}, dtype="float64")
        out, _, _ = _forward(case)
        assert torch.isfinite(out).all(), case.reproduction()
        if op == "avg_pool2d" and not case.config["count_include_pad"]:
            no_override = dict(case.config, divisor_override=None)
            ones = F.avg_pool2d(torch.ones(case.shapes["x"], dtype=torch.float64), **no_override)
            assert torch.allclose(ones, torch.ones_like(ones))  # every divisor = real elements > 0

    check()


@FAST
@given(S.CASES["max_pool2d"]())
def test_geometry_windows_match_torch(case):
    """``Geometry.windows`` reads the elements torch reads: torch's arg-max of every window lies in it."""
    case = case.with_(values={"x": "gapped"})  # distinct values: one arg-max per window
    x = torch.from_numpy(case.arrays()["x"])
    out, idx = F.max_pool2d(x, **case.config, return_indices=True)
    g = S.geometry_of(case)
    rows, cols = g.windows(0), g.windows(1)
    assert out.shape[-2:] == (len(rows), len(cols))
    width = case.shapes["x"][-1]
    for a, b in itertools.product(range(len(rows)), range(len(cols))):
        r, c = np.divmod(idx[..., a, b].numpy(), width)
        assert np.isin(r, rows[a]).all() and np.isin(c, cols[b]).all()
        block = x[:, :, list(rows[a])][:, :, :, list(cols[b])]
        assert torch.equal(out[..., a, b], block.amax(dim=(-2, -1)))


def test_avg_pool_never_has_empty_windows_under_torch_rules():
    """Exhaustively, per axis: without dilation, pad <= k // 2 and torch's ceil rule leave no all-padding window."""
    for k, s, ceil, size in itertools.product(range(1, 5), range(1, 5), (False, True), range(1, 13)):
        for p in range(k // 2 + 1):
            g = S.Geometry((size, size), (k, k), (s, s), (p, p), (1, 1), ceil)
            if min(g.output_hw) >= 1:
                assert g.every_window_reads_input(), g


def test_empty_window_model_matches_torch():
    """Exhaustively, per axis: ``Geometry`` sizes the output as torch does and finds an all-padding
    max-pool window exactly where torch answers -inf (the configurations ``pool_geometry`` leaves out)."""
    empty = 0
    for k, s, d, ceil, size in itertools.product(range(1, 5), range(1, 5), range(1, 4), (False, True), range(1, 13)):
        for p in range(k // 2 + 1):
            g = S.Geometry((size, 1), (k, 1), (s, 1), (p, 0), (d, 1), ceil)
            if g.output_hw[0] < 1:
                continue
            x = torch.arange(size, dtype=torch.float64).reshape(1, 1, size, 1)
            out = F.max_pool2d(x, (k, 1), (s, 1), (p, 0), (d, 1), ceil)
            assert tuple(out.shape[-2:]) == g.output_hw, g
            assert bool(torch.isinf(out).any()) == (not g.every_window_reads_input()), g
            empty += not g.every_window_reads_input()
    assert empty > 0  # the hazard is real: torch accepts these arguments


def test_building_blocks_validate_their_arguments():
    with pytest.raises(ValueError):
        S.recipes({"normal": 1, "no such recipe": 1})
    with pytest.raises(ValueError):
        S.recipes({})


def test_geometry_rejects_unknown_kind():
    with pytest.raises(ValueError):
        S.pool_geometry("min")


# --------------------------------------------------------------------------- reachability


def _g(case: Case) -> S.Geometry:
    return S.geometry_of(case)


def _max_pool_tie(case: Case) -> bool:
    """Some window's maximum is attained twice (computed here from the window formula, not by the strategy)."""
    x = case.arrays()["x"]
    if np.isnan(x).any():
        return False
    k, d, p = case.config["kernel_size"], case.config["dilation"], case.config["padding"]
    s = case.config["stride"] or k
    ho, wo = case.shapes["grad_output"][-2:]
    h, w = x.shape[-2:]
    for a, b in itertools.product(range(ho), range(wo)):
        rows = [a * s[0] - p[0] + i * d[0] for i in range(k[0])]
        cols = [b * s[1] - p[1] + j * d[1] for j in range(k[1])]
        rows = [r for r in rows if 0 <= r < h]
        cols = [c for c in cols if 0 <= c < w]
        block = x[:, :, rows][:, :, :, cols].reshape(*x.shape[:2], -1)
        if ((block == block.max(-1, keepdims=True)).sum(-1) > 1).any():
            return True
    return False


def _conv_unused_rows(case: Case) -> bool:
    h = case.shapes["x"][2]
    k = case.shapes["weight"][2]
    s, p, d = (case.config[key][0] for key in ("stride", "padding", "dilation"))
    return (h + 2 * p - d * (k - 1) - 1) % s != 0


def _adaptive_overlap(case: Case) -> bool:
    """Two of torch's bins [floor(i H/Ho), ceil((i+1) H/Ho)) share an input row or column."""
    for size, out in zip(case.shapes["x"][2:], case.config["output_size"]):
        ends = [-((-(i + 1) * size) // out) for i in range(out)]
        starts = [(i * size) // out for i in range(out)]
        if any(starts[i + 1] < ends[i] for i in range(out - 1)) and out < size:
            return True
    return False


CORNERS = {
    "conv2d: stride>1 & dilation>1": ("conv2d", lambda c: any(s > 1 and d > 1 for s, d in zip(c.config["stride"], c.config["dilation"]))),
    "conv2d: groups>1": ("conv2d", lambda c: c.config["groups"] > 1),
    "conv2d: depthwise": ("conv2d", lambda c: c.config["groups"] > 1 and c.shapes["x"][1] == c.config["groups"]),
    "conv2d: output 1x1": ("conv2d", lambda c: c.shapes["grad_output"][2:] == (1, 1)),
    "conv2d: kernel wider than unpadded input": (
        "conv2d",
        lambda c: any(d * (k - 1) + 1 > n for d, k, n in zip(c.config["dilation"], c.shapes["weight"][2:], c.shapes["x"][2:])),
    ),
    "conv2d: unused input rows": ("conv2d", _conv_unused_rows),
    "conv2d: trailing input rows never read": ("conv2d", lambda c: (c.shapes["x"][2] - 1) in _g(c).unread(0)),
    "conv2d: no bias": ("conv2d", lambda c: c.shapes["bias"] is None),
    "conv2d: all of it at once": (
        "conv2d",
        lambda c: c.config["groups"] > 1
        and max(c.config["stride"]) > 1
        and max(c.config["dilation"]) > 1
        and max(c.config["padding"]) > 0
        and _g(c).asymmetric(),
    ),
    "max_pool2d: stride>1 & dilation>1": (
        "max_pool2d",
        lambda c: any(s > 1 and d > 1 for s, d in zip(_g(c).stride, c.config["dilation"])),
    ),
    "max_pool2d: ceil_mode adds a window": ("max_pool2d", lambda c: _g(c).ceil_adds_window()),
    "max_pool2d: overlapping windows": ("max_pool2d", lambda c: _g(c).overlapping()),
    "max_pool2d: ties": ("max_pool2d", _max_pool_tie),
    "max_pool2d: ties in overlapping windows": ("max_pool2d", lambda c: _g(c).overlapping() and _max_pool_tie(c)),
    "max_pool2d: nan": ("max_pool2d", lambda c: c.values.get("x") == "nan"),
    "max_pool2d: default stride": ("max_pool2d", lambda c: c.config["stride"] is None),
    "max_pool2d: dilation and padding": ("max_pool2d", lambda c: max(c.config["dilation"]) > 1 and max(c.config["padding"]) > 0),
    "max_pool2d: kernel wider than input": ("max_pool2d", lambda c: any(_g(c).kernel_wider_than_input(a) for a in (0, 1))),
    "avg_pool2d: ceil_mode adds a window": ("avg_pool2d", lambda c: _g(c).ceil_adds_window()),
    "avg_pool2d: ceil window overhangs input+padding": ("avg_pool2d", lambda c: _g(c).overhangs()),
    "avg_pool2d: overhang counted with padding": (
        "avg_pool2d",
        lambda c: _g(c).overhangs() and max(c.config["padding"]) > 0 and c.config["count_include_pad"],
    ),
    "avg_pool2d: padding left out of divisor": (
        "avg_pool2d",
        lambda c: max(c.config["padding"]) > 0 and not c.config["count_include_pad"],
    ),
    "avg_pool2d: divisor_override": ("avg_pool2d", lambda c: c.config["divisor_override"] is not None),
    "avg_pool2d: overlapping windows": ("avg_pool2d", lambda c: _g(c).overlapping()),
    "linear: no bias": ("linear", lambda c: c.shapes["bias"] is None),
    "relu: exact zeros": ("relu", lambda c: (c.arrays()["x"] == 0).any()),
    "relu: 4-d": ("relu", lambda c: len(c.shapes["x"]) == 4),
    "sigmoid: |z| >= 1e4": ("sigmoid", lambda c: (np.abs(c.arrays()["x"]) >= 1e4).any()),
    "flatten: 4-d": ("flatten", lambda c: len(c.shapes["x"]) == 4),
    "bce: p at 0 or 1, target disagrees": (
        "binary_cross_entropy",
        lambda c: (lambda a: (((a["input"] == 0) | (a["input"] == 1)) & (a["input"] != a["target"])).any())(c.arrays()),
    ),
    "bce: reduction none": ("binary_cross_entropy", lambda c: c.config["reduction"] == "none"),
    "bce logits: |z| >= 1e4": ("binary_cross_entropy_with_logits", lambda c: (np.abs(c.arrays()["input"]) >= 1e4).any()),
    "bce logits: soft target, sum": (
        "binary_cross_entropy_with_logits",
        lambda c: c.values.get("target") == "soft" and c.config["reduction"] == "sum",
    ),
    "batch_norm: 2 values per channel (N*H*W = 2)": (
        "batch_norm", lambda c: c.shapes["x"][0] * int(np.prod(c.shapes["x"][2:])) == 2),
    "batch_norm: 2 values per channel, 4-d": (
        "batch_norm", lambda c: len(c.shapes["x"]) == 4 and c.shapes["x"][0] * int(np.prod(c.shapes["x"][2:])) == 2),
    "batch_norm: a constant channel": (
        "batch_norm", lambda c: bool((np.ptp(c.arrays()["x"], axis=(0, *range(2, len(c.shapes["x"])))) == 0).any())),
    "batch_norm: a constant channel next to a varying one": (
        "batch_norm", lambda c: (lambda r: bool((r == 0).any() and (r > 0).any()))(
            np.ptp(c.arrays()["x"], axis=(0, *range(2, len(c.shapes["x"])))))),
    "batch_norm: weight and bias None": ("batch_norm", lambda c: c.shapes["weight"] is None and c.shapes["bias"] is None),
    "batch_norm: eps <= 1e-10": ("batch_norm", lambda c: c.config["eps"] <= 1e-10),
    "batch_norm: eps >= 1": ("batch_norm", lambda c: c.config["eps"] >= 1),
    "batch_norm: large common offset": ("batch_norm", lambda c: c.values.get("x") == "offset"),
    "layer_norm: over 3 trailing dims with leading dims": (
        "layer_norm", lambda c: len(c.config["normalized_shape"]) == 3 and len(c.shapes["x"]) > 3),
    "layer_norm: over 2 trailing dims": ("layer_norm", lambda c: len(c.config["normalized_shape"]) == 2),
    "layer_norm: no leading dims": ("layer_norm", lambda c: len(c.shapes["x"]) == len(c.config["normalized_shape"])),
    "layer_norm: a constant group": (
        "layer_norm", lambda c: bool((np.ptp(c.arrays()["x"], axis=tuple(range(len(c.shapes["x"]) - len(c.config["normalized_shape"]), len(c.shapes["x"])))) == 0).any())),
    "layer_norm: weight without bias": ("layer_norm", lambda c: c.shapes["weight"] is not None and c.shapes["bias"] is None),
    "layer_norm: large common offset": ("layer_norm", lambda c: c.values.get("x") == "offset"),
    "float32": ("conv2d", lambda c: c.dtype == "float32"),
    "tanh: saturated in float32": ("tanh", lambda c: c.dtype == "float32" and (np.abs(np.tanh(c.arrays()["x"])) == 1).any()),
    "tanh: saturated in float64": ("tanh", lambda c: c.dtype == "float64" and (np.abs(np.tanh(c.arrays()["x"])) == 1).any()),
    "tanh: |x| < 1e-3": ("tanh", lambda c: (np.abs(c.arrays()["x"]) < 1e-3).any()),
    "leaky_relu: exact zeros, slope not 1": (
        "leaky_relu", lambda c: c.config["negative_slope"] != 1 and (c.arrays()["x"] == 0).any()),
    "leaky_relu: negative_slope 0": ("leaky_relu", lambda c: c.config["negative_slope"] == 0),
    "leaky_relu: negative_slope 1": ("leaky_relu", lambda c: c.config["negative_slope"] == 1),
    "leaky_relu: negative_slope < 0": ("leaky_relu", lambda c: c.config["negative_slope"] < 0),
    "leaky_relu: negative_slope > 1": ("leaky_relu", lambda c: c.config["negative_slope"] > 1),
    "gelu none: x <= -10": ("gelu", lambda c: c.config["approximate"] == "none" and (c.arrays()["x"] <= -10).any()),
    "gelu tanh: x <= -10": ("gelu", lambda c: c.config["approximate"] == "tanh" and (c.arrays()["x"] <= -10).any()),
    "gelu none: x >= 10": ("gelu", lambda c: c.config["approximate"] == "none" and (c.arrays()["x"] >= 10).any()),
    "gelu tanh: |x| < 1e-3": ("gelu", lambda c: c.config["approximate"] == "tanh" and (np.abs(c.arrays()["x"]) < 1e-3).any()),
    "gelu none: |x| < 1e-3": ("gelu", lambda c: c.config["approximate"] == "none" and (np.abs(c.arrays()["x"]) < 1e-3).any()),
    "adaptive_avg_pool2d: overlapping bins": ("adaptive_avg_pool2d", _adaptive_overlap),
    "adaptive_avg_pool2d: output larger than input": (
        "adaptive_avg_pool2d", lambda c: any(o > s for s, o in zip(c.shapes["x"][2:], c.config["output_size"]))),
    "adaptive_avg_pool2d: output 1x1": ("adaptive_avg_pool2d", lambda c: c.config["output_size"] == (1, 1)),
    "adaptive_avg_pool2d: output equal to input": (
        "adaptive_avg_pool2d", lambda c: c.config["output_size"] == c.shapes["x"][2:]),
    "softmax: 4-d along a negative dim": ("softmax", lambda c: len(c.shapes["x"]) == 4 and c.config["dim"] < 0),
    "softmax: 3-d along dim 0": ("softmax", lambda c: len(c.shapes["x"]) == 3 and c.config["dim"] == 0),
    "softmax: 1-d": ("softmax", lambda c: len(c.shapes["x"]) == 1),
    "softmax: |x| >= 1e4, float32": ("softmax", lambda c: c.dtype == "float32" and (np.abs(c.arrays()["x"]) >= 1e4).any()),
    "softmax: tie at the maximum": ("softmax", lambda c: _tie_at_max(c.arrays()["x"], c.config["dim"])),
    "log_softmax: 4-d along a negative dim": ("log_softmax", lambda c: len(c.shapes["x"]) == 4 and c.config["dim"] < 0),
    "log_softmax: |x| >= 1e4": ("log_softmax", lambda c: (np.abs(c.arrays()["x"]) >= 1e4).any()),
    "log_softmax: tie at the maximum": ("log_softmax", lambda c: _tie_at_max(c.arrays()["x"], c.config["dim"])),
    "cross_entropy: |z| >= 1e4": ("cross_entropy", lambda c: (np.abs(c.arrays()["input"]) >= 1e4).any()),
    "cross_entropy: C = 1": ("cross_entropy", lambda c: c.shapes["input"][1] == 1),
    "cross_entropy: N = 1, C > 1": ("cross_entropy", lambda c: c.shapes["input"][0] == 1 and c.shapes["input"][1] > 1),
    "cross_entropy: mean, N > 1, C > 1": (
        "cross_entropy", lambda c: c.config["reduction"] == "mean" and min(c.shapes["input"]) > 1),
    "cross_entropy: sum": ("cross_entropy", lambda c: c.config["reduction"] == "sum"),
    "cross_entropy: none, N > 1": ("cross_entropy", lambda c: c.config["reduction"] == "none" and c.shapes["input"][0] > 1),
    "cross_entropy: float32 with an int64 target": (
        "cross_entropy", lambda c: c.dtype == "float32" and c.arrays()["target"].dtype == np.int64),
    "mse_loss: mean": ("mse_loss", lambda c: c.config["reduction"] == "mean" and len(c.shapes["input"]) > 1),
    "mse_loss: sum": ("mse_loss", lambda c: c.config["reduction"] == "sum"),
    "mse_loss: none, 3-d": ("mse_loss", lambda c: c.config["reduction"] == "none" and len(c.shapes["input"]) == 3),
    "mse_loss: input == target somewhere": ("mse_loss", lambda c: (lambda a: (a["input"] == a["target"]).any())(c.arrays())),
    **{
        f"{op}: {corner}": (op, condition)
        for op in ("conv1d", "conv3d")
        for corner, condition in {
            "groups>1": lambda c: c.config["groups"] > 1,
            "no bias": lambda c: c.shapes["bias"] is None,
            "stride > kernel": lambda c: any(s > k for s, k in zip(c.config["stride"], c.shapes["weight"][2:])),
            "stride>1 & dilation>1": lambda c: any(s > 1 and d > 1 for s, d in zip(c.config["stride"], c.config["dilation"])),
            "kernel wider than unpadded input": lambda c: any(
                d * (k - 1) + 1 > n for d, k, n in zip(c.config["dilation"], c.shapes["weight"][2:], c.shapes["x"][2:])
            ),
            "padding": lambda c: max(c.config["padding"]) > 0,
        }.items()
    },
    "conv3d: every axis's stride different": ("conv3d", lambda c: len(set(c.config["stride"])) == 3),
    "conv3d: dilation differs between depth and width": ("conv3d", lambda c: c.config["dilation"][0] != c.config["dilation"][2]),
    "conv_transpose2d: output_padding >= stride": (
        "conv_transpose2d", lambda c: any(o >= s > 0 and o > 0 for o, s in zip(c.config["output_padding"], c.config["stride"])),
    ),
    "conv_transpose2d: output_padding = max(stride, dilation) - 1 > 0": (
        "conv_transpose2d",
        lambda c: any(o == max(s, d) - 1 > 0 for o, s, d in zip(*(c.config[k] for k in ("output_padding", "stride", "dilation")))),
    ),
    "conv_transpose2d: output_padding reached by the kernel (0 < op <= p)": (
        "conv_transpose2d", lambda c: any(0 < o <= p for o, p in zip(c.config["output_padding"], c.config["padding"])),
    ),
    "conv_transpose2d: groups>1 with output_padding": (
        "conv_transpose2d", lambda c: c.config["groups"] > 1 and any(c.config["output_padding"]),
    ),
    "conv_transpose2d: stride > kernel": (
        "conv_transpose2d", lambda c: any(s > k for s, k in zip(c.config["stride"], c.shapes["weight"][2:])),
    ),
    "conv_transpose2d: no bias": ("conv_transpose2d", lambda c: c.shapes["bias"] is None),
    "conv_transpose2d: output 1 on some axis": ("conv_transpose2d", lambda c: 1 in c.shapes["grad_output"][2:]),
}


def _tie_at_max(x: np.ndarray, dim: int) -> bool:
    return bool(((x == x.max(axis=dim, keepdims=True)).sum(axis=dim) > 1).any())


@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_corner_is_reachable(corner):
    op, condition = CORNERS[corner]
    try:
        case = find(S.CASES[op](), condition, settings=FIND)
    except NoSuchExample:
        pytest.fail(f"{corner!r} not drawn in {FIND.max_examples} cases of {op}")
    out, _, _ = _forward(case)  # the corner case is valid too
    assert tuple(out.shape) == case.shapes["grad_output"]


def test_output_one_meets_unused_rows_and_wide_kernel():
    """The three convolution corners of the brief, together on one axis."""
    def both(c):
        g = _g(c)
        return any(g.output_hw[a] == 1 and g.kernel_wider_than_input(a) and g.leftover(a) for a in (0, 1))

    find(S.conv2d_cases(), both, settings=FIND)
