"""refimpl against torch (CPU, autograd): conv2d, pooling, normalization, activations, softmax and losses,
conv_transpose2d and adaptive_avg_pool2d, forward and forward+backward.

    python benchmarks/bench.py                       # full run, float64 and float32
    python benchmarks/bench.py --quick               # fewer repeats, shorter samples
    python benchmarks/bench.py --dtype float32 --repeat 9 --markdown benchmarks/RESULTS.md
    python benchmarks/bench.py --only resnet,pool    # a subset, by substring of the case name
    python benchmarks/bench.py --only _norm           # batch_norm and layer_norm only
    python benchmarks/bench.py --only act,loss       # the activations, softmax and losses only
    python benchmarks/bench.py --only transposed,adaptive --no-memory   # conv_transpose2d and adaptive pooling only
    python benchmarks/bench.py --threads 1 --clock cpu   # on a busy machine: one thread, CPU time

Every time is the median of ``--repeat`` samples (each sample runs the call often
enough to last ``--min-time`` seconds); torch and refimpl samples are taken
alternately, so a load that comes and goes hits both. The spread column is the
larger interquartile range of the two, relative to the median: a high value
means the machine was busy, rerun it on a quiet one.

For conv2d, refimpl forward+backward is timed twice: with
``refimpl.convolution.conv2d_backward`` (the derivation: stride-s backward =
stride-1 backward of the dilated output gradient) and with
``refimpl.conv2d_backward`` = ``refimpl.fast.conv2d_backward`` (the fast path:
the adjoint of the forward's per-tap products). GFLOP/s counts ``2*N*C_out*Ho*Wo*C_in/groups*kH*kW`` for the
forward and three times that for forward+backward, and is compared with the
GEMM peak (a large square ``np.matmul``) measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 repeats of short samples (a smoke run, not for the README)")
    p.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    p.add_argument("--repeat", type=int, default=None, help="samples per time (default 7, --quick 3)")
    p.add_argument("--stat", choices=["median", "min"], default="median", help="statistic of the samples reported (default median)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall: elapsed time (default); cpu: this process's CPU time, which other processes' load "
                        "hardly changes (meaningful with --threads 1 only: with more, it adds up the threads)")
    p.add_argument("--min-time", type=float, default=None, help="seconds per sample (default 0.1, --quick 0.02)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for torch and for numpy's BLAS (default: all cores)")
    p.add_argument("--only", default="", help="comma-separated substrings: run only the cases whose name contains one")
    p.add_argument("--no-derivation", action="store_true", help="skip timing refimpl.convolution.conv2d_backward (the slow derivation)")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc peak-memory measurement")
    p.add_argument("--markdown", type=Path, default=None, help="also write the results as Markdown to this file")
    args = p.parse_args(argv)
    args.repeat = args.repeat or (3 if args.quick else 7)
    args.min_time = args.min_time if args.min_time is not None else (0.02 if args.quick else 0.1)
    return args


# --------------------------------------------------------------------------- environment


def blas_description(np) -> dict:
    """What numpy's BLAS is: build info from ``numpy.show_config`` plus, for OpenBLAS, what it picked at run time."""
    info = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["name"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        info["build"] = blas.get("openblas configuration", "")
    except Exception as exc:  # noqa: BLE001 - old numpy: show_config has no dicts mode
        info["name"] = f"unknown ({exc})"
    # The run-time core type and thread count (OpenBLAS only), read from the library numpy loaded.
    try:
        import ctypes
        import glob

        libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
        if libs:
            lib = ctypes.CDLL(libs[0])
            for prefix in ("scipy_openblas_", "openblas_"):
                for suffix in ("64_", ""):
                    core = getattr(lib, f"{prefix}get_corename{suffix}", None)
                    nthreads = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                    if core is not None:
                        core.restype = ctypes.c_char_p
                        info["core"] = core().decode()
                        if nthreads is not None:
                            nthreads.restype = ctypes.c_int
                            info["threads"] = nthreads()
                        raise StopIteration
    except StopIteration:
        pass
    except Exception:  # noqa: BLE001 - best effort
        pass
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(not set)")
    return info


def load_average() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):  # not on every OS
        return "unknown"


# --------------------------------------------------------------------------- timing


CLOCK = time.perf_counter  # --clock cpu: time.process_time


def _sample(fn, number: int) -> float:
    t0 = CLOCK()
    for _ in range(number):
        fn()
    return (CLOCK() - t0) / number


def _calibrate(fn, min_time: float) -> int:
    """Calls per sample so that one sample lasts at least ``min_time`` (after one warm-up call)."""
    fn()
    number = 1
    while number < 1 << 16:
        total = _sample(fn, number) * number
        if total >= min_time:
            break
        number = min(1 << 16, max(2 * number, int(1.2 * number * min_time / max(total, 1e-9))))
    return number


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)

    stat: str = "median"

    @property
    def median(self) -> float:
        """The reported time: the median of the samples (or their minimum, with ``--stat min``)."""
        return min(self.samples) if self.stat == "min" else statistics.median(self.samples)

    @property
    def spread(self) -> float:
        if len(self.samples) < 3:
            return 0.0
        q = statistics.quantiles(self.samples, n=4)
        return (q[2] - q[0]) / self.median


STAT = "median"


def time_alternating(fns: dict, repeat: int, min_time: float) -> dict[str, Timing]:
    """Median-of-``repeat`` times of several callables, sampled round-robin."""
    numbers = {k: _calibrate(f, min_time) for k, f in fns.items()}
    out = {k: Timing(stat=STAT) for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            out[k].samples.append(_sample(f, numbers[k]))
    return out


def gemm_peak(np, torch, dtype: str, repeat: int, size: int = 2048) -> tuple[float, float]:
    """(numpy, torch) GFLOP/s of a ``size``^2 matrix product: the best of ``repeat`` samples."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    t = time_alternating({"np": lambda: a @ b, "torch": lambda: ta @ tb}, max(repeat, 3), 0.0)
    return tuple(2 * size**3 / min(t[k].samples) / 1e9 for k in ("np", "torch"))


# --------------------------------------------------------------------------- cases

# (name, N, C_in, H=W, C_out, k, stride, padding, dilation, groups)
CONV_SHAPES = [
    ("worked example", 1, 1, 6, 1, 3, 1, 0, 1, 1),
    ("8x16x32 -> 32", 8, 16, 32, 32, 3, 1, 1, 1, 1),
    ("8x32x32 -> 64", 8, 32, 32, 64, 3, 1, 1, 1, 1),
    ("16x64x32 -> 64 s2", 16, 64, 32, 64, 3, 2, 1, 1, 1),
    ("4x3x64 -> 16 k5 s2", 4, 3, 64, 16, 5, 2, 2, 1, 1),
    ("resnet 32x64x56 -> 64", 32, 64, 56, 64, 3, 1, 1, 1, 1),
    ("depthwise 8x64x28 g64", 8, 64, 28, 64, 3, 1, 1, 1, 64),
    ("dilated 8x32x32 d2", 8, 32, 32, 32, 3, 1, 2, 2, 1),
]
RESNET = "resnet 32x64x56 -> 64"

# (name, op, kernel, stride, padding) at POOL_INPUT
POOL_INPUT = (32, 64, 56, 56)
POOL_CASES = [
    ("max_pool k2 s2", "max", 2, 2, 0),
    ("max_pool k3 s2 p1", "max", 3, 2, 1),
    ("avg_pool k2 s2", "avg", 2, 2, 0),
    ("avg_pool k3 s2 p1", "avg", 3, 2, 1),
]
# issue 12: (name, op, input shape, configuration)
#   conv_transpose2d: weight (C_in, C_out, k, k); adaptive_avg_pool2d: output_size
UPSAMPLE_CASES = [
    ("transposed decoder 8x64x28 -> 32 k4 s2", "conv_transpose2d", (8, 64, 28, 28), dict(out=32, k=4, stride=2, padding=1, output_padding=0)),
    ("transposed 8x64x28 -> 32 k3 s2 op1", "conv_transpose2d", (8, 64, 28, 28), dict(out=32, k=3, stride=2, padding=1, output_padding=1)),
    ("adaptive 32x512x7 -> 1x1", "adaptive_avg_pool2d", (32, 512, 7, 7), dict(output_size=(1, 1))),
    ("adaptive 32x64x30 -> 7x7", "adaptive_avg_pool2d", (32, 64, 30, 30), dict(output_size=(7, 7))),
]

# (name, op, x shape, normalized_shape): batch_norm in training mode, weight and bias (C,);
# layer_norm over the trailing normalized_shape, weight and bias of that shape
NORM_CASES = [
    ("batch_norm 32x64x28x28", "batch", (32, 64, 28, 28), None),
    ("layer_norm 32x128x768", "layer", (32, 128, 768), (768,)),
]

# (name, refimpl/torch function name, input shape, keyword configuration): activations and softmax on
# a ResNet-stage-sized feature map and on (batch, classes) logits; the losses on the same
ACT_INPUT = (64, 256, 14, 14)
LOGITS = (256, 1000)
ACT_CASES = [
    ("act tanh", "tanh", ACT_INPUT, {}),
    ("act leaky_relu", "leaky_relu", ACT_INPUT, {"negative_slope": 0.01}),
    ("act gelu", "gelu", ACT_INPUT, {"approximate": "none"}),
    ("act gelu tanh", "gelu", ACT_INPUT, {"approximate": "tanh"}),
    ("act softmax dim=-1", "softmax", LOGITS, {"dim": -1}),
    ("act softmax dim=1", "softmax", ACT_INPUT, {"dim": 1}),
    ("act log_softmax dim=-1", "log_softmax", LOGITS, {"dim": -1}),
    ("loss cross_entropy", "cross_entropy", LOGITS, {"reduction": "mean"}),
    ("loss mse_loss", "mse_loss", ACT_INPUT, {"reduction": "mean"}),
]
LOSSES = ("cross_entropy", "mse_loss")


@dataclass
class Row:
    case: str
    shape: str
    dtype: str
    kind: str  # "conv", "pool", "norm", "act", "loss", "convT" (conv_transpose2d) or "adaptive" (adaptive_avg_pool2d)
    pass_: str  # "fwd", "fwd+bwd derivation", "fwd+bwd fast", "fwd+bwd"
    torch: Timing
    ref: Timing
    flops: float | None = None  # of this pass

    @property
    def ratio(self) -> float:
        return self.ref.median / self.torch.median

    @property
    def spread(self) -> float:
        return max(self.ref.spread, self.torch.spread)


def conv_rows(np, torch, refimpl, fast, case, dtype, args) -> list[Row]:
    from refimpl import convolution  # the derivation (numpy is already configured by now)
    import torch.nn.functional as F

    name, n, c, hw, o, k, s, p, d, g = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
    w = (rng.standard_normal((o, c // g, k, k)) / np.sqrt(c // g * k * k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    cfg = dict(stride=s, padding=p, dilation=d, groups=g)
    z = refimpl.conv2d(x, w, b, **cfg)
    gout = rng.standard_normal(z.shape).astype(dtype)
    xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, gout))
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))

    # the two implementations agree before they are timed
    zt = F.conv2d(xt, wt, bt, **cfg).numpy()
    tol = 1e-9 if dtype == "float64" else 2e-3
    assert np.allclose(z, zt, rtol=tol, atol=tol), f"{name}: forward differs from torch"
    gx_f, gw_f, _ = fast.conv2d_backward(gout, x, w, b, **cfg)
    gx_t, gw_t, _ = torch.autograd.grad(F.conv2d(xg, wg, bg, **cfg), (xg, wg, bg), gt)
    assert np.allclose(gx_f, gx_t.numpy(), rtol=tol, atol=tol), f"{name}: fast grad_x differs from torch"
    assert np.allclose(gw_f, gw_t.numpy(), rtol=tol, atol=tol * np.abs(gw_f).max()), f"{name}: fast grad_weight differs"

    def torch_fwd():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, **cfg)

    def torch_fwd_bwd():
        torch.autograd.grad(F.conv2d(xg, wg, bg, **cfg), (xg, wg, bg), gt)

    def ref_fwd():
        refimpl.conv2d(x, w, b, **cfg)

    def ref_fwd_bwd_derivation():
        refimpl.conv2d(x, w, b, **cfg)
        convolution.conv2d_backward(gout, x, w, b, **cfg)

    def ref_fwd_bwd_fast():
        refimpl.conv2d(x, w, b, **cfg)
        fast.conv2d_backward(gout, x, w, b, **cfg)

    flops = 2.0 * n * o * z.shape[2] * z.shape[3] * (c // g) * k * k
    shape = f"N{n} C{c} {hw}x{hw} -> {o}, k{k} s{s} p{p}" + (f" d{d}" if d > 1 else "") + (f" g{g}" if g > 1 else "")
    rows = []
    t = time_alternating({"torch": torch_fwd, "ref": ref_fwd}, args.repeat, args.min_time)
    rows.append(Row(name, shape, dtype, "conv", "fwd", t["torch"], t["ref"], flops))
    fns = {"torch": torch_fwd_bwd, "fast": ref_fwd_bwd_fast}
    if not args.no_derivation:
        fns["derivation"] = ref_fwd_bwd_derivation
    t = time_alternating(fns, args.repeat, args.min_time)
    if "derivation" in t:
        rows.append(Row(name, shape, dtype, "conv", "fwd+bwd derivation", t["torch"], t["derivation"], 3 * flops))
    rows.append(Row(name, shape, dtype, "conv", "fwd+bwd fast", t["torch"], t["fast"], 3 * flops))
    return rows


def timed_rows(name, shape, dtype, kind, torch_fns, ref_fns, args, flops=None) -> list[Row]:
    """The "fwd" and "fwd+bwd" rows of one case: torch's and refimpl's ``(forward, forward+backward)``, each pair
    timed alternately (``flops``: of the forward; forward+backward counts three times as many)."""
    t1 = time_alternating({"torch": torch_fns[0], "ref": ref_fns[0]}, args.repeat, args.min_time)
    t2 = time_alternating({"torch": torch_fns[1], "ref": ref_fns[1]}, args.repeat, args.min_time)
    return [
        Row(name, shape, dtype, kind, "fwd", t1["torch"], t1["ref"], flops),
        Row(name, shape, dtype, kind, "fwd+bwd", t2["torch"], t2["ref"], flops and 3 * flops),
    ]


def pool_rows(np, torch, refimpl, case, dtype, args) -> list[Row]:
    import torch.nn.functional as F

    name, op, k, s, p = case
    fwd_ref = getattr(refimpl, f"{op}_pool2d", None)
    bwd_ref = getattr(refimpl, f"{op}_pool2d_backward", None)
    if fwd_ref is None or bwd_ref is None:
        return []
    fwd_torch = getattr(F, f"{op}_pool2d")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(POOL_INPUT).astype(dtype)
    cfg = dict(kernel_size=k, stride=s, padding=p)
    y = fwd_ref(x, **cfg)
    gout = rng.standard_normal(y.shape).astype(dtype)
    xt, gt = torch.from_numpy(x), torch.from_numpy(gout)
    xg = xt.clone().requires_grad_(True)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert np.allclose(y, fwd_torch(xt, **cfg).numpy(), rtol=tol, atol=tol), f"{name}: forward differs from torch"
    (gx_t,) = torch.autograd.grad(fwd_torch(xg, **cfg), (xg,), gt)
    assert np.allclose(bwd_ref(gout, x, **cfg), gx_t.numpy(), rtol=tol, atol=tol), f"{name}: backward differs from torch"

    def torch_fwd():
        with torch.no_grad():
            fwd_torch(xt, **cfg)

    def torch_fwd_bwd():
        torch.autograd.grad(fwd_torch(xg, **cfg), (xg,), gt)

    def ref_fwd():
        fwd_ref(x, **cfg)

    def ref_fwd_bwd():
        fwd_ref(x, **cfg)
        bwd_ref(gout, x, **cfg)

    shape = "N{} C{} {}x{}".format(*POOL_INPUT) + f", k{k} s{s} p{p}"
    return timed_rows(name, shape, dtype, "pool", (torch_fwd, torch_fwd_bwd), (ref_fwd, ref_fwd_bwd), args)


def norm_rows(np, torch, refimpl, case, dtype, args) -> list[Row]:
    import torch.nn.functional as F

    name, op, xshape, normalized_shape = case
    fwd_ref = getattr(refimpl, f"{op}_norm", None)
    bwd_ref = getattr(refimpl, f"{op}_norm_backward", None)
    if fwd_ref is None or bwd_ref is None:
        return []
    pshape = (xshape[1],) if op == "batch" else normalized_shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xshape).astype(dtype)
    w = (1 + 0.1 * rng.standard_normal(pshape)).astype(dtype)
    b = rng.standard_normal(pshape).astype(dtype)
    gout = rng.standard_normal(xshape).astype(dtype)
    cfg = {} if op == "batch" else {"normalized_shape": normalized_shape}
    if op == "batch":
        def fwd_torch(xt, wt, bt):
            return F.batch_norm(xt, None, None, wt, bt, training=True)
    else:
        def fwd_torch(xt, wt, bt):
            return F.layer_norm(xt, normalized_shape, wt, bt)
    xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, gout))
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))

    # the two implementations agree before they are timed
    tol = 1e-9 if dtype == "float64" else 1e-3
    assert np.allclose(fwd_ref(x, w, b, **cfg), fwd_torch(xt, wt, bt).numpy(), rtol=tol, atol=tol), f"{name}: forward differs"
    for ours, theirs in zip(bwd_ref(gout, x, w, b, **cfg), torch.autograd.grad(fwd_torch(xg, wg, bg), (xg, wg, bg), gt)):
        theirs = theirs.numpy()
        assert np.allclose(ours, theirs, rtol=tol, atol=tol * max(1.0, np.abs(theirs).max())), f"{name}: backward differs"

    def torch_fwd():
        with torch.no_grad():
            fwd_torch(xt, wt, bt)

    def torch_fwd_bwd():
        torch.autograd.grad(fwd_torch(xg, wg, bg), (xg, wg, bg), gt)

    def ref_fwd():
        fwd_ref(x, w, b, **cfg)

    def ref_fwd_bwd():
        fwd_ref(x, w, b, **cfg)
        bwd_ref(gout, x, w, b, **cfg)

    shape = "x " + "x".join(map(str, xshape)) + (f", over {normalized_shape}" if normalized_shape else ", training")
    return timed_rows(name, shape, dtype, "norm", (torch_fwd, torch_fwd_bwd), (ref_fwd, ref_fwd_bwd), args)


def act_rows(np, torch, refimpl, case, dtype, args) -> list[Row]:
    """An activation, softmax or loss: refimpl vs torch, forward and forward+backward (w.r.t. the input only)."""
    import torch.nn.functional as F

    name, op, shape, cfg = case
    fwd_ref = getattr(refimpl, op, None)
    bwd_ref = getattr(refimpl, f"{op}_backward", None)
    if fwd_ref is None or bwd_ref is None:
        return []
    fwd_torch = torch.tanh if op == "tanh" else getattr(F, op)
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    is_loss = op in LOSSES
    if op == "cross_entropy":
        target = rng.integers(0, shape[1], size=shape[0])
    elif is_loss:
        target = rng.standard_normal(shape).astype(dtype)
    inputs = (x, target) if is_loss else (x,)
    y = fwd_ref(*inputs, **cfg)
    gout = np.asarray(rng.standard_normal(y.shape)).astype(dtype)
    t_inputs = tuple(torch.from_numpy(a) for a in inputs)
    xg = t_inputs[0].clone().requires_grad_(True)
    gt = torch.from_numpy(gout)
    tol = 1e-12 if dtype == "float64" else 1e-5
    assert np.allclose(y, fwd_torch(*t_inputs, **cfg).numpy(), rtol=tol, atol=tol), f"{name}: forward differs from torch"
    (gx_t,) = torch.autograd.grad(fwd_torch(xg, *t_inputs[1:], **cfg), (xg,), gt)
    gx = bwd_ref(gout, *inputs, **cfg)
    assert np.allclose(gx, gx_t.numpy(), rtol=tol, atol=tol), f"{name}: backward differs from torch"

    def torch_fwd():
        with torch.no_grad():
            fwd_torch(*t_inputs, **cfg)

    def torch_fwd_bwd():
        torch.autograd.grad(fwd_torch(xg, *t_inputs[1:], **cfg), (xg,), gt)

    def ref_fwd():
        fwd_ref(*inputs, **cfg)

    def ref_fwd_bwd():
        fwd_ref(*inputs, **cfg)
        bwd_ref(gout, *inputs, **cfg)

    kind = "loss" if is_loss else "act"
    described = ", ".join(f"{k}={v}" for k, v in cfg.items())
    shape_text = "x".join(map(str, shape)) + (f", {described}" if described else "")
    return timed_rows(name, shape_text, dtype, kind, (torch_fwd, torch_fwd_bwd), (ref_fwd, ref_fwd_bwd), args)


def upsample_rows(np, torch, refimpl, case, dtype, args) -> list[Row]:
    """conv_transpose2d and adaptive_avg_pool2d (issue 12): forward and forward+backward against torch."""
    import torch.nn.functional as F

    name, op, in_shape, cfg = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(in_shape).astype(dtype)
    if op == "conv_transpose2d":
        cfg = dict(cfg)
        out, k = cfg.pop("out"), cfg.pop("k")
        w = (rng.standard_normal((in_shape[1], out, k, k)) / np.sqrt(in_shape[1] * k * k)).astype(dtype)
        b = rng.standard_normal(out).astype(dtype)
        args_np, fwd_torch = (x, w, b), F.conv_transpose2d
        shape = "N{} C{} {}x{}".format(*in_shape) + f" -> {out}, k{k} s{cfg['stride']} p{cfg['padding']} op{cfg['output_padding']}"
    else:
        args_np, fwd_torch = (x,), F.adaptive_avg_pool2d
        shape = "N{} C{} {}x{}".format(*in_shape) + " -> {}x{}".format(*cfg["output_size"])
    fwd_ref, bwd_ref = getattr(refimpl, op), getattr(refimpl, op + "_backward")
    y = fwd_ref(*args_np, **cfg)
    gout = rng.standard_normal(y.shape).astype(dtype)
    ts = [torch.from_numpy(a) for a in args_np]
    tg = [t.clone().requires_grad_(True) for t in ts]
    gt = torch.from_numpy(gout)
    tol = 1e-9 if dtype == "float64" else 2e-3
    assert np.allclose(y, fwd_torch(*ts, **cfg).numpy(), rtol=tol, atol=tol), f"{name}: forward differs from torch"
    grads_t = torch.autograd.grad(fwd_torch(*tg, **cfg), tg, gt)
    grads = bwd_ref(gout, *args_np, **cfg)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for a, t in zip(grads, grads_t):
        assert np.allclose(a, t.numpy(), rtol=tol, atol=tol * max(1.0, float(np.abs(a).max()))), f"{name}: backward differs from torch"

    def torch_fwd():
        with torch.no_grad():
            fwd_torch(*ts, **cfg)

    def torch_fwd_bwd():
        torch.autograd.grad(fwd_torch(*tg, **cfg), tg, gt)

    def ref_fwd():
        fwd_ref(*args_np, **cfg)

    def ref_fwd_bwd():
        fwd_ref(*args_np, **cfg)
        bwd_ref(gout, *args_np, **cfg)

    # conv_transpose2d's flops are those of the conv2d it is the adjoint of
    flops = 2.0 * x.size * w.shape[1] * w.shape[2] * w.shape[3] if op == "conv_transpose2d" else None
    kind = "convT" if op == "conv_transpose2d" else "adaptive"
    return timed_rows(name, shape, dtype, kind, (torch_fwd, torch_fwd_bwd), (ref_fwd, ref_fwd_bwd), args, flops)


def conv_backward_memory(np, refimpl, fast, case, dtype) -> dict:
    """Peak bytes numpy allocates inside each conv2d_backward (tracemalloc sees numpy's allocations)."""
    from refimpl import convolution  # the derivation
    import tracemalloc

    name, n, c, hw, o, k, s, p, d, g = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
    w = rng.standard_normal((o, c // g, k, k)).astype(dtype)
    cfg = dict(stride=s, padding=p, dilation=d, groups=g)
    gout = rng.standard_normal(refimpl.conv2d(x, w, **cfg).shape).astype(dtype)
    out = {"input+output": x.nbytes + gout.nbytes}
    for label, fn in (("fast", fast.conv2d_backward), ("derivation", convolution.conv2d_backward)):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        result = fn(gout, x, w, **cfg)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        del result
        out[label] = peak
    return out


# --------------------------------------------------------------------------- report


def fmt_time(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def fmt_gflops(gf: float) -> str:
    return f"{gf:.1f}" if gf >= 1 else f"{gf:.3f}"


COLUMNS = ["case", "shape", "dtype", "pass", "torch", "refimpl", "refimpl/torch", "refimpl GFLOP/s", "% GEMM peak", "torch GFLOP/s", "spread"]


def row_cells(r: Row, peaks: dict) -> list[str]:
    cells = [r.case, r.shape, r.dtype, r.pass_, fmt_time(r.torch.median), fmt_time(r.ref.median), f"{r.ratio:.2f}"]
    if r.flops:
        gf_ref, gf_torch = r.flops / r.ref.median / 1e9, r.flops / r.torch.median / 1e9
        cells += [fmt_gflops(gf_ref), f"{100 * gf_ref / peaks[r.dtype][0]:.0f}%", fmt_gflops(gf_torch)]
    else:
        cells += ["", "", ""]
    cells.append(f"{100 * r.spread:.0f}%")
    return cells


def summarize(rows: list[Row], memory: dict, peaks: dict) -> tuple[list[str], list[tuple[str, bool | None, str]]]:
    """Median ratios per dtype and pass, and the targets of the issue: (text, held?, detail)."""
    lines, targets = [], []
    dtypes = sorted({r.dtype for r in rows}, reverse=True)
    for dt in dtypes:
        for kind, pass_ in (("conv", "fwd"), ("conv", "fwd+bwd derivation"), ("conv", "fwd+bwd fast"), ("pool", "fwd"), ("pool", "fwd+bwd"),
                            ("norm", "fwd"), ("norm", "fwd+bwd"),
                            ("act", "fwd"), ("act", "fwd+bwd"), ("loss", "fwd"), ("loss", "fwd+bwd"),
                            ("convT", "fwd"), ("convT", "fwd+bwd"), ("adaptive", "fwd"), ("adaptive", "fwd+bwd")):
            ratios = [r.ratio for r in rows if r.dtype == dt and r.kind == kind and r.pass_ == pass_]
            if ratios:
                lines.append(
                    f"{dt} {kind} {pass_}: median refimpl/torch {statistics.median(ratios):.2f} "
                    f"(best {min(ratios):.2f}, worst {max(ratios):.2f}, {len(ratios)} cases)"
                )
    for dt in dtypes:
        fb = [r for r in rows if r.dtype == dt and r.kind == "conv" and r.pass_ == "fwd+bwd fast"]
        if fb:
            worst = max(fb, key=lambda r: r.ratio)
            med = statistics.median(r.ratio for r in fb)
            if dt == "float64":
                targets.append((f"conv fwd+bwd faster than torch on every shape ({dt})", worst.ratio < 1,
                                f"worst {worst.ratio:.2f} ({worst.case})"))
            else:
                targets.append((f"conv fwd+bwd faster than torch at the median ({dt})", med < 1, f"median {med:.2f}"))
                targets.append((f"no conv shape worse than 2x torch ({dt})", worst.ratio <= 2,
                                f"worst {worst.ratio:.2f} ({worst.case})"))
        resnet = [r for r in fb if r.case == RESNET]
        if resnet:
            frac = resnet[0].flops / resnet[0].ref.median / 1e9 / peaks[dt][0]
            targets.append((f"ResNet-style fwd+bwd >= 50% of GEMM peak ({dt})", frac >= 0.5, f"{100 * frac:.0f}%"))
        pools = [r for r in rows if r.dtype == dt and r.kind == "pool" and r.pass_ == "fwd+bwd"]
        if pools:
            med = statistics.median(r.ratio for r in pools)
            worst = max(pools, key=lambda r: r.ratio)
            targets.append((f"pools fwd+bwd no slower than torch at the median, never worse than 2x ({dt})",
                            med <= 1 and worst.ratio <= 2, f"median {med:.2f}, worst {worst.ratio:.2f} ({worst.case})"))
    for dt, mem in memory.items():
        ratio = mem["fast"] / mem["input+output"]
        lines.append(
            f"peak extra memory of conv2d_backward, {RESNET}, {dt}: fast {mem['fast'] / 2**20:.0f} MiB "
            f"({ratio:.2f}x input+output), derivation {mem['derivation'] / 2**20:.0f} MiB "
            f"({mem['derivation'] / mem['input+output']:.2f}x); input+output = {mem['input+output'] / 2**20:.0f} MiB"
        )
        targets.append((f"conv backward peak extra memory at most a few (<= 3) x input+output ({dt})", ratio <= 3,
                        f"fast {ratio:.2f}x, derivation {mem['derivation'] / mem['input+output']:.2f}x"))
    return lines, targets


def markdown(header: list[str], rows: list[Row], peaks: dict, lines: list[str], targets) -> str:
    out = ["## Benchmark: refimpl vs torch (CPU)", ""]
    out += [f"- {h}" for h in header] + [""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join("---" if i < 4 else "---:" for i in range(len(COLUMNS))) + "|")
    for r in rows:
        out.append("| " + " | ".join(row_cells(r, peaks)) + " |")
    out += [""] + [f"- {line}" for line in lines] + ["", "Targets:", ""]
    out += [f"- {'✅' if ok else '❌'} {text}: {detail}" for text, ok, detail in targets]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    # numpy's BLAS reads its thread count when it is loaded: set it before the first numpy import
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sys.path.insert(0, str(ROOT))

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    import refimpl
    from refimpl import fast

    global STAT, CLOCK
    STAT = args.stat
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    console = Console()
    if not console.is_terminal:
        console = Console(width=250)
    dtypes = ["float64", "float32"] if args.dtype == "both" else [args.dtype]
    wanted = [s.strip().lower() for s in args.only.split(",") if s.strip()]

    def selected(name):
        return not wanted or any(w in name.lower() for w in wanted)

    blas = blas_description(np)
    peaks = {}
    for dt in dtypes:
        peaks[dt] = gemm_peak(np, torch, dt, args.repeat)
    header = [
        f"numpy {np.__version__}, BLAS {blas.get('name')}"
        + (f", core {blas['core']}" if "core" in blas else "")
        + (f", {blas['threads']} threads" if "threads" in blas else "")
        + f", OPENBLAS_CORETYPE={blas['OPENBLAS_CORETYPE']}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} cores",
        "GEMM peak (2048^2 matmul, best of samples): "
        + "; ".join(f"{dt} numpy {peaks[dt][0]:.1f} GFLOP/s, torch {peaks[dt][1]:.1f} GFLOP/s" for dt in dtypes),
        f"{args.stat} of {args.repeat} samples of >= {args.min_time:g} s each"
        + (" of CPU time (--clock cpu)" if args.clock == "cpu" else "")
        + f"; load average at start {load_average()}",
    ]
    for h in header:
        console.print(h)

    rows: list[Row] = []
    for dt in dtypes:
        for case in CONV_SHAPES:
            if selected(case[0]):
                console.print(f"[dim]conv2d {case[0]} {dt}...[/dim]")
                rows += conv_rows(np, torch, refimpl, fast, case, dt, args)
        for case in POOL_CASES:
            if selected(case[0]):
                console.print(f"[dim]{case[0]} {dt}...[/dim]")
                rows += pool_rows(np, torch, refimpl, case, dt, args)
        for case in NORM_CASES:
            if selected(case[0]):
                console.print(f"[dim]{case[0]} {dt}...[/dim]")
                rows += norm_rows(np, torch, refimpl, case, dt, args)
        for case in ACT_CASES:
            if selected(case[0]):
                console.print(f"[dim]{case[0]} {dt}...[/dim]")
                rows += act_rows(np, torch, refimpl, case, dt, args)
        for case in UPSAMPLE_CASES:
            if selected(case[0]):
                console.print(f"[dim]{case[0]} {dt}...[/dim]")
                rows += upsample_rows(np, torch, refimpl, case, dt, args)

    memory = {}
    if not args.no_memory:
        resnet = next(c for c in CONV_SHAPES if c[0] == RESNET)
        if selected(RESNET):
            for dt in dtypes:
                console.print(f"[dim]peak memory of conv2d_backward, {dt}...[/dim]")
                memory[dt] = conv_backward_memory(np, refimpl, fast, resnet, dt)

    lines, targets = summarize(rows, memory, peaks)
    table = Table(title="refimpl vs torch (CPU): median time, ratio < 1 means refimpl is faster")
    for i, col in enumerate(COLUMNS):
        table.add_column(col, justify="left" if i < 4 else "right")
    prev = None
    for r in rows:
        if prev is not None and (r.case, r.dtype) != prev:
            table.add_section()
        prev = (r.case, r.dtype)
        table.add_row(*row_cells(r, peaks))
    console.print(table)
    for line in lines:
        console.print(line)
    console.print("Targets:")
    for text, ok, detail in targets:
        console.print(f"  {'[green]held[/green]' if ok else '[red]missed[/red]'}  {text}: {detail}")
    if args.markdown:
        args.markdown.write_text(markdown(header, rows, peaks, lines, targets))
        console.print(f"Markdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
