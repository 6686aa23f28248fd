"""The ``jvp`` check: an implementation's forward-mode rule ``NAME_jvp(primals, tangents, **config)``.

For each case, with a standard normal tangent ``v`` for every differentiable input given (None for the others,
and for class indices):

  (a) the JVP's output and output tangent vs ``torch.func.jvp`` of the torch op (float64; in float32 the room
      torch's own float32 JVP needs, as for the backward);
  (b) the output tangent vs central differences of the implementation's own forward along ``v`` (float64 cases,
      the finite-difference machinery of ``oracle.checks``: its steps, Moré and Wild's noise, the step a noisy
      forward needs, per output element); skipped when the forward itself FAILs against torch;
  (c) the forward-reverse identity ``<J v, w> = <v, J^T w>`` between its own JVP and its own backward
      (``w`` the case's grad_output): no framework involved.

Tolerances: ``oracle.tolerances``, "Forward mode (JVP)"; term scales: ``oracle.magnitudes.jvp``. An
implementation without ``NAME_jvp`` gets NOT_IMPLEMENTED (a ``torch:`` Function without a forward-mode rule
declines each case, with torch's reason).
"""

from __future__ import annotations

import numpy as np

from oracle import dtypes, magnitudes, tolerances, torch_oracle
from oracle.case import Case
from oracle.checks import (_checked_result, _fd_steps, _forward_failed_first, _guarded, _judged, _missing, _noise_ts,
                           backward_call, fd_case, forward_call, half_range_verdict)
from oracle.implementation import Implementation, ImplementationFailure, NotImplementedForConfig, submit
from oracle.ops import OpSpec, positional
from oracle.verdict import FAIL, Mismatch, Verdict, locate

CHECK = "jvp"


def jvp_call(spec: OpSpec, arrays: dict, tangents: dict, case: Case) -> tuple[str, list, dict]:
    """The call ``NAME_jvp(primals, tangents, **config)`` as ``submit`` takes it: both tuples in the forward's order."""
    primals = tuple(positional(spec, arrays))
    return spec.jvp_name, [primals, tuple(tangents.get(name) for name in spec.inputs)], case.config


def draw_tangents(spec: OpSpec, arrays: dict, case: Case) -> dict:
    """A standard normal tangent, rounded to the case's dtype, for each differentiable input given (from the case's
    seed)."""
    rng = np.random.default_rng(case.seed ^ 0x7A4F)
    return {name: dtypes.round_to(rng.standard_normal(arrays[name].shape), case.dtype)
            for name in spec.differentiable if arrays[name] is not None}


class _Skip(Exception):
    """The case is skipped, with this verdict (``oracle.checks.beyond_half_range``)."""

    def __init__(self, verdict: Verdict):
        super().__init__(verdict.message)
        self.verdict = verdict


class _From:
    """The results of a request from call ``start`` on, read as if they were a request of their own."""

    def __init__(self, pending, start: int):
        self.pending, self.start = pending, start

    def result(self, index: int):
        return self.pending.result(self.start + index)


def _tangent_tolerance(spec: OpSpec, case: Case, arrays: dict, tangents: dict, expected, error=None):
    fan_in = tolerances.jvp_fan_in(spec.fan_in(case), len(tangents))
    scales = magnitudes.jvp(spec.name, arrays, tangents, case.config)
    scale, naive = scales if scales is not None else (None, None)
    return tolerances.for_sum(case.dtype, fan_in, expected, error, scale=scale, naive_scale=naive,
                              normwise=magnitudes.jvp_normwise(spec.name, arrays, tangents, case.config)), fan_in


def _against_torch(spec, case, arrays, tangents, result) -> tuple[list[Mismatch], str | None, np.ndarray | None]:
    """(a): the mismatches of the output and the tangent vs torch.func.jvp, the dtype note, the tangent got."""
    inputs = {name: arrays[name] for name in spec.inputs}
    out, tangent = torch_oracle.jvp(spec.name, inputs, tangents, case.config)
    out_error = tangent_error = None
    if case.dtype != "float64":
        out32, tangent32 = torch_oracle.jvp(spec.name, inputs, tangents, case.config, dtype=case.dtype)
        skip = half_range_verdict(spec, CHECK, case, [("output", out, out32), ("output_tangent", tangent, tangent32)])
        if skip:
            raise _Skip(skip)
        out_error, tangent_error = out32.astype(np.float64) - out, tangent32.astype(np.float64) - tangent
    got, note = _checked_result(result, spec.jvp_name, [("output", out), ("output_tangent", tangent)], case.dtype)
    scales = magnitudes.forward(spec.name, arrays, case.config)
    scale, naive = scales if scales is not None else (None, None)
    out_tolerance = tolerances.for_sum(case.dtype, spec.fan_in(case), out, out_error, scale=scale, naive_scale=naive,
                                       normwise=magnitudes.normwise(spec.name, arrays, case.config).get("output"))
    tangent_tolerance, _ = _tangent_tolerance(spec, case, arrays, tangents, tangent, tangent_error)
    found = [locate("output", got[0], out, out_tolerance), locate("output_tangent", got[1], tangent, tangent_tolerance)]
    return [m for m in found if m], note, got[1]


def _plan_differences(spec: OpSpec, case: Case, tangents: dict) -> dict:
    """(b)'s evaluations at the quiet step: the forward at x, its noise probes along v, x +- h v, and the JVP along the
    displacement really made."""
    base = fd_case(spec, case).arrays()
    v = {name: tangents[name].astype(np.float64) for name in tangents if base[name] is not None}

    def moved(t: float) -> dict:
        return {**base, **{name: base[name] + t * d for name, d in v.items()}}

    noise = [moved(t) for t in _noise_ts()]
    return {"base": base, "v": v, "moved": moved, "noise": noise}


def _taken(plan: dict, h: float) -> dict:
    """The tangent of the displacement ``(x + h v) - (x - h v)`` really made, over 2h (float64 rounds x +- h v)."""
    base = plan["base"]
    return {name: ((base[name] + h * d) - (base[name] - h * d)) / (2 * h) for name, d in plan["v"].items()}


def _difference_calls(spec: OpSpec, case: Case, plan: dict, h: float) -> list:
    return [jvp_call(spec, plan["base"], _taken(plan, h), case),
            *(forward_call(spec, plan["moved"](t), case) for t in _fd_steps(h))]


def _against_differences(impl, spec: OpSpec, case: Case, plan: dict, running, at: int) -> Mismatch | None:
    """(b): the JVP vs central differences of the forward, per output element; ``running`` holds, from ``at`` on, the
    forward at x, the noise probes and ``_difference_calls`` at the quiet step."""
    base = plan["base"]
    case64 = case.with_(values=fd_case(spec, case).values)
    if _forward_failed_first(spec, case64, base, _From(running, at)) is not None:
        return None  # the forward's row FAILs: differences of a wrong forward say nothing about the JVP
    f_base = np.asarray(running.result(at), np.float64)
    probes = np.stack([np.asarray(running.result(at + 1 + i), np.float64) for i in range(len(plan["noise"]))])
    noise = tolerances.noise_levels(probes)
    scales = magnitudes.forward(spec.name, base, case.config)
    term = scales[0] if scales is not None else np.abs(f_base)
    h = max((tolerances.fd_step(n, m) for n, m in zip(noise.flat, np.broadcast_to(term, noise.shape).flat)),
            default=tolerances.FD_STEP)
    quiet = h == tolerances.FD_STEP
    if quiet:
        first = at + 1 + len(plan["noise"])
        results = [running.result(first + i) for i in range(3)]
    else:
        results = submit(impl, _difference_calls(spec, case, plan, h)).results()
    got, _ = _checked_result(results[0], spec.jvp_name, [("output", f_base), ("output_tangent", f_base)], case.dtype)
    points = [np.asarray(p, np.float64) for p in results[1:]]
    numerical = (points[0] - points[1]) / (2 * h)
    extra = 0.0
    if not quiet:
        truncation = np.abs(numerical - (points[2] - points[3]) / (4 * h)) / 3
        extra = np.vectorize(lambda n, t: tolerances.fd_error(n, h, t))(noise, truncation)
    taken = _taken(plan, h)
    fan_in = tolerances.jvp_fan_in(spec.fan_in(case), len(taken))
    own = magnitudes.jvp(spec.name, base, taken, case.config)
    spread = tolerances.normwise_bound(case.dtype, fan_in, magnitudes.jvp_normwise(spec.name, base, taken, case.config))
    tolerance = tolerances.for_finite_differences(case.dtype, fan_in, numerical, extra=extra, normwise=spread,
                                                  scale=None if own is None else own[0])
    return locate("output_tangent vs central differences of the forward", got[1], numerical, tolerance)


def _forward_reverse(spec: OpSpec, case: Case, arrays: dict, tangents: dict, tangent: np.ndarray, grads) -> Mismatch | None:
    """(c): ``<J v, w>`` (the JVP's tangent with the grad_output w) vs ``<v, J^T w>`` (the tangents with the backward)."""
    w = arrays["grad_output"].astype(np.float64)
    names = [n for n in spec.differentiable if n in tangents]
    lhs_terms = np.asarray(tangent, np.float64) * w
    rhs_terms = [tangents[n].astype(np.float64) * np.asarray(grads[n], np.float64) for n in names]
    lhs, rhs = float(lhs_terms.sum()), float(sum(t.sum() for t in rhs_terms))
    tolerance, fan_in = _tangent_tolerance(spec, case, arrays, tangents, tangent)
    back = magnitudes.backward(spec.name, arrays, case.config)
    entering = float(np.sum(tolerance.term_scale(np.asarray(tangent, np.float64)) * np.abs(w)))
    entering += sum(float(np.sum(back[n][0] * np.abs(tangents[n]))) for n in names if back.get(n) is not None)
    n_products = w.size * fan_in + sum(tangents[n].size for n in names)
    abs_sum = float(np.abs(lhs_terms).sum() + sum(np.abs(t).sum() for t in rhs_terms))
    allowed = tolerances.for_adjoint(case.dtype, n_products, abs_sum + entering)
    if np.isfinite(lhs) and np.isfinite(rhs) and abs(lhs - rhs) <= allowed:
        return None
    sides = [(tolerance, tangent, w)]
    normwise = magnitudes.normwise(spec.name, arrays, case.config)
    for n in names:
        if back.get(n) is not None:
            sides.append((tolerances.for_sum(case.dtype, spec.fan_in(case), grads[n], scale=back[n][0], naive_scale=back[n][1],
                                             normwise=normwise.get(n)), grads[n], tangents[n]))
    bound = allowed + tolerances.adjoint_band(sides)
    imprecise = bool(np.isfinite(lhs) and np.isfinite(rhs) and abs(lhs - rhs) <= bound)
    return Mismatch("<v, J^T w> from the backward (got) vs <J v, w> from the JVP (expected)", "the inner product",
                    lhs, rhs, allowed, 1, 1, imprecise=imprecise, bound=bound)


def _own_gradients(spec: OpSpec, case: Case, arrays: dict, running, index: int) -> dict | None:
    """The backward's gradients by input name, or None if it raised, declined or returned garbage (its rows say so)."""
    try:
        got, _ = _checked_result(running.result(index), spec.backward_name,
                                 [(f"grad_{n}", arrays[n]) for n in spec.differentiable], case.dtype)
    except (ImplementationFailure, NotImplementedForConfig):
        return None
    return dict(zip(spec.differentiable, got))


@_guarded
def jvp(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """The forward-mode rule vs torch.func.jvp, vs finite differences of the own forward, and vs the own backward."""
    skip = _missing(impl, spec, CHECK, case, spec.jvp_name)
    if skip:
        return skip
    arrays = case.arrays()
    tangents = draw_tangents(spec, arrays, case)
    calls = [jvp_call(spec, arrays, tangents, case)]
    plan, at = None, 1
    if case.dtype == "float64" and impl.function(spec.name) is not None:
        plan = _plan_differences(spec, case, tangents)
        calls += [forward_call(spec, plan["base"], case), *(forward_call(spec, p, case) for p in plan["noise"]),
                  *_difference_calls(spec, case, plan, tolerances.FD_STEP)]
    own_backward = impl.function(spec.backward_name) is not None
    if own_backward:  # last: the worker stops at a call that raises, and a crashing backward is its own rows' finding
        calls.append(backward_call(spec, arrays["grad_output"], arrays, case))
    running = submit(impl, calls)  # the worker computes while torch does
    try:
        found, note, tangent = _against_torch(spec, case, arrays, tangents, running.result(0))
    except _Skip as skip:
        return skip.verdict
    if own_backward:
        grads = _own_gradients(spec, case, arrays, running, len(calls) - 1)
        if grads is not None:
            found.append(_forward_reverse(spec, case, arrays, tangents, tangent, grads))
    if plan is not None:
        found.append(_against_differences(impl, spec, case, plan, running, at))
    found = [m for m in found if m is not None]
    failing = next((m for m in found if not m.imprecise), None)
    worst = failing or max(found, key=lambda m: m.digits_lost, default=None)
    message, hints = "", []
    if worst is not None:
        hints.append(f"the tangents: oracle.forward_mode.draw_tangents(spec, arrays, case), standard normal from seed "
                     f"{case.seed} ^ 0x7A4F, for {', '.join(tangents) or 'no input'}")
    if worst is not None and worst.array.startswith("<v, J^T w>") and len(found) == 1:
        message = ("the JVP agrees with torch.func.jvp here (and, in float64, with finite differences): the backward (or how the two "
                   "rules pair up) is the suspect")
    return _judged(spec, CHECK, case, worst, note, message, hints)
