"""The ``double_backward`` check: the second order, against torch's own and against differences of the implementation's
own first order.

Contract (optional; ``torch:`` and ``jax:`` modules get it from their framework, ``oracle.untrusted.native``)::

    NAME_double_backward(grad_output, v, *inputs, **config) -> (ds/dg, ds/dx_1, ..., ds/dx_k)

With ``B(g, x) = (B_1, ..., B_k)`` the backward (``NAME_backward``: the gradient of ``<g, f(x)>`` with respect to
each differentiable input ``x_i``) and ``v = (v_1, ..., v_k)`` a direction per gradient (the shape of ``x_i``, None
where ``x_i`` is None),

    s(g, x) = sum_i <B_i(g, x), v_i>
    ds/dg   = sum_i J_i v_i                       (J_i the Jacobian of f in x_i: the forward-mode derivative along v)
    ds/dx_j = sum_i (d^2 <g, f> / dx_j dx_i) v_i  (the Hessian-vector product of <g, f>)

returned in the order ``(grad_output, *differentiable inputs)``, None for an input given as None. This is what
``torch.autograd.grad(B, x, v, create_graph=True)`` feeds a WGAN-GP penalty or a Hessian-vector product.

The check, one row per op and dtype, on the finite-difference-safe values of the case (``checks.fd_case``):

(a) vs torch's double backward of ``torch.nn.functional``'s op (float64, on the judge's side), each element within
    ``tolerances.for_second_order``. Independent of the implementation's first order: ``gradgradcheck`` compares
    the second order with the implementation's own first, so a first-order bug passes it, and it skips a gradient
    that does not require grad, so a backward that returns a detached gradient (every second order through it 0)
    passes it too. Here both FAIL.
(b) vs central differences of the implementation's own float64 backward, ``<r, w> = d/dt <v, B(g + t w_g, x + t w_x)>``
    along ``FD_DIRECTIONS`` random directions ``w`` per argument (the judge sends the moved points to the worker and
    differentiates what comes back), with the first-order finite differences' step and noise machinery
    (``oracle.checks``, ``oracle.tolerances``): this needs no framework at all.

A backward the framework cannot differentiate (``@once_differentiable``) is NOT_IMPLEMENTED, "no double backward";
an implementation without ``NAME_double_backward`` (NumPy code) is NOT_IMPLEMENTED.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from oracle import dtypes, magnitudes, tolerances, torch_oracle
from oracle.case import Case
from oracle.checks import (
    FD_DIRECTIONS, _checked_result, _fd_estimates, _fd_steps, _float64_unless_index, _judged, _noise_ts, _verdict_of,
    backward_call, fd_case,
)
from oracle.implementation import Implementation, submit
from oracle.ops import OpSpec, positional
from oracle.verdict import FAIL, NOT_IMPLEMENTED, SKIPPED, Verdict, locate

CHECK = "double_backward"


#: torch 2.13's batch_norm and layer_norm double backwards raise ("Expected a proper Tensor but got None ... 'other'")
#: when weight is None and bias is not: the reference passes a constant weight of ones there, the same function
_UNIT_WEIGHT_WHEN_NONE = ("batch_norm", "layer_norm")


def reference(spec: OpSpec, arrays: dict, config: dict, directions: dict, dtype: str = "float64") -> dict | None:
    """torch's double backward of ``torch.nn.functional``'s op: ``{"grad_output": ds/dg, name: ds/dx or None}``
    in ``dtype``, or None where torch has none (it raises)."""
    torch = torch_oracle._torch()
    tdtype = getattr(torch, dtype)
    tensors = {}
    for name in spec.inputs:
        a = arrays[name]
        if a is None:
            tensors[name] = None
        elif np.asarray(a).dtype.kind in "iu":
            tensors[name] = torch.tensor(np.array(a, dtype=np.int64), dtype=torch.long)
        else:
            tensors[name] = torch.tensor(np.array(a, copy=True), dtype=tdtype, requires_grad=name in spec.differentiable)
    if spec.name in _UNIT_WEIGHT_WHEN_NONE and tensors["weight"] is None and tensors["bias"] is not None:
        tensors["weight"] = torch.ones(np.shape(arrays["bias"]), dtype=tdtype)  # the same function (above)
    wanted = [n for n in spec.differentiable if tensors[n] is not None and (n != "weight" or arrays[n] is not None)]
    g = torch.tensor(np.array(arrays["grad_output"], copy=True), dtype=tdtype, requires_grad=True)
    try:
        out = torch_oracle.torch_function(spec.name)(*tensors.values(), **config)
        grads = torch.autograd.grad(out, [tensors[n] for n in wanted], g, create_graph=True, allow_unused=True)
        terms = [(grad * torch.tensor(directions[n], dtype=tdtype)).sum() for n, grad in zip(wanted, grads)
                 if grad is not None and grad.requires_grad]
        targets = [g, *[tensors[n] for n in wanted]]
        second = torch.autograd.grad(sum(terms), targets, allow_unused=True) if terms else [None] * len(targets)
    except RuntimeError:
        return None
    result = {name: None for name in spec.differentiable}
    for name, target, r in zip(["grad_output", *wanted], targets, second):
        result[name] = (torch.zeros_like(target) if r is None else r).detach().numpy()
    return result


def double_backward_call(spec: OpSpec, grad_output, directions: dict, arrays: dict, case: Case) -> tuple[str, list, dict]:
    """The call of the implementation's double backward, as ``submit`` takes it."""
    v = tuple(directions.get(n) for n in spec.differentiable)
    return spec.double_backward_name, [grad_output, v, *positional(spec, arrays)], case.config


#: why the second order is not checked in float16 / bfloat16 (``oracle.tolerances``, "Half precision")
HALF_PRECISION = ("not checked in half precision: the second order's term scales are measured from torch's float32 "
                  "double backward and its differences from the backward in float64; the first order (backward, "
                  "finite differences, jvp) is checked in this dtype")


def double_backward(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """The double backward vs torch's (float64) and vs central differences of the implementation's own backward."""
    case = fd_case(spec, case)
    if impl.function(spec.double_backward_name) is None:
        return Verdict(spec.name, CHECK, NOT_IMPLEMENTED, case, f"{impl.label} has no {spec.double_backward_name}")
    if dtypes.is_half(case.dtype):
        return Verdict(spec.name, CHECK, SKIPPED, case, HALF_PRECISION)
    return _verdict_of(lambda: _check(impl, spec, case), spec, CHECK, case)


def _check(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    arrays = case.arrays()
    dtype = np.dtype(case.dtype)
    rng = np.random.default_rng(case.seed ^ 0x5EC0)
    names = [n for n in spec.differentiable if arrays[n] is not None]
    directions = {n: rng.standard_normal(arrays[n].shape).astype(dtype) for n in names}
    base = {k: _float64_unless_index(v) for k, v in arrays.items()}
    v64 = {n: directions[n].astype(np.float64) for n in names}
    moved_args = ["grad_output", *names]  # the double backward differentiates in each of these
    noise_rng, dir_rng = np.random.default_rng(case.seed ^ 0x401F), np.random.default_rng(case.seed ^ 0x5EEE)
    probe = {n: noise_rng.standard_normal(base[n].shape) for n in moved_args}
    # each direction moves every argument at once: <r, w> = sum over the arguments, one difference per direction
    # (the first order differentiates per input; here each point costs a backward call, and torch's reference
    # already locates a wrong part), and the backward's noise is measured along one such direction too
    steps = [{n: dir_rng.standard_normal(base[n].shape) for n in moved_args} for _ in range(FD_DIRECTIONS)]
    noise_points = [_moved(base, probe, t) for t in _noise_ts()]
    quiet_points = [_moved(base, w, t) for w in steps for t in _fd_steps(tolerances.FD_STEP)]
    planned = noise_points + quiet_points
    running = submit(impl, [double_backward_call(spec, arrays["grad_output"], directions, arrays, case),
                            *(backward_call(spec, p["grad_output"], p, case) for p in planned)])
    expected = reference(spec, base, case.config, v64) if not spec.torch_untrusted(case) else None  # meanwhile
    expected32 = reference(spec, base, case.config, v64, dtype="float32") if expected is not None else None

    shapes = [("grad_grad_output", arrays["grad_output"]),
              *[(f"grad_{n}", None if arrays[n] is None else (expected[n] if expected else arrays[n])) for n in spec.differentiable]]
    if expected is not None:
        shapes[0] = ("grad_grad_output", expected["grad_output"])
    got, dtype_note = _checked_result(running.result(0), spec.double_backward_name, shapes, case.dtype)
    got = dict(zip(["grad_output", *spec.differentiable], got))
    fan_in = spec.fan_in(case)
    tols = {}
    for name in moved_args:
        if expected is not None:
            error = None if expected32 is None else np.asarray(expected32[name], np.float64) - expected[name]
            tols[name] = tolerances.for_second_order(case.dtype, fan_in, expected[name], error)
    worst = None
    if expected is not None:  # (a) vs torch
        for name in moved_args:
            mismatch = locate(f"d/d{name}", got[name], expected[name], tols[name])
            if mismatch and not mismatch.imprecise:
                return _judged(spec, CHECK, case, mismatch, dtype_note, "expected = torch's double backward (float64)",
                               hints=_detached_hints(spec, case, base, v64, got, tols, moved_args))
            if mismatch and (worst is None or mismatch.digits_lost > worst.digits_lost):
                worst = mismatch
    found = _against_differences(impl, spec, case, base, v64, got, tols, running, len(noise_points), steps, moved_args)
    if found is not None and not found.imprecise:
        return _judged(spec, CHECK, case, found, dtype_note,
                       "expected = central differences of the implementation's own backward, <v, B(g + t w, x + t w)>")
    if found is not None and (worst is None or found.digits_lost > worst.digits_lost):
        worst = found
    alone = "" if expected is not None else (
        "torch gives no double backward here: central differences of the backward alone decided")
    return _judged(spec, CHECK, case, worst, dtype_note, alone)


def _flat(results, names) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(r, np.float64)) for r, n in zip(results, names) if n is not None])


def _moved(base: dict, w: dict, t: float) -> dict:
    """The arguments moved by ``t w`` (``w``: a direction per argument); a loss's 0-d grad_output stays an array."""
    return {**base, **{n: np.asarray(base[n] + t * d) for n, d in w.items()}}


def _against_differences(impl, spec, case, base, v64, got, tols, running, n_noise, steps, moved_args):
    """(b): ``<r, w> = sum_name <r_name, w_name>`` vs the central difference of ``phi(t) = <v, B((g, x) + t w)>``
    along each direction ``w``; the worst mismatch (a FAIL first), or None."""
    expected_shapes = [(f"grad_{n}", base[n]) for n in spec.differentiable]
    present = [base[n] for n in spec.differentiable]
    v_flat = _flat([v64.get(n) for n in spec.differentiable], present)
    term_scales = magnitudes.backward(spec.name, base, case.config)

    def phis(results) -> list[np.ndarray]:
        return [_flat(_checked_result(r, spec.backward_name, expected_shapes, "float64")[0], present) for r in results]

    magnitude = sum(float(np.sum(np.abs(v64[n]) * term_scales[n][0])) for n in v64 if term_scales.get(n) is not None)
    probed = phis(running.result(1 + k) for k in range(n_noise))
    if not (np.isfinite(magnitude) and magnitude > 0):
        magnitude = float(np.sum(np.abs(v_flat * probed[0])))
    noise = tolerances.noise_level(np.array([float(np.sum(v_flat * p)) for p in probed]))
    h = tolerances.fd_step(noise, magnitude)
    if h == tolerances.FD_STEP:
        values = phis(running.result(1 + n_noise + k) for k in range(len(steps) * len(_fd_steps(h))))
    else:  # a noisy backward: a larger step, its truncation measured (a second request)
        points = [_moved(base, w, t) for w in steps for t in _fd_steps(h)]
        values = phis(submit(impl, [backward_call(spec, p["grad_output"], p, case) for p in points]).results())
    r = {n: np.asarray(got[n], np.float64) for n in moved_args}
    size = sum(r[n].size for n in moved_args)
    worst = None
    for d, (w, (value, truncation)) in enumerate(zip(steps, _fd_estimates(values, v_flat, len(steps), h))):
        taken = {n: ((base[n] + h * w[n]) - (base[n] - h * w[n])) / (2 * h) for n in moved_args}
        analytical = np.array(sum(float(np.sum(r[n] * taken[n])) for n in moved_args))
        scale = sum(float(np.sum(np.abs(r[n] * w[n]))) for n in moved_args)
        known = all(n in tols for n in moved_args)
        own = np.array(sum(float(np.sum(tols[n].term_scale(r[n]) * np.abs(w[n]))) for n in moved_args)) if known else None
        error = (np.array(sum(float(np.sum(np.asarray(tols[n].slack) * np.abs(w[n]))) for n in moved_args) / 2)
                 if known and case.dtype != "float64" else None)
        extra = tolerances.fd_second_order_error(noise, magnitude, h, truncation)
        tolerance = tolerances.for_finite_differences(case.dtype, tolerances.second_order_fan_in(spec.fan_in(case)) * size,
                                                      np.array(scale), error, extra=extra, scale=own)
        found = locate(f"<(d/dgrad_output, {', '.join(f'd/d{n}' for n in moved_args[1:])}), w{d}>", analytical,
                       np.array(value), tolerance)
        if found:
            found = replace(found, index=f"random direction w{d} moving every argument (seed {case.seed ^ 0x5EEE})",
                            count=1, size=1)
            if worst is None or (worst.imprecise and not found.imprecise):
                worst = found
            if not found.imprecise:
                return worst
    return worst


def _detached_hints(spec: OpSpec, case: Case, base: dict, v64: dict, got: dict, tols: dict, moved_args: list) -> list[str]:
    """The gradients whose second order is missing: the result matches torch's double backward with their
    directions set to 0 (each one alone, then all at once), as it does when the backward returns them cut from the
    autograd graph."""
    def matches(directions: dict) -> bool:
        wanted = reference(spec, base, case.config, directions)
        return wanted is not None and all(locate(n, got[n], wanted[n], tols[n]) is None for n in moved_args)

    names = list(v64)
    cut = [n for n in names if len(names) > 1 and matches({**v64, n: np.zeros_like(v64[n])})]
    if not cut and matches({n: np.zeros_like(v) for n, v in v64.items()}):
        cut = names
    if not cut:
        return []
    which = ", ".join(f"grad_{n}" for n in cut)
    return [f"the result is torch's double backward without the part through {which}: the backward returns "
            f"{'it' if len(cut) == 1 else 'them'} cut from the autograd graph (.detach(), computed under torch.no_grad "
            "or through NumPy), so create_graph=True differentiates nothing through it; torch.autograd.gradgradcheck "
            "skips outputs that do not require grad and passes such a backward"]
