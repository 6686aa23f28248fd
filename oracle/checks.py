"""The checks, each ``check(impl, spec, case) -> Verdict``, shared by the pytest suite and ``bpcheck verify``.

    forward             the implementation's forward vs torch
    backward            its backward vs torch autograd
    finite_differences  its backward vs central differences of its own forward (float64)
    adjoint             <F dx, dy> == <dx, F^T dy> for the inputs the op is linear in; no framework involved
    identities          the derivation's identities (oracle.identities)

A check never raises for anything the implementation does: a crash, hang,
mutation or malformed result is a FAIL verdict with its message, and
NotImplementedError is a NOT_IMPLEMENTED verdict.

Comparisons use per-element error bounds from the magnitudes that enter each
element (``oracle.magnitudes``, ``oracle.tolerances``) and have three outcomes:
pass, imprecise (a right rule that loses digits) and FAIL. A result of the
wrong dtype FAILs the contract, but its values are still compared (cast to the
case's dtype) and the verdict says whether they are right.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from oracle import course, determinism, dtypes, magnitudes, precision, tolerances, torch_oracle
from oracle.case import Case
from oracle.implementation import Implementation, ImplementationFailure, NotImplementedForConfig, check_result, submit
from oracle.ops import OpSpec, positional
from oracle.untrusted.client import carrying
from oracle.verdict import FAIL, IMPRECISE, NOT_IMPLEMENTED, PASS, SKIPPED, Mismatch, Verdict, locate, status_of

#: inputs with at most this many elements get the full Jacobian-vector product from finite differences
FULL_JACOBIAN_LIMIT = 64
#: random directions for larger inputs
FD_DIRECTIONS = 3


def _guarded(check: Callable[[Implementation, OpSpec, Case], Verdict]):
    """Turn the implementation's misbehaviour inside a check into a verdict (a failed backward gets its diagnosis)."""

    def run(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
        on = fd_case(spec, case) if check.__name__ == "finite_differences" else case  # the values it ran on
        skip = beyond_half_range(spec, check.__name__, on)
        if skip is not None:
            return skip
        with carrying(case.dtype):  # a bfloat16 case's float32 arrays stand for bfloat16 in the worker
            verdict = _verdict_of(lambda: check(impl, spec, case), spec, check.__name__, on)
            if verdict.status == NOT_IMPLEMENTED or verdict.message.startswith("hang: "):
                return verdict  # re-running a hang to diagnose it would hang again
            return _diagnosed(verdict, impl, spec, case)

    run.__name__ = check.__name__
    run.__doc__ = check.__doc__
    return run


def _verdict_of(check: Callable[[], Verdict], spec: OpSpec, name: str, case: Case) -> Verdict:
    """``check()``, or the FAIL / NOT_IMPLEMENTED verdict ``name`` gets for what the implementation did instead."""
    try:
        return check()
    except NotImplementedForConfig as exc:
        return Verdict(spec.name, name, NOT_IMPLEMENTED, case, f"NotImplementedError: {exc}")
    except ImplementationFailure as exc:
        return Verdict(spec.name, name, FAIL, case, f"{exc.kind}: {exc.message}")


#: checks whose failures are diagnosed against the catalogue of classic mistakes (oracle.diagnosis)
DIAGNOSED_CHECKS = ("backward", "finite_differences")


def _diagnosed(verdict: Verdict, impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """``verdict``, with hints naming the classic mistakes its gradients match if it is a failed backward/FD check."""
    if verdict.failed and verdict.check in DIAGNOSED_CHECKS:
        from oracle.diagnosis import diagnose  # noqa: PLC0415 - loaded only once something fails

        on = fd_case(spec, case) if verdict.check == "finite_differences" else case  # the values the check used
        verdict.hints = [*verdict.hints, *diagnose(impl, spec, on)]
    return verdict


def _checked_result(result, what: str, expected: list, dtype: str) -> tuple[list, str | None]:
    """``check_result`` after casting arrays of another dtype to ``dtype``; ``(arrays, 'wrong dtype: ...' or None)``.

    A wrong dtype stays a FAIL of the contract (the caller says so), but the values are still compared.
    """
    want = dtypes.storage(dtype)
    results = [result] if len(expected) == 1 else (list(result) if isinstance(result, (tuple, list)) else None)
    if results is None or len(results) != len(expected):
        return check_result(result, what, expected, dtype), None  # check_result says what is wrong
    notes, cast = [], []
    for (name, _), got in zip(expected, results):
        if isinstance(got, np.ndarray) and got.dtype != want and (np.issubdtype(got.dtype, np.number) or got.dtype == bool):
            notes.append(f"wrong dtype: {what}: {name} has dtype {got.dtype}, expected {dtype} (the inputs' dtype)")
            with np.errstate(all="ignore"):
                got = got.astype(want)
        cast.append(got)
    checked = check_result(cast[0] if len(expected) == 1 else tuple(cast), what, expected, dtype)
    return checked, ("\n".join(notes) or None)


def _judged(spec: OpSpec, check: str, case: Case, mismatch: Mismatch | None, dtype_note: str | None = None,
            message: str = "", hints: list[str] | None = None) -> Verdict:
    """The verdict of a comparison: pass / imprecise / FAIL from the mismatch, FAIL whatever it is for a wrong dtype."""
    status = status_of(mismatch)
    hints = list(hints or [])
    if dtype_note:
        values = {PASS: "the values (cast to the inputs' dtype) are right",
                  IMPRECISE: "the values (cast to the inputs' dtype) are right but imprecise (below)",
                  FAIL: "the values (cast to the inputs' dtype) are wrong too (below)"}[status]
        message = "\n".join(m for m in (dtype_note, values, message) if m)
        status = FAIL
    return Verdict(spec.name, check, status, case, message, mismatch, hints)


def _imprecise_hints(spec: OpSpec, direction: str, case: Case, arrays: dict, got, mismatch: Mismatch | None) -> list[str]:
    if mismatch is None or not mismatch.imprecise or isinstance(mismatch.index, str):
        return []
    return precision.hints(spec.name, direction, arrays, case.config, got, mismatch.index, case.dtype)


def _missing(impl: Implementation, spec: OpSpec, check: str, case: Case, *names: str) -> Verdict | None:
    absent = [n for n in names if impl.function(n) is None]
    if absent:
        return Verdict(spec.name, check, NOT_IMPLEMENTED, case, f"{impl.label} has no {' or '.join(absent)}")
    return None


def forward_call(spec: OpSpec, arrays: dict, case: Case) -> tuple[str, list, dict]:
    """The call of the implementation's forward on ``arrays``, as ``submit`` takes it."""
    return spec.name, positional(spec, arrays), case.config


def backward_call(spec: OpSpec, grad_output: np.ndarray, arrays: dict, case: Case) -> tuple[str, list, dict]:
    """The call of the implementation's backward on ``grad_output`` and ``arrays``, as ``submit`` takes it."""
    return spec.backward_name, [grad_output, *positional(spec, arrays)], case.config


def run_backward(impl: Implementation, spec: OpSpec, grad_output: np.ndarray, arrays: dict, case: Case) -> list:
    return submit(impl, [backward_call(spec, grad_output, arrays, case)]).result(0)


def _oracle(spec: OpSpec, case: Case, arrays: dict, with_grads: bool = True, dtype: str = "float64"):
    inputs = {name: arrays[name] for name in spec.inputs}
    return torch_oracle.run(
        spec.name, inputs, case.config, spec.differentiable, arrays["grad_output"] if with_grads else None, dtype=dtype
    )


def reference_errors(spec: OpSpec, case: Case, arrays: dict, output: np.ndarray, grads: dict) -> tuple:
    """``(output error, {name: gradient error})`` of torch's own kernel in the case's dtype, or ``(None, {})`` in float64.

    Feeds ``tolerances.float32_slack``: a float32 (float16, bfloat16) implementation may be as far from the float64
    truth as torch's float32 (float16, bfloat16) kernel is on the same inputs.
    """
    if case.dtype == "float64":
        return None, {}
    out32, grads32 = _oracle(spec, case, arrays, with_grads=bool(grads), dtype=case.dtype)
    errors = {n: None if grads[n] is None else np.asarray(grads32[n], np.float64) - grads[n] for n in grads}
    return np.asarray(out32, np.float64) - output, errors


def beyond_half_range(spec: OpSpec, check: str, case: Case) -> Verdict | None:
    """A SKIPPED verdict if a half-precision case leaves its dtype's range; else None.

    That is: the exact output or a gradient (torch, float64) is beyond the dtype's largest finite value (BCE's
    ``1/1e-12`` gradient at p = 0 in float16: no value of the dtype is right there, and torch's own rules give inf
    or NaN depending on the path), or torch's own kernel in the dtype gives NaN or inf where the exact value is
    finite (batch_norm's ``1/sqrt(var + eps)`` of a constant channel with eps = 1e-11 is 3e5, beyond float16's
    65504; eps itself is 0 in float16). Such a case is outside what the dtype can compute and says nothing about
    a rule either way (``oracle.tolerances``, "Half precision"). Every check of a half-precision case asks this
    first (``_guarded``; the JVP's tangent too, ``oracle.forward_mode``); float64 and float32 cases never are
    skipped so.
    """
    if not dtypes.is_half(case.dtype):
        return None
    arrays = case.arrays()
    inputs = {name: arrays[name] for name in spec.inputs}
    try:
        truth, grads = torch_oracle.run(spec.name, inputs, case.config, spec.differentiable, arrays["grad_output"])
        half, half_grads = torch_oracle.run(spec.name, inputs, case.config, spec.differentiable, arrays["grad_output"],
                                            dtype=case.dtype)
    except Exception:  # noqa: BLE001 - no torch, or torch refuses the case: the checks themselves say what happens
        return None
    pairs = [("output", truth, half), *((f"grad_{n}", grads[n], half_grads[n]) for n in grads)]
    return half_range_verdict(spec, check, case, pairs)


def half_range_verdict(spec: OpSpec, check: str, case: Case, pairs: list) -> Verdict | None:
    """``beyond_half_range``'s verdict for ``(name, exact float64 value, torch's result in the case's dtype)`` pairs:
    SKIPPED at the first element whose exact value is finite and overflows the dtype, or where torch's result is
    NaN or inf and the exact value finite."""
    for name, truth, half in pairs:
        if truth is None or half is None:
            continue
        truth, half = np.asarray(truth, np.float64), np.asarray(half, np.float64)
        finite = np.isfinite(truth)
        overflows = finite & ~np.isfinite(dtypes.in_range(truth, case.dtype))
        lost = finite & ~np.isfinite(half)
        for where, what in ((overflows, f"the exact value overflows {case.dtype}"),
                            (lost, f"torch's own {case.dtype} kernel gives NaN/inf (an intermediate of the standard "
                                   f"formulas leaves {case.dtype}'s range)")):
            if where.any():
                index = tuple(int(i) for i in np.argwhere(where)[0])
                return Verdict(spec.name, check, SKIPPED, case,
                               f"beyond {case.dtype}'s range: {what}: {name}{list(index)} is {truth[index]:.6g} "
                               f"exactly, {half[index]} in torch's {case.dtype}; nothing to judge a rule by")
    return None


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
    running = submit(impl, [forward_call(spec, arrays, case)])  # the worker computes while torch does
    expected, _ = _oracle(spec, case, arrays, with_grads=False)
    error, _ = reference_errors(spec, case, arrays, expected, {})
    return compare_forward(impl, spec, case, arrays, expected, error, running=running)


def compare_forward(
    impl: Implementation, spec: OpSpec, case: Case, arrays: dict, expected: np.ndarray, reference_error=None,
    running=None,
) -> Verdict:
    """The forward on ``arrays`` vs a known ``expected`` output (torch's, live or from a stored corpus).

    ``reference_error``: torch's own error in the case's dtype (see ``reference_errors``), if known.
    ``running``: the forward's call, already submitted (``submit``), else it is made here.
    Raises what ``call``/``check_result`` raise; the callers turn that into a verdict.
    """
    running = running or submit(impl, [forward_call(spec, arrays, case)])
    scales = magnitudes.forward(spec.name, arrays, case.config)
    (got,), dtype_note = _checked_result(running.result(0), spec.name, [("output", expected)], case.dtype)
    scale, naive = scales if scales is not None else (None, None)
    normwise = magnitudes.normwise(spec.name, arrays, case.config).get("output")
    tolerance = tolerances.for_sum(case.dtype, spec.fan_in(case), expected, reference_error, scale=scale, naive_scale=naive,
                                   normwise=normwise)
    mismatch = locate("output", got, expected, tolerance)
    return _judged(spec, "forward", case, mismatch, dtype_note, hints=_imprecise_hints(spec, "forward", case, arrays, got, mismatch))


def _expected_grads(spec: OpSpec, grads: dict) -> list[tuple[str, np.ndarray | None]]:
    return [(f"grad_{name}", grads[name]) for name in spec.differentiable]


@_guarded
def backward(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """Every gradient of the backward vs torch autograd (computed in float64).

    The backward is called twice on the same inputs (in the same request): if the gradients pass (or are
    imprecise) but the two calls differ (``oracle.determinism``), the verdict says so in ``nondeterminism``.
    """
    skip = _missing(impl, spec, "backward", case, spec.backward_name) or _untrusted_torch(spec, "backward", case)
    if skip:
        return skip
    arrays = case.arrays()
    once = backward_call(spec, arrays["grad_output"], arrays, case)
    running = submit(impl, [once, once])  # twice, to see whether it is deterministic; while torch computes
    output, grads = _oracle(spec, case, arrays)
    _, errors = reference_errors(spec, case, arrays, output, grads)
    first = None
    for note, reference in course.backward_references(spec.name, case, arrays, grads):  # torch's, or a course's
        verdict = compare_backward(impl, spec, case, arrays, reference, errors, running=running)
        if not verdict.failed:
            verdict.nondeterminism = determinism.of_results(
                running.result(0), running.result(1), [f"grad_{n}" for n in spec.differentiable], case.dtype)
            return verdict
        if first is None:
            first = verdict
            if note:
                verdict.hints.append(note)
    return first


def compare_backward(
    impl: Implementation, spec: OpSpec, case: Case, arrays: dict, grads: dict, reference_errors: dict | None = None,
    running=None,
) -> Verdict:
    """The backward on ``arrays`` vs known gradients ``{input name: gradient or None}`` (torch's, live or stored).

    ``reference_errors``: torch's own error per gradient in the case's dtype, if known.
    ``running``: the backward's call, already submitted (``submit``), else it is made here.
    Raises what ``call``/``check_result`` raise; the callers turn that into a verdict.
    """
    running = running or submit(impl, [backward_call(spec, arrays["grad_output"], arrays, case)])
    reference_errors = reference_errors or {}
    expected = _expected_grads(spec, grads)
    scales = magnitudes.backward(spec.name, arrays, case.config)
    got, dtype_note = _checked_result(running.result(0), spec.backward_name, expected, case.dtype)
    fan_in = spec.fan_in(case)
    normwise = magnitudes.normwise(spec.name, arrays, case.config)
    worst, worst_got = None, None
    for input_name, (name, want), have in zip(spec.differentiable, expected, got):
        if want is None:
            continue
        scale, naive = scales.get(input_name) or (None, None)
        tolerance = tolerances.for_sum(case.dtype, fan_in, want, reference_errors.get(input_name), scale=scale, naive_scale=naive,
                                       normwise=normwise.get(input_name))
        mismatch = locate(name, have, want, tolerance)
        if mismatch and not mismatch.imprecise:
            return _judged(spec, "backward", case, mismatch, dtype_note)
        if mismatch and (worst is None or mismatch.digits_lost > worst.digits_lost):
            worst, worst_got = mismatch, have
    return _judged(spec, "backward", case, worst, dtype_note,
                   hints=_imprecise_hints(spec, "backward", case, arrays, worst_got, worst))


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


def _forward_failed_first(spec: OpSpec, case: Case, base: dict, f_base) -> Verdict | None:
    """A SKIPPED finite-differences verdict saying so if the implementation's forward, evaluated on the float64
    inputs finite differences use (``base``; ``f_base`` its submitted result), FAILs against torch.

    Finite differences of a wrong forward say nothing about the backward. A forward that is only of the
    wrong dtype (its values right), or imprecise, does not stop them: they run on float64 copies, and the
    forward's noise is measured and allowed for.
    """
    case64 = case.with_(dtype="float64")  # finite differences evaluate the forward in float64 only
    if spec.torch_untrusted(case64):
        return None
    try:
        expected, _ = _oracle(spec, case64, base, with_grads=False)
    except ImportError:  # no torch: finite differences alone
        return None
    verdict = _verdict_of(lambda: compare_forward(None, spec, case64, base, expected, running=f_base), spec, "forward", case64)
    if not verdict.failed:
        return None
    values_wrong = verdict.mismatch is not None and not verdict.mismatch.imprecise
    if not values_wrong and verdict.message.startswith("wrong dtype") and "are right" in verdict.message:
        return None
    detail = verdict.mismatch.describe() if verdict.mismatch is not None else verdict.message.splitlines()[0]
    return Verdict(spec.name, "finite_differences", SKIPPED, case,
                   f"forward failed first (in float64, as finite differences evaluate it): {detail}\nfinite differences of a wrong forward say nothing about the backward; "
                   f"fix the forward (its row) first")


def _float64_unless_index(a: np.ndarray | None) -> np.ndarray | None:
    """``a`` as float64 for finite differences; integer arrays (class indices) as they are: never perturbed."""
    return a if a is None or a.dtype.kind in "iub" else a.astype(np.float64)


def _fd_steps(h: float) -> list[float]:
    """The points of a central difference at ``h`` along a direction; with a step other than the quiet one, also at
    2h, so that the truncation can be measured."""
    return [h, -h] if h == tolerances.FD_STEP else [h, -h, 2 * h, -2 * h]


def _fd_estimates(outputs: list[np.ndarray], g64: np.ndarray, n_directions: int, h: float) -> list[tuple[float, float]]:
    """(central difference at h, its measured truncation |D(h) - D(2h)| / 3 when h is not the quiet step) along
    each direction, from the forward's outputs at the ``_fd_steps(h)`` of each.

    Each difference is ``<g, f(x + h v) - f(x - h v)> / 2h``, the outputs subtracted before they are weighted and
    summed: an output element the step does not move then adds exactly 0, where a difference of the two sums
    ``<g, f>`` would carry the rounding of every element (at outputs of size 1e4, 1e-12 against a difference of
    1e-7)."""
    steps = len(_fd_steps(h))
    out = []
    for i in range(n_directions):
        p = outputs[i * steps:(i + 1) * steps]
        d = float(np.sum(g64 * (p[0] - p[1]))) / (2 * h)
        out.append((d, 0.0) if len(p) == 2 else (d, abs(d - float(np.sum(g64 * (p[2] - p[3]))) / (4 * h)) / 3))
    return out


def _noise_ts() -> list[float]:
    """The offsets of Moré and Wild's noise estimate: ``tolerances.NOISE_POINTS`` points ``NOISE_SPACING`` apart."""
    n = tolerances.NOISE_POINTS
    return [(i - (n - 1) / 2) * tolerances.NOISE_SPACING for i in range(n)]


@_guarded
def finite_differences(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """The backward vs central differences of the forward in float64.

    Small inputs get the full gradient element by element, <g, (f(x + h e_k) - f(x - h e_k)) / 2h>;
    larger ones get ``FD_DIRECTIONS`` random directions v, <grad, v> against <g, (f(x + h v) - f(x - h v)) / 2h>.
    The forward's noise is measured along a random direction first (``oracle.tolerances``, finite
    differences): a noisy forward gets a larger step and a wider allowance, never a blamed backward.
    If the forward itself FAILs on the case, the check is skipped: "forward failed first".

    Every evaluation is planned up front and sent to the worker in one request (the forward at x, the
    backward, the noise probes, the differences at the quiet step), so the worker computes while the judge
    asks torch; only a noisy forward needs a second request, at its larger step.
    """
    skip = _missing(impl, spec, "finite_differences", case, spec.backward_name)
    if skip:
        return skip
    case = fd_case(spec, case)
    arrays = case.arrays()
    grad_output = arrays["grad_output"]
    base = {k: _float64_unless_index(v) for k, v in arrays.items()}
    g64 = base["grad_output"]
    rng = np.random.default_rng(case.seed ^ 0x5EED)
    noise_rng = np.random.default_rng(case.seed ^ 0x401E)
    names = [n for n in spec.differentiable if base[n] is not None]
    probes = {n: noise_rng.standard_normal(base[n].shape) for n in names}
    directions = {n: ([np.eye(1, base[n].size, k).reshape(base[n].shape) for k in range(base[n].size)]
                      if base[n].size <= FULL_JACOBIAN_LIMIT else [rng.standard_normal(base[n].shape) for _ in range(FD_DIRECTIONS)])
                  for n in names}

    def moved(name: str, pairs: list[tuple[np.ndarray, float]]) -> list[dict]:
        return [{**base, name: base[name] + t * v} for v, t in pairs]

    noise_points = {n: moved(n, [(probes[n], t) for t in _noise_ts()]) for n in names}
    quiet_points = {n: moved(n, [(v, t) for v in directions[n] for t in _fd_steps(tolerances.FD_STEP)]) for n in names}
    own_forward = impl.function(spec.name) is not None
    if own_forward:  # [f(x), the backward, the noise probes and quiet differences of each input]: one request
        planned = [p for n in names for p in noise_points[n] + quiet_points[n]]
        running = submit(impl, [forward_call(spec, base, case), backward_call(spec, grad_output, arrays, case),
                                *(forward_call(spec, p, case) for p in planned)])
        first = _forward_failed_first(spec, case, base, running)  # torch's forward meanwhile
        if first is not None:
            return first
    else:
        running = submit(impl, [backward_call(spec, grad_output, arrays, case)])
    errors = _torch_gradient_errors(spec, case, arrays)  # while the worker computes
    scales = magnitudes.forward(spec.name, base, case.config)
    own_scales = magnitudes.backward(spec.name, arrays, case.config)  # the backward's own rounding, in the case's dtype
    normwise = magnitudes.normwise(spec.name, arrays, case.config)  # the backward's, in the case's dtype
    backward_result = running.result(1 if own_forward else 0)

    def outputs_at(points: list[dict], at: int | None) -> list[np.ndarray]:
        """f(x) at each point, in float64: the planned results from ``at`` on, else evaluated now (its own forward
        or torch's)."""
        if not own_forward:
            outputs = [_oracle(spec, case, arrays, with_grads=False)[0] for arrays in points]
        elif at is None:
            outputs = submit(impl, [forward_call(spec, p, case) for p in points]).results()
        else:
            outputs = [running.result(at + i) for i in range(len(points))]
        return [np.asarray(out, dtype=np.float64) for out in outputs]

    def phi(points: list[dict], at: int | None) -> list[float]:
        """<g, f(x)> at each point."""
        return [float(np.sum(g64 * out)) for out in outputs_at(points, at)]

    expected_shapes = [(f"grad_{n}", None if arrays[n] is None else arrays[n]) for n in spec.differentiable]
    got, dtype_note = _checked_result(backward_result, spec.backward_name, expected_shapes, case.dtype)
    fan_in = spec.fan_in(case)
    f_base = (np.asarray(running.result(0), np.float64) if own_forward
              else _oracle(spec, case, base, with_grads=False)[0])
    magnitude = float(np.sum(np.abs(g64) * (scales[0] if scales is not None else np.abs(f_base))))

    worst, worst_note = None, ""
    position = 2  # in the request: after f(x) and the backward
    for name, grad in zip(spec.differentiable, got):
        if name not in names:
            continue
        noise = tolerances.noise_level(np.array(phi(noise_points[name], position)))
        position += len(noise_points[name])
        h = tolerances.fd_step(noise, magnitude)
        quiet = h == tolerances.FD_STEP
        values = outputs_at(quiet_points[name] if quiet else moved(name, [(v, t) for v in directions[name] for t in _fd_steps(h)]),
                            position if quiet else None)
        position += len(quiet_points[name])
        if grad is None:
            continue
        x = base[name]
        grad64 = grad.astype(np.float64)
        spread = tolerances.normwise_bound(case.dtype, fan_in, normwise.get(name))
        own = (own_scales.get(name) or (None, None))[0]
        note = "" if h == tolerances.FD_STEP else (
            f"the forward is noisy: {noise:.2g} measured along a random direction (Moré-Wild) against {magnitude:.3g} "
            f"for <g, f>, so step h = {h:.2g} and the allowance is widened by the noise / h and the measured truncation")
        estimates = _fd_estimates(values, g64, len(directions[name]), h)
        # the step taken is what float64 made of x +- h v, not h v: at |x| = 1e4, x + 1e-6 is off by 1e-12, a relative
        # 1e-6 of the step, so each difference is compared with the displacement really made
        taken = [((x + h * v) - (x - h * v)) / (2 * h) for v in directions[name]]
        if x.size <= FULL_JACOBIAN_LIMIT:
            numerical = np.zeros_like(x)
            extra = np.zeros_like(x)
            for k, (value, truncation) in enumerate(estimates):
                numerical.flat[k] = value / taken[k].flat[k]
                extra.flat[k] = tolerances.fd_error(noise, h, truncation) if note else 0.0
            tol = tolerances.for_finite_differences(case.dtype, fan_in, numerical, errors.get(name), extra=extra,
                                                    normwise=spread, scale=own)
            mismatch = locate(f"grad_{name}", grad64, numerical, tol)
        else:
            mismatch = None
            for d, (v, (value, truncation)) in enumerate(zip(directions[name], estimates)):
                numerical = np.array(value)
                analytical = np.array(float(np.sum(grad64 * taken[d])))
                scale = float(np.sum(np.abs(grad64 * v)))
                error = errors.get(name)
                error_along_v = None if error is None else np.array(float(np.sum(np.abs(error * v))))
                extra = tolerances.fd_error(noise, h, truncation) if note else 0.0
                own_along_v = None if own is None else np.array(float(np.sum(own * np.abs(v))))
                tol = tolerances.for_finite_differences(case.dtype, fan_in * x.size, np.array(scale), error_along_v, extra=extra,
                                                        normwise=spread * float(np.sum(np.abs(v))), scale=own_along_v)
                found = locate(f"<grad_{name}, v{d}>", analytical, numerical, tol)
                if found:
                    found = replace(found, index=f"random direction v{d} (seed {case.seed ^ 0x5EED})", count=1, size=1)
                    if mismatch is None or not found.imprecise:
                        mismatch = found
                    if not found.imprecise:
                        break
        if mismatch and (worst is None or (worst.imprecise and not mismatch.imprecise)):
            worst, worst_note = mismatch, note
        if worst is not None and not worst.imprecise:
            break
    message = "expected = central differences of the forward" + (f"\n{worst_note}" if worst_note else "") if worst else ""
    return _judged(spec, "finite_differences", case, worst, dtype_note, message)


def _small_dyadic(shape, rng) -> np.ndarray:
    """Steps of at most 7/256 < GAP/2 on a 1/256 grid: x + dx is exact in float64 and float32 and keeps every max-pool
    arg-max. In half precision x + dx is rounded to the dtype (by at most half an ulp of x: 1/128 at |x| < 4 in
    bfloat16, well within the gapped values' 0.1) and the step really made is the one paired with the backward."""
    return rng.integers(-7, 8, size=shape).astype(np.float64) / 256


@_guarded
def adjoint(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """<F dx, dy> == <dx, F^T dy> for each input the forward is linear (or, at a fixed arg-max, piecewise linear) in.

    Imprecise between ``tolerances.for_adjoint`` and that plus ``tolerances.adjoint_band`` (each element of
    F dx and F^T dy within its own FAIL line), FAIL beyond.
    """
    if not (spec.linear_in or spec.linearized_in):
        return Verdict(spec.name, "adjoint", SKIPPED, case, f"{spec.name} is not linear in any input")
    skip = _missing(impl, spec, "adjoint", case, spec.name, spec.backward_name)
    if skip:
        return skip
    if spec.linearized_in:
        case = fd_case(spec, case)
    rng = np.random.default_rng(case.seed ^ 0xAD10)
    arrays = case.arrays()
    for opt in spec.optional:
        arrays[opt] = None  # F must be linear, so no bias
    dy = arrays["grad_output"]
    names = [n for n in spec.linear_in + spec.linearized_in if arrays[n] is not None]
    steps, calls = {}, []
    for name in names:  # every call of the check in one request: F dx (or F(x + dx) and F(x)) per input, F^T dy
        if name in spec.linear_in:
            steps[name] = dtypes.round_to(rng.standard_normal(arrays[name].shape), case.dtype)
            calls.append(forward_call(spec, {**arrays, name: steps[name]}, case))
        else:  # x + dx rounded to the dtype; dx is the step really made (exact in float64)
            moved = dtypes.round_to(arrays[name].astype(np.float64) + _small_dyadic(arrays[name].shape, rng), case.dtype)
            steps[name] = moved.astype(np.float64) - arrays[name].astype(np.float64)
            calls += [forward_call(spec, {**arrays, name: moved}, case), forward_call(spec, arrays, case)]
    calls.append(backward_call(spec, dy, arrays, case))
    running = submit(impl, calls)
    worst, at = None, 0
    for name in names:
        dx = steps[name]
        if name in spec.linear_in:
            f_dx, at = running.result(at), at + 1
        else:
            moved, still, at = running.result(at), running.result(at + 1), at + 2
            f_dx = np.asarray(moved, dtype=np.float64) - np.asarray(still, dtype=np.float64)
        grads = running.result(len(calls) - 1)
        grads = grads if len(spec.differentiable) > 1 else [grads]
        grad = grads[spec.differentiable.index(name)] if isinstance(grads, (tuple, list)) and len(grads) == len(spec.differentiable) else None
        if not isinstance(f_dx, np.ndarray) or not isinstance(grad, np.ndarray) or f_dx.shape != dy.shape or grad.shape != dx.shape:
            raise ImplementationFailure("wrong shape", f"{spec.name}: forward or backward result has the wrong shape for the adjoint identity")
        lhs_terms = np.asarray(f_dx, np.float64) * dy.astype(np.float64)
        rhs_terms = dx.astype(np.float64) * np.asarray(grad, np.float64)
        lhs, rhs = float(lhs_terms.sum()), float(rhs_terms.sum())
        n_products = dy.size * spec.fan_in(case) + dx.size
        # the rounding of F dx is bounded by the terms that enter it, |F| |dx| (not by |F dx|, which may cancel)
        terms = magnitudes.forward(spec.name, {**arrays, name: dx}, case.config) if name in spec.linear_in else None
        entering = float(np.sum(terms[0] * np.abs(dy.astype(np.float64)))) if terms is not None else 0.0
        allowed = tolerances.for_adjoint(
            case.dtype, n_products, float(np.abs(lhs_terms).sum() + np.abs(rhs_terms).sum()) + entering)
        if math.isfinite(lhs) and math.isfinite(rhs) and abs(lhs - rhs) <= allowed:
            continue
        bound = allowed + tolerances.adjoint_band(_adjoint_sides(spec, case, name, arrays, dx, f_dx, terms, grad))
        what = f"<d{name}, F^T dy> (got) vs <F d{name}, dy> (expected)"
        imprecise = math.isfinite(lhs) and math.isfinite(rhs) and abs(lhs - rhs) <= bound
        mismatch = Mismatch(what, "the inner product", lhs, rhs, allowed, 1, 1, imprecise=imprecise, bound=bound)
        if not imprecise:
            return Verdict(spec.name, "adjoint", FAIL, case, mismatch=mismatch)
        if worst is None or mismatch.digits_lost > worst.digits_lost:
            worst = mismatch
    return _judged(spec, "adjoint", case, worst)


def _adjoint_sides(spec: OpSpec, case: Case, name: str, arrays: dict, dx: np.ndarray, f_dx: np.ndarray, terms,
                   grad: np.ndarray) -> list:
    """``(tolerance, result, paired vector)`` for ``F dx`` (with dy; where its term scales are known) and ``F^T dy``
    (with dx): each element judged as the forward and backward checks judge it (``tolerances.adjoint_band``)."""
    fan_in, dy = spec.fan_in(case), arrays["grad_output"]
    sides = []
    if terms is not None:
        normwise = magnitudes.normwise(spec.name, {**arrays, name: dx}, case.config).get("output")
        tolerance = tolerances.for_sum(case.dtype, fan_in, f_dx, scale=terms[0], naive_scale=terms[1], normwise=normwise)
        sides.append((tolerance, f_dx, dy))
    scales = magnitudes.backward(spec.name, arrays, case.config).get(name)
    if scales is not None:
        normwise = magnitudes.normwise(spec.name, arrays, case.config).get(name)
        tolerance = tolerances.for_sum(case.dtype, fan_in, grad, scale=scales[0], naive_scale=scales[1], normwise=normwise)
        sides.append((tolerance, grad, dx))
    return sides


CHECKS: dict[str, Callable[[Implementation, OpSpec, Case], Verdict]] = {
    "forward": forward,
    "backward": backward,
    "finite_differences": finite_differences,
    "adjoint": adjoint,
}
