"""refimpl's forward-mode rules (``NAME_jvp``, issue 13 section 2), for every op of the contract.

1. Each ``NAME_jvp`` against ``torch.func.jvp`` of the torch op, float64 and float32, on fixed
   configurations (stride, padding, dilation, groups, None bias and weight, every reduction,
   every dim, ties for max-pool, zeros for relu and leaky_relu), with a tolerance from the
   dtype's unit roundoff and the op's fan-in (not tuned).
2. The forward-reverse identity ``<jvp(dx), dy> == <dx, vjp(dy)>`` against refimpl's own
   backward rules, on random cases, every op.
3. The output is the forward's, exactly; a None tangent is a zero one; inputs are not modified.
4. Bad tangents raise naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import refimpl

#: torch.func.jvp scripts a helper internally; its deprecation notice is torch's business, not this test's
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

DTYPES = [np.float64, np.float32]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny cases: on a busy machine torch's extra threads cost far more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Case:
    """One call: ``refimpl.<op>_jvp(primals, tangents, **config)`` and the torch function of the same op."""

    op: str
    primals: tuple
    tangents: tuple
    config: dict
    torch_fn: Callable  # torch_fn(*primals as tensors, None where None) -> output
    fan_in: int  # terms summed into one output element (bounds the rounding error)
    constant: tuple = ()  # positions not differentiated (targets)
    label: str = field(default="")

    def __str__(self):
        return f"{self.op} {self.label or self.config}"


def _rng(seed):
    return np.random.default_rng(seed)


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _like(rng, arrays, dtype, skip=()):
    return tuple(None if a is None or i in skip else _normal(rng, a.shape, dtype) for i, a in enumerate(arrays))


# ----------------------------------------------------------------------------- the cases

CONV2D = [  # (stride, padding, dilation, groups, bias)
    ((1, 1), (0, 0), (1, 1), 1, True),
    ((2, 1), (1, 2), (1, 1), 1, False),
    ((2, 2), (2, 1), (2, 1), 2, True),
    ((1, 3), (0, 1), (1, 2), 4, True),
]


def _conv_cases(dtype, seed=0):
    cases = []
    for k, (s, p, d, g, with_bias) in enumerate(CONV2D):
        rng = _rng(seed + k)
        x, w = _normal(rng, (2, 4, 7, 8), dtype), _normal(rng, (4, 4 // g, 3, 2), dtype)
        b = _normal(rng, (4,), dtype) if with_bias else None
        cfg = dict(stride=s, padding=p, dilation=d, groups=g)
        cases.append(Case("conv2d", (x, w, b), _like(rng, (x, w, b), dtype), cfg,
                          lambda x, w, b, c=cfg: F.conv2d(x, w, b, **c), 2 * (4 // g) * 6 + 1))
    rng = _rng(seed + 10)
    x, w, b = _normal(rng, (2, 4, 9), dtype), _normal(rng, (6, 2, 3), dtype), _normal(rng, (6,), dtype)
    cfg = dict(stride=(2,), padding=(1,), dilation=(2,), groups=2)
    cases.append(Case("conv1d", (x, w, b), _like(rng, (x, w, b), dtype), cfg,
                      lambda x, w, b, c=cfg: F.conv1d(x, w, b, **c), 2 * 2 * 3 + 1))
    x, w = _normal(rng, (1, 2, 5, 4, 6), dtype), _normal(rng, (3, 2, 2, 3, 2), dtype)
    cfg3 = dict(stride=(1, 2, 1), padding=(1, 0, 1), dilation=(2, 1, 1), groups=1)
    for b in (None, _normal(rng, (3,), dtype)):
        cases.append(Case("conv3d", (x, w, b), _like(rng, (x, w, b), dtype), cfg3,
                          lambda x, w, b: F.conv3d(x, w, b, **cfg3), 2 * 2 * 12 + 1))
    for k, (s, p, op, d, g, with_bias) in enumerate([
        ((2, 2), (1, 0), (1, 0), (1, 1), 1, True),
        ((1, 2), (0, 1), (0, 1), (2, 1), 2, False),
        ((2, 1), (1, 1), (2, 0), (3, 2), 2, True),  # output_padding >= stride (allowed by dilation > stride)
    ]):
        x, w = _normal(rng, (2, 4, 4, 5), dtype), _normal(rng, (4, 6 // g, 3, 2), dtype)
        b = _normal(rng, (6,), dtype) if with_bias else None
        cfg = dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)
        cases.append(Case("conv_transpose2d", (x, w, b), _like(rng, (x, w, b), dtype), cfg,
                          lambda x, w, b, c=cfg: F.conv_transpose2d(x, w, b, **c), 2 * (4 // g) * 6 + 1))
    return cases


def _pool_cases(dtype, seed=0):
    cases = []
    max_configs = [
        dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)),
        dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),  # overlapping windows
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(2, 1), ceil_mode=True),
        dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), ceil_mode=True),
    ]
    for k, cfg in enumerate(max_configs):
        rng = _rng(seed + k)
        for values, shape in (("ties", (2, 3, 7, 8)), ("random", (3, 7, 8))):
            # ties: few distinct values, so most windows hold several maxima (torch takes the first)
            x = (rng.integers(0, 3, shape) if values == "ties" else rng.standard_normal(shape)).astype(dtype)
            cases.append(Case("max_pool2d", (x,), _like(rng, (x,), dtype), cfg,
                              lambda x, c=cfg: F.max_pool2d(x, **c), 1, label=f"{values} {cfg}"))
    avg_configs = [
        dict(kernel_size=(2, 2)),
        dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), count_include_pad=False),
        dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True, divisor_override=5),
    ]
    for k, cfg in enumerate(avg_configs):
        rng = _rng(seed + 20 + k)
        x = _normal(rng, (2, 3, 7, 8), dtype)
        cases.append(Case("avg_pool2d", (x,), _like(rng, (x,), dtype), cfg, lambda x, c=cfg: F.avg_pool2d(x, **c), 9))
    for k, size in enumerate([(3, 5), (1, 1), (7, 4)]):
        rng = _rng(seed + 30 + k)
        x = _normal(rng, (2, 3, 7, 8), dtype)
        cases.append(Case("adaptive_avg_pool2d", (x,), _like(rng, (x,), dtype), dict(output_size=size),
                          lambda x, s=size: F.adaptive_avg_pool2d(x, s), 56))
    return cases


def _with_zeros(rng, shape, dtype):
    x = _normal(rng, shape, dtype)
    x.flat[:: 3] = 0  # relu'(0) = 0, leaky_relu'(0) = slope, as torch
    x.flat[1:: 7] = -0.0
    return x


def _elementwise_cases(dtype, seed=0):
    rng = _rng(seed)
    cases = []
    for shape in ((2, 3, 4), ()):
        x = _with_zeros(rng, shape, dtype) if shape else np.array(0.0, dtype=dtype)
        dx = _like(rng, (x,), dtype)
        cases += [
            Case("relu", (x,), dx, {}, F.relu, 1, label=f"{shape}"),
            Case("sigmoid", (x,), dx, {}, torch.sigmoid, 1, label=f"{shape}"),
            Case("tanh", (x,), dx, {}, torch.tanh, 1, label=f"{shape}"),
        ]
        for slope in (0.01, -0.3):
            cases.append(Case("leaky_relu", (x,), dx, dict(negative_slope=slope),
                              lambda x, s=slope: F.leaky_relu(x, s), 1))
        for approximate in ("none", "tanh"):
            cases.append(Case("gelu", (np.asarray(x * 3),), dx, dict(approximate=approximate),
                              lambda x, a=approximate: F.gelu(x, approximate=a), 4))
    x = _normal(rng, (2, 3, 4, 5), dtype)
    cases.append(Case("flatten", (x,), _like(rng, (x,), dtype), {}, lambda x: torch.flatten(x, 1), 1))
    x = _normal(rng, (5, 4, 6), dtype) * 3
    for name in ("softmax", "log_softmax"):
        for dim in (0, 1, 2, -1, -3):
            cases.append(Case(name, (x,), _like(rng, (x,), dtype), dict(dim=dim),
                              lambda x, f=getattr(F, name), d=dim: f(x, dim=d), 2 * x.shape[dim]))
        cases.append(Case(name, (np.array(0.7, dtype=dtype),), (np.array(1.5, dtype=dtype),), dict(dim=0),
                          lambda x, f=getattr(F, name): f(x, dim=0), 2, label="0-d"))
    x, w = _normal(rng, (5, 3, 4), dtype), _normal(rng, (6, 4), dtype)
    for b in (_normal(rng, (6,), dtype), None):
        cases.append(Case("linear", (x, w, b), _like(rng, (x, w, b), dtype), {}, F.linear, 2 * 4 + 1,
                          label="bias" if b is not None else "no bias"))
    x1 = _normal(rng, (4,), dtype)
    cases.append(Case("linear", (x1, w), _like(rng, (x1, w), dtype), {}, lambda x, w: F.linear(x, w), 9, label="1-d x"))
    return cases


def _loss_cases(dtype, seed=0):
    rng = _rng(seed)
    cases = []
    for reduction in ("mean", "sum", "none"):
        shape = (3, 4, 2)
        n = math.prod(shape) if reduction != "none" else 1
        p = rng.uniform(0.05, 0.95, shape).astype(dtype)
        y = rng.uniform(0, 1, shape).astype(dtype)
        y.flat[::4] = 1
        z = _normal(rng, shape, dtype) * 4
        cfg = dict(reduction=reduction)
        cases += [
            Case("binary_cross_entropy", (p, y), (_normal(rng, shape, dtype), None), cfg,
                 lambda p, y, r=reduction: F.binary_cross_entropy(p, y, reduction=r), 4 * n, constant=(1,)),
            Case("binary_cross_entropy_with_logits", (z, y), (_normal(rng, shape, dtype), None), cfg,
                 lambda z, y, r=reduction: F.binary_cross_entropy_with_logits(z, y, reduction=r), 4 * n, constant=(1,)),
            Case("mse_loss", (z, p), (_normal(rng, shape, dtype), None), cfg,
                 lambda a, t, r=reduction: F.mse_loss(a, t, reduction=r), 4 * n, constant=(1,)),
        ]
        logits, target = _normal(rng, (6, 5), dtype) * 3, rng.integers(0, 5, 6)
        cases.append(Case("cross_entropy", (logits, target), (_normal(rng, (6, 5), dtype), None), cfg,
                          lambda x, t, r=reduction: F.cross_entropy(x, t, reduction=r),
                          2 * 5 * (6 if reduction != "none" else 1), constant=(1,)))
    # the clamps: p at 0 and 1 (torch's backward convention, which its forward AD shares)
    p = np.array([0.0, 1.0, 0.5, 1e-13, 0.3], dtype=dtype)
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.25], dtype=dtype)
    cases.append(Case("binary_cross_entropy", (p, y), (np.ones(5, dtype=dtype), None), dict(reduction="none"),
                      lambda p, y: F.binary_cross_entropy(p, y, reduction="none"), 4, constant=(1,), label="clamps"))
    return cases


def _norm_cases(dtype, seed=0):
    rng = _rng(seed)
    cases = []
    for shape in ((6, 3), (4, 3, 5), (2, 3, 4, 5)):
        for with_w, with_b in ((True, True), (False, False), (True, False), (False, True)):
            x = _normal(rng, shape, dtype) * 2 + 1
            w = _normal(rng, (3,), dtype) if with_w else None
            b = _normal(rng, (3,), dtype) if with_b else None
            m = math.prod(shape) // 3
            cases.append(Case("batch_norm", (x, w, b), _like(rng, (x, w, b), dtype), dict(eps=1e-5),
                              lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-5), 4 * m,
                              label=f"{shape} weight={with_w} bias={with_b}"))
    for shape, normalized in (((4, 6), (6,)), ((2, 3, 4, 5), (4, 5)), ((3, 4, 5), (3, 4, 5)), ((7,), (7,))):
        for with_w, with_b in ((True, True), (False, False), (False, True)):
            x = _normal(rng, shape, dtype) * 2 - 1
            w = _normal(rng, normalized, dtype) if with_w else None
            b = _normal(rng, normalized, dtype) if with_b else None
            cfg = dict(normalized_shape=normalized, eps=1e-5)
            cases.append(Case("layer_norm", (x, w, b), _like(rng, (x, w, b), dtype), cfg,
                              lambda x, w, b, n=normalized: F.layer_norm(x, n, w, b, eps=1e-5), 4 * math.prod(normalized),
                              label=f"{shape} {normalized} weight={with_w} bias={with_b}"))
    # partial tangents: None for a present argument is a zero tangent
    x, w, b = _normal(rng, (4, 3, 5), dtype), _normal(rng, (3,), dtype), _normal(rng, (3,), dtype)
    cases.append(Case("batch_norm", (x, w, b), (None, _normal(rng, (3,), dtype), None), dict(eps=1e-3),
                      lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True, eps=1e-3), 40, label="dweight only"))
    return cases


def all_cases(dtype, seed=0):
    return _conv_cases(dtype, seed) + _pool_cases(dtype, seed) + _elementwise_cases(dtype, seed) + \
        _loss_cases(dtype, seed) + _norm_cases(dtype, seed)


def _jvp(case):
    return getattr(refimpl, case.op + "_jvp")(case.primals, case.tangents, **case.config)


def _tolerance(dtype, fan_in):
    """Rounding of a sum of ``fan_in`` terms in both implementations: a few ``fan_in * u``."""
    return 8 * (fan_in + 2) * np.finfo(dtype).eps / 2


def test_every_op_of_the_contract_has_a_jvp_and_a_case():
    ops = {case.op for case in all_cases(np.float64)}
    assert ops == set(refimpl.CONTRACT)
    for op in refimpl.CONTRACT:
        assert op + "_jvp" in refimpl.__all__ and callable(getattr(refimpl, op + "_jvp"))
        assert (getattr(refimpl, op + "_jvp").__doc__ or "").strip()
    assert not any(name.endswith("_jvp") for name in refimpl.CONTRACT)


# ----------------------------------------------------------------------------- 1. against torch.func.jvp


@pytest.mark.parametrize("dtype", DTYPES)
def test_jvp_matches_torch_func_jvp(dtype):
    failures = []
    for case in all_cases(dtype):
        differentiated = [i for i, p in enumerate(case.primals) if p is not None and i not in case.constant]

        def fn(*diff, case=case, differentiated=differentiated):
            args = [None if p is None else torch.from_numpy(p) for p in case.primals]
            for i, t in zip(differentiated, diff):
                args[i] = t
            return case.torch_fn(*args)

        primals = tuple(torch.from_numpy(case.primals[i].copy()) for i in differentiated)
        tangents = tuple(
            torch.zeros_like(p) if case.tangents[i] is None else torch.from_numpy(case.tangents[i].copy())
            for i, p in zip(differentiated, primals)
        )
        want_out, want_tangent = torch.func.jvp(fn, primals, tangents)
        out, tangent = _jvp(case)
        for got, want, what in ((out, want_out, "output"), (tangent, want_tangent, "tangent")):
            want = want.detach().numpy()
            if type(got) is not np.ndarray or got.dtype != np.dtype(dtype) or got.shape != want.shape:
                failures.append(f"{case}: {what} {type(got).__name__} {getattr(got, 'dtype', '')} "
                                f"{getattr(got, 'shape', '')}, torch {want.dtype} {want.shape}")
                continue
            bound = _tolerance(dtype, case.fan_in) * max(1.0, float(np.max(np.abs(want), initial=0)))
            error = float(np.max(np.abs(got.astype(np.float64) - want), initial=0))
            if not error <= bound:
                failures.append(f"{case}: {what} off by {error:.3g} > {bound:.3g}")
    assert not failures, "\n".join(failures)


def test_max_pool2d_jvp_takes_the_first_maximum_on_ties():
    x = np.array([[[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0]]]])  # one window of four 3's
    dx = np.array([[[[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]]])
    y, dy = refimpl.max_pool2d_jvp((x,), (dx,), kernel_size=(2, 3))
    assert y.tolist() == [[[[3.0]]]] and dy.tolist() == [[[[20.0]]]]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_jvp_routes_like_torch_through_nan_and_inf(dtype):
    """The arg-max torch's forward AD gathers from (its CPU kernel's indices): a NaN wins, the last of several."""
    rng = _rng(5)
    x = rng.integers(0, 3, (2, 3, 7, 8)).astype(dtype)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = np.nan
    x[1, 2, 4, 4] = np.inf
    x[1, 1, 0, :] = -np.inf
    dx = _normal(rng, x.shape, dtype)
    for cfg in (dict(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)), dict(kernel_size=(2, 3), stride=(2, 2))):
        y, dy = refimpl.max_pool2d_jvp((x,), (dx,), **cfg)
        want_y, want_dy = torch.func.jvp(lambda t: F.max_pool2d(t, **cfg), (torch.from_numpy(x),), (torch.from_numpy(dx),))
        np.testing.assert_array_equal(y, want_y.numpy())
        np.testing.assert_array_equal(dy, want_dy.numpy())


def test_relu_and_leaky_relu_jvp_at_zero():
    x = np.array([-1.0, -0.0, 0.0, 2.0, np.nan])
    dx = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert refimpl.relu_jvp((x,), (dx,))[1].tolist()[:4] == [0.0, 0.0, 0.0, 4.0]
    assert refimpl.relu_jvp((x,), (dx,))[1][4] == 5.0  # nan <= 0 is false: the tangent passes, as torch
    np.testing.assert_array_equal(refimpl.leaky_relu_jvp((x,), (dx,), negative_slope=0.5)[1], [0.5, 1.0, 1.5, 4.0, 2.5])


# ----------------------------------------------------------------------------- 2. forward-reverse identity


def _backward_grads(case, grad_output):
    grads = getattr(refimpl, case.op + "_backward")(grad_output, *case.primals, **case.config)
    grads = grads if isinstance(grads, tuple) else (grads,)
    differentiated = [i for i, p in enumerate(case.primals) if i not in case.constant]
    return dict(zip(differentiated, grads))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [1, 2])
def test_forward_reverse_identity_with_refimpls_backward(dtype, seed):
    """<J dx, dy> == <dx, J^T dy>, J^T dy from refimpl's own NAME_backward, every op, fresh random values."""
    rng = _rng(100 + seed)
    failures = []
    for case in all_cases(dtype, seed):
        tangents = tuple(
            None if p is None or i in case.constant else _normal(rng, p.shape, dtype) for i, p in enumerate(case.primals)
        )
        out, tangent = getattr(refimpl, case.op + "_jvp")(case.primals, tangents, **case.config)
        dy = _normal(rng, np.shape(out), dtype)
        grads = _backward_grads(case, dy)
        lhs_terms = tangent.astype(np.float64) * dy
        rhs_terms = [t.astype(np.float64) * grads[i] for i, t in enumerate(tangents) if t is not None]
        lhs, rhs = lhs_terms.sum(), sum(r.sum() for r in rhs_terms)
        scale = np.abs(lhs_terms).sum() + sum(np.abs(r).sum() for r in rhs_terms)
        bound = _tolerance(dtype, case.fan_in) * max(scale, 1e-300) * 4
        if not abs(lhs - rhs) <= bound:
            failures.append(f"{case}: <jvp, dy> = {lhs!r}, <dx, vjp> = {rhs!r}, bound {bound:.3g}")
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- 3. output, None tangents, no mutation


@pytest.mark.parametrize("dtype", DTYPES)
def test_output_is_the_forwards_and_inputs_are_not_modified(dtype):
    for case in all_cases(dtype, seed=3):
        arrays = [a for a in case.primals + case.tangents if a is not None]
        copies = [a.copy() for a in arrays]
        out, tangent = _jvp(case)
        forward = getattr(refimpl, case.op)(*case.primals, **case.config)
        assert type(out) is np.ndarray and out.dtype == forward.dtype and out.shape == forward.shape, str(case)
        np.testing.assert_array_equal(out, forward, err_msg=str(case))
        assert type(tangent) is np.ndarray and tangent.dtype == out.dtype and tangent.shape == out.shape, str(case)
        for a, c in zip(arrays, copies):
            np.testing.assert_array_equal(a, c, err_msg=f"{case}: an input was modified")
        # every tangent None: a zero output tangent
        none = tuple(None for _ in case.primals)
        out0, zero = getattr(refimpl, case.op + "_jvp")(case.primals, none, **case.config)
        np.testing.assert_array_equal(out0, forward)
        assert zero.shape == out.shape and not np.any(zero), str(case)


def test_a_none_tangent_is_a_zero_tangent():
    rng = _rng(4)
    x, w, b = _normal(rng, (2, 4, 6, 6), np.float64), _normal(rng, (3, 4, 3, 3), np.float64), _normal(rng, (3,), np.float64)
    dx, dw, db = _normal(rng, x.shape, np.float64), _normal(rng, w.shape, np.float64), _normal(rng, b.shape, np.float64)
    full = refimpl.conv2d_jvp((x, w, b), (dx, dw, db), padding=1)[1]
    parts = [
        refimpl.conv2d_jvp((x, w, b), (dx, None, None), padding=1)[1],
        refimpl.conv2d_jvp((x, w, b), (None, dw, None), padding=1)[1],
        refimpl.conv2d_jvp((x, w, b), (None, None, db), padding=1)[1],
    ]
    np.testing.assert_allclose(sum(parts), full, rtol=1e-13, atol=1e-13)
    zeros = refimpl.conv2d_jvp((x, w, b), (dx, np.zeros_like(w), np.zeros_like(b)), padding=1)[1]
    np.testing.assert_array_equal(zeros, parts[0])
    # the optional arguments may be left out, as in a positional call of the forward
    np.testing.assert_array_equal(refimpl.conv2d_jvp((x, w), (dx, dw), padding=1)[1],
                                  refimpl.conv2d_jvp((x, w, None), (dx, dw, None), padding=1)[1])
    np.testing.assert_array_equal(refimpl.batch_norm_jvp((x,), (dx,))[1], refimpl.batch_norm_jvp((x, None, None), (dx, None, None))[1])


# ----------------------------------------------------------------------------- 4. bad tangents


def _bad_calls():
    """(op, call, exception, pattern): a wrong-shape and a wrong-dtype tangent for each differentiated argument
    of each op, a tangent that is not an array, a tangent for a target, and the structural errors."""
    calls = []
    for case in all_cases(np.float64):
        if case.op in {c[0] for c in calls}:
            continue
        jvp = getattr(refimpl, case.op + "_jvp")
        call = lambda tangents, j=jvp, c=case: lambda: j(c.primals, tangents, **c.config)  # noqa: E731
        names = ("input", "target") if case.constant else ("x", "weight", "bias")
        good = case.tangents
        for i, primal in enumerate(case.primals):
            if primal is None or i in case.constant:
                continue
            name = names[i]
            replaced = lambda t, i=i: good[:i] + (t,) + good[i + 1:]  # noqa: E731
            calls += [
                (case.op, call(replaced(np.zeros(primal.shape + (1,)))), ValueError, f"tangent of {name} must have {name}'s shape"),
                (case.op, call(replaced(np.zeros(primal.shape, np.float32))), TypeError, f"tangent of {name} must have {name}'s dtype"),
                (case.op, call(replaced(primal.tolist())), TypeError, f"tangent of {name} must be a numpy.ndarray"),
            ]
        if case.constant:
            calls.append((case.op, call((good[0], np.zeros(np.shape(case.primals[1])))), ValueError, "tangent of target must be None"))
        calls += [
            (case.op, call(good + (None,) * 3), ValueError, "tangents must have one entry per primal"),
            (case.op, lambda j=jvp, c=case: j(c.primals[0], c.tangents, **c.config), TypeError, "primals must be a tuple"),
        ]
    return calls


@pytest.mark.parametrize("op, call, exception, pattern", _bad_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_bad_tangents_raise_naming_the_argument(op, call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


@pytest.mark.parametrize("op", ["conv2d", "conv1d", "conv3d", "conv_transpose2d", "linear", "batch_norm", "layer_norm"])
def test_a_tangent_for_a_none_argument_is_refused(op):
    case = next(c for c in all_cases(np.float64) if c.op == op and c.primals[-1] is not None)
    primals = case.primals[:-1] + (None,)
    tangents = case.tangents[:-1] + (np.zeros_like(case.primals[-1]),)
    with pytest.raises(ValueError, match="tangent of bias must be None where bias is None"):
        getattr(refimpl, op + "_jvp")(primals, tangents, **case.config)


def test_bad_primals_raise_as_the_forward_does():
    x = np.zeros((2, 3, 4, 4))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        refimpl.conv2d_jvp((x, np.zeros((4, 1, 3, 3))), (None, None), groups=2)
    with pytest.raises(TypeError, match="x must have dtype"):
        refimpl.relu_jvp((x.astype(np.int64),), (None,))
    with pytest.raises(ValueError, match="padding must be at most half"):
        refimpl.max_pool2d_jvp((x,), (x,), kernel_size=2, padding=2)
    with pytest.raises(ValueError, match="primals must hold"):
        refimpl.conv2d_jvp((x,), (x,))
