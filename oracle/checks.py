"""The checks, each ``check(impl, spec, case) -> Verdict``, shared by the pytest suite and ``bpcheck verify``.

    forward             the implementation's forward vs torch
    backward            its backward vs torch autograd
    finite_differences  its backward vs central differences of its own forward (float64)
    adjoint             <F dx, dy> == <dx, F^T dy> for the inputs the op is linear in; no framework involved
    identities          the derivation's identities (oracle.identities)

A check never raises for anything the implementation does: a crash, hang,
mutation or malformed result is a FAIL verdict with its message, and
NotImplementedError is a NOT_IMPLEMENTED verdict.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from oracle import tolerances, torch_oracle
from oracle.case import Case
from oracle.implementation import Implementation, ImplementationFailure, NotImplementedForConfig, call, check_result
from oracle.ops import OpSpec, positional
from oracle.verdict import FAIL, NOT_IMPLEMENTED, PASS, SKIPPED, Mismatch, Verdict, locate

#: inputs with at most this many elements get the full Jacobian-vector product from finite differences
FULL_JACOBIAN_LIMIT = 64
#: random directions for larger inputs
FD_DIRECTIONS = 3


def _guarded(check: Callable[[Implementation, OpSpec, Case], Verdict]):
    """Turn the implementation's misbehaviour inside a check into a verdict (a failed backward gets its diagnosis)."""

    def run(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
        try:
            verdict = check(impl, spec, case)
        except NotImplementedForConfig as exc:
            return Verdict(spec.name, check.__name__, NOT_IMPLEMENTED, case, f"NotImplementedError: {exc}")
        except ImplementationFailure as exc:
            on = fd_case(spec, case) if check.__name__ == "finite_differences" else case  # the values it ran on
            verdict = Verdict(spec.name, check.__name__, FAIL, on, f"{exc.kind}: {exc.message}")
            if exc.kind == "hang":
                return verdict  # re-running it to diagnose would hang again
        return _diagnosed(verdict, impl, spec, case)

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


#: checks whose failures are diagnosed against the catalogue of classic mistakes (oracle.diagnosis)
DIAGNOSED_CHECKS = ("backward", "finite_differences")


def _diagnosed(verdict: Verdict, impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """``verdict``, with hints naming the classic mistakes its gradients match if it is a failed backward/FD check."""
    if verdict.failed and verdict.check in DIAGNOSED_CHECKS:
        from oracle.diagnosis import diagnose  # noqa: PLC0415 - loaded only once something fails

        on = fd_case(spec, case) if verdict.check == "finite_differences" else case  # the values the check used
        verdict.hints = [*verdict.hints, *diagnose(impl, spec, on)]
    return verdict


def _missing(impl: Implementation, spec: OpSpec, check: str, case: Case, *names: str) -> Verdict | None:
    absent = [n for n in names if impl.function(n) is None]
    if absent:
        return Verdict(spec.name, check, NOT_IMPLEMENTED, case, f"{impl.label} has no {' or '.join(absent)}")
    return None


def run_forward(impl: Implementation, spec: OpSpec, arrays: dict, case: Case) -> np.ndarray:
    return call(impl.function(spec.name), spec.name, positional(spec, arrays), case.config)


def run_backward(impl: Implementation, spec: OpSpec, grad_output: np.ndarray, arrays: dict, case: Case) -> list:
    return call(impl.function(spec.backward_name), spec.backward_name, [grad_output, *positional(spec, arrays)], case.config)


def _oracle(spec: OpSpec, case: Case, arrays: dict, with_grads: bool = True, dtype: str = "float64"):
    inputs = {name: arrays[name] for name in spec.inputs}
    return torch_oracle.run(
        spec.name, inputs, case.config, spec.differentiable, arrays["grad_output"] if with_grads else None, dtype=dtype
    )


def reference_errors(spec: OpSpec, case: Case, arrays: dict, output: np.ndarray, grads: dict) -> tuple:
    """``(output error, {name: gradient error})`` of torch's own kernel in the case's dtype, or ``(None, {})`` in float64.

    Feeds ``tolerances.float32_slack``: a float32 implementation may be as far from the float64 truth as
    torch's float32 kernel is on the same inputs.
    """
    if case.dtype == "float64":
        return None, {}
    out32, grads32 = _oracle(spec, case, arrays, with_grads=bool(grads), dtype=case.dtype)
    errors = {n: None if grads[n] is None else np.asarray(grads32[n], np.float64) - grads[n] for n in grads}
    return np.asarray(out32, np.float64) - output, errors


def _untrusted_torch(spec: OpSpec, check: str, case: Case) -> Verdict | None:
    reason = spec.torch_untrusted(case)
    if reason:
        return Verdict(spec.name, check, SKIPPED, case, f"torch is not trusted here ({reason}); finite differences and the adjoint identity decide")
    return None


@_guarded
def forward(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """The forward output vs torch (computed in float64)."""
    skip = _missing(impl, spec, "forward", case, spec.name) or _untrusted_torch(spec, "forward", case)
    if skip:
        return skip
    arrays = case.arrays()
    expected, _ = _oracle(spec, case, arrays, with_grads=False)
    error, _ = reference_errors(spec, case, arrays, expected, {})
    return compare_forward(impl, spec, case, arrays, expected, error)


def compare_forward(
    impl: Implementation, spec: OpSpec, case: Case, arrays: dict, expected: np.ndarray, reference_error=None
) -> Verdict:
    """The forward on ``arrays`` vs a known ``expected`` output (torch's, live or from a stored corpus).

    ``reference_error``: torch's own error in the case's dtype (see ``reference_errors``), if known.
    Raises what ``call``/``check_result`` raise; the callers turn that into a verdict.
    """
    (got,) = check_result(run_forward(impl, spec, arrays, case), spec.name, [("output", expected)], case.dtype)
    tolerance = tolerances.for_sum(case.dtype, spec.fan_in(case), expected, reference_error)
    mismatch = locate("output", got, expected, tolerance)
    return Verdict(spec.name, "forward", FAIL if mismatch else PASS, case, mismatch=mismatch)


def _expected_grads(spec: OpSpec, grads: dict) -> list[tuple[str, np.ndarray | None]]:
    return [(f"grad_{name}", grads[name]) for name in spec.differentiable]


@_guarded
def backward(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """Every gradient of the backward vs torch autograd (computed in float64)."""
    skip = _missing(impl, spec, "backward", case, spec.backward_name) or _untrusted_torch(spec, "backward", case)
    if skip:
        return skip
    arrays = case.arrays()
    output, grads = _oracle(spec, case, arrays)
    _, errors = reference_errors(spec, case, arrays, output, grads)
    return compare_backward(impl, spec, case, arrays, grads, errors)


def compare_backward(
    impl: Implementation, spec: OpSpec, case: Case, arrays: dict, grads: dict, reference_errors: dict | None = None
) -> Verdict:
    """The backward on ``arrays`` vs known gradients ``{input name: gradient or None}`` (torch's, live or stored).

    ``reference_errors``: torch's own error per gradient in the case's dtype, if known.
    Raises what ``call``/``check_result`` raise; the callers turn that into a verdict.
    """
    reference_errors = reference_errors or {}
    expected = _expected_grads(spec, grads)
    got = check_result(run_backward(impl, spec, arrays["grad_output"], arrays, case), spec.backward_name, expected, case.dtype)
    fan_in = spec.fan_in(case)
    for input_name, (name, want), have in zip(spec.differentiable, expected, got):
        if want is None:
            continue
        tolerance = tolerances.for_sum(case.dtype, fan_in, want, reference_errors.get(input_name))
        mismatch = locate(name, have, want, tolerance)
        if mismatch:
            return Verdict(spec.name, "backward", FAIL, case, mismatch=mismatch)
    return Verdict(spec.name, "backward", PASS, case)


def _forward64(impl: Implementation, spec: OpSpec, case: Case) -> Callable[[dict], np.ndarray]:
    """The forward evaluated in float64 on float64 copies: the implementation's own, else torch's."""
    config = case.config
    if impl.function(spec.name) is not None:
        fn = impl.function(spec.name)
        return lambda arrays: np.asarray(
            call(fn, f"{spec.name} (float64, for finite differences)", positional(spec, arrays), config), dtype=np.float64
        )
    return lambda arrays: _oracle(spec, case, arrays, with_grads=False)[0]


def _torch_gradient_errors(spec: OpSpec, case: Case, arrays: dict) -> dict:
    """torch's own float32 gradient errors on the case (for the float32 slack), or {} in float64 or without torch."""
    if case.dtype == "float64":
        return {}
    try:
        output, grads = _oracle(spec, case, arrays)
    except ImportError:
        return {}
    return reference_errors(spec, case, arrays, output, grads)[1]


def fd_case(spec: OpSpec, case: Case) -> Case:
    """The case with each input refilled by its finite-difference-safe recipe (values away from every kink)."""
    return case.with_(values={**case.values, **spec.fd_values}) if spec.fd_values else case


@_guarded
def finite_differences(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """The backward vs central differences of the forward in float64.

    Small inputs get the full gradient element by element, <g, (f(x + h e_k) - f(x - h e_k)) / 2h>;
    larger ones get ``FD_DIRECTIONS`` random directions v, <grad, v> against <g, (f(x + h v) - f(x - h v)) / 2h>.
    """
    skip = _missing(impl, spec, "finite_differences", case, spec.backward_name)
    if skip:
        return skip
    case = fd_case(spec, case)
    arrays = case.arrays()
    f64 = _forward64(impl, spec, case)
    grad_output = arrays["grad_output"]
    base = {k: (None if v is None else v.astype(np.float64)) for k, v in arrays.items()}
    g64 = base["grad_output"]
    expected_shapes = [(f"grad_{n}", None if arrays[n] is None else arrays[n]) for n in spec.differentiable]
    got = check_result(run_backward(impl, spec, grad_output, arrays, case), spec.backward_name, expected_shapes, case.dtype)
    h = tolerances.FD_STEP
    rng = np.random.default_rng(case.seed ^ 0x5EED)
    fan_in = spec.fan_in(case)
    errors = _torch_gradient_errors(spec, case, arrays)

    def directional(name: str, v: np.ndarray) -> float:
        plus, minus = dict(base), dict(base)
        plus[name] = base[name] + h * v
        minus[name] = base[name] - h * v
        return float(np.sum(g64 * (f64(plus) - f64(minus)))) / (2 * h)

    for name, grad in zip(spec.differentiable, got):
        if grad is None:
            continue
        x = base[name]
        grad64 = grad.astype(np.float64)
        if x.size <= FULL_JACOBIAN_LIMIT:
            numerical = np.zeros_like(x)
            for k in range(x.size):
                e = np.zeros_like(x)
                e.flat[k] = 1.0
                numerical.flat[k] = directional(name, e)
            tol = tolerances.for_finite_differences(case.dtype, fan_in, numerical, errors.get(name))
            mismatch = locate(f"grad_{name}", grad64, numerical, tol)
        else:
            mismatch = None
            for d in range(FD_DIRECTIONS):
                v = rng.standard_normal(x.shape)
                numerical = np.array(directional(name, v))
                analytical = np.array(float(np.sum(grad64 * v)))
                scale = float(np.sum(np.abs(grad64 * v)))
                error = errors.get(name)
                error_along_v = None if error is None else np.array(float(np.sum(np.abs(error * v))))
                tol = tolerances.for_finite_differences(case.dtype, fan_in * x.size, np.array(scale), error_along_v)
                mismatch = locate(f"<grad_{name}, v{d}>", analytical, numerical, tol)
                if mismatch:
                    mismatch = Mismatch(mismatch.array, f"random direction v{d} (seed {case.seed ^ 0x5EED})",
                                        mismatch.expected, mismatch.got, mismatch.allowed, 1, 1)
                    break
        if mismatch:
            return Verdict(spec.name, "finite_differences", FAIL, case, "expected = central differences of the forward", mismatch)
    return Verdict(spec.name, "finite_differences", PASS, case)


def _small_dyadic(shape, rng) -> np.ndarray:
    """Steps of at most 7/256 < GAP/2 on a 1/256 grid: x + dx is exact and keeps every max-pool arg-max."""
    return rng.integers(-7, 8, size=shape).astype(np.float64) / 256


@_guarded
def adjoint(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """<F dx, dy> == <dx, F^T dy> for each input the forward is linear (or, at a fixed arg-max, piecewise linear) in."""
    if not (spec.linear_in or spec.linearized_in):
        return Verdict(spec.name, "adjoint", SKIPPED, case, f"{spec.name} is not linear in any input")
    skip = _missing(impl, spec, "adjoint", case, spec.name, spec.backward_name)
    if skip:
        return skip
    if spec.linearized_in:
        case = fd_case(spec, case)
    rng = np.random.default_rng(case.seed ^ 0xAD10)
    dtype = np.dtype(case.dtype)
    for name in spec.linear_in + spec.linearized_in:
        arrays = case.arrays()
        for opt in spec.optional:
            arrays[opt] = None  # F must be linear, so no bias
        if arrays[name] is None:
            continue
        dy = arrays["grad_output"]
        if name in spec.linear_in:
            dx = rng.standard_normal(arrays[name].shape).astype(dtype)
            f_dx = run_forward(impl, spec, {**arrays, name: dx}, case)
        else:
            dx = _small_dyadic(arrays[name].shape, rng).astype(dtype)
            moved = run_forward(impl, spec, {**arrays, name: arrays[name] + dx}, case)
            f_dx = np.asarray(moved, dtype=np.float64) - np.asarray(run_forward(impl, spec, arrays, case), dtype=np.float64)
        grads = run_backward(impl, spec, dy, arrays, case)
        grads = grads if len(spec.differentiable) > 1 else [grads]
        grad = grads[spec.differentiable.index(name)]
        if not isinstance(f_dx, np.ndarray) or not isinstance(grad, np.ndarray) or f_dx.shape != dy.shape or grad.shape != dx.shape:
            raise ImplementationFailure("wrong shape", f"{spec.name}: forward or backward result has the wrong shape for the adjoint identity")
        lhs_terms = np.asarray(f_dx, np.float64) * dy.astype(np.float64)
        rhs_terms = dx.astype(np.float64) * np.asarray(grad, np.float64)
        lhs, rhs = float(lhs_terms.sum()), float(rhs_terms.sum())
        n_products = dy.size * spec.fan_in(case) + dx.size
        allowed = tolerances.for_adjoint(case.dtype, n_products, float(np.abs(lhs_terms).sum() + np.abs(rhs_terms).sum()))
        if not math.isfinite(lhs) or not math.isfinite(rhs) or abs(lhs - rhs) > allowed:
            what = f"<d{name}, F^T dy> (got) vs <F d{name}, dy> (expected)"
            return Verdict(spec.name, "adjoint", FAIL, case, mismatch=Mismatch(what, "the inner product", lhs, rhs, allowed, 1, 1))
    return Verdict(spec.name, "adjoint", PASS, case)


CHECKS: dict[str, Callable[[Implementation, OpSpec, Case], Verdict]] = {
    "forward": forward,
    "backward": backward,
    "finite_differences": finite_differences,
    "adjoint": adjoint,
}
