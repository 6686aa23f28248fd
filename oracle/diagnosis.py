"""Name the classic mistake a failing backward matches, from evidence only.

``diagnose(impl, spec, case)`` re-runs the implementation's backward on the
failing case and recomputes the case's gradients with every catalogued
mistake of the op (``oracle.mistakes``). A mistake is reported when

* its gradients match the implementation's on *every* differentiable output
  (within the dtype's tolerance, ``oracle.tolerances.for_sum``; NaN matches
  NaN and inf the same inf), and
* they do *not* also match the correct gradients (refimpl's) on this case:
  where the mistake makes no difference, agreeing with it is no evidence.

The size of the error is never used to guess. The result is a list of hint
lines for ``Verdict.hints``: one per matching mistake, or, when the
implementation's gradients are wrong here and no catalogued mistake
reproduces them, one line saying so, after what two more calls show whatever
the op: a backward that returns the same gradients for G and 2G (it ignores
``grad_output``), or different gradients for two identical calls (it is not
deterministic). Nothing (``[]``) when the backward cannot
be re-run (it raises, hangs, returns garbage), when it agrees with the correct
gradients on this case, or when the op has no catalogued mistakes.
``diagnose`` never raises.
"""

from __future__ import annotations

import numpy as np

from oracle import determinism, mistakes, tolerances
from oracle.case import Case
from oracle.implementation import Implementation, ImplementationFailure, NotImplementedForConfig, call
from oracle.ops import OpSpec, positional
from oracle.verdict import locate

HINT = "matches the classic mistake '{name}': {description}"


def diagnose(impl: Implementation, spec: OpSpec, case: Case) -> list[str]:
    """Hint lines naming the catalogued mistakes whose gradients are the implementation's on ``case``; never raises."""
    try:
        with np.errstate(all="ignore"):
            return _diagnose(impl, spec, case)
    except Exception:  # noqa: BLE001 - a hint is an extra: it must never turn a verdict into a crash
        return []


IGNORES_GRAD_OUTPUT = ("the backward ignores grad_output: it returns the same gradients for G and 2G (a vector-Jacobian "
                       "product is linear in G; gradcheck's 'backward not using grad_output' class)")
NOT_DETERMINISTIC = ("two identical calls of the backward returned different gradients: it is not deterministic "
                     "(a layer object whose gradients accumulate across calls, never reset, does this)")


def _diagnose(impl: Implementation, spec: OpSpec, case: Case) -> list[str]:
    analysis = _analyse(impl, spec, case)
    if analysis is None:
        return []
    found, n_candidates, got = analysis
    if found:
        return [HINT.format(name=m.name, description=m.description) for m in found]
    return [*_structural(impl, spec, case, got),
            f"matches none of the {n_candidates} classic {spec.name} mistakes catalogued in oracle.mistakes"]


def _structural(impl: Implementation, spec: OpSpec, case: Case, got: list) -> list[str]:
    """Mistakes of any op, recognized from two more calls: a backward whose result does not change when G doubles
    (while G is not zero), or changes between two identical calls."""
    arrays = case.arrays()
    g = arrays["grad_output"]
    if not np.any(g) or not np.all(np.isfinite(g)):
        return []
    backward = impl.function(spec.backward_name)
    rest = positional(spec, arrays)
    try:
        again = _gradients(spec, call(backward, spec.backward_name, [g, *_copies(rest)], case.config), like=got)
        doubled = _gradients(spec, call(backward, spec.backward_name, [g * g.dtype.type(2), *_copies(rest)], case.config),
                             like=got)
    except (ImplementationFailure, NotImplementedForConfig):
        return []
    if again is None or doubled is None:
        return []
    names = [f"grad_{n}" for n in spec.differentiable]
    differ = determinism.difference(got, again, names)
    if differ:
        return [f"{NOT_DETERMINISTIC} ({differ})"]
    if determinism.difference(got, doubled, names) is None and any(a is not None and np.any(a) for a in got):
        return [IGNORES_GRAD_OUTPUT]
    return []


def _analyse(impl: Implementation, spec: OpSpec, case: Case) -> tuple[list, int, list] | None:
    """``(matching mistakes, number of candidates, the implementation's gradients)``, or None when there is nothing
    to diagnose on ``case``.

    Nothing to diagnose: the op has no catalogued mistakes, refimpl or the
    implementation has no backward, the implementation's backward fails or
    returns something not shaped like gradients, or its gradients are right here.
    """
    candidates = mistakes.for_op(spec.name)
    correct = mistakes.reference(spec.backward_name)
    backward = impl.function(spec.backward_name)
    if not candidates or correct is None or backward is None:
        return None
    arrays = case.arrays()
    args = [arrays["grad_output"], *positional(spec, arrays)]
    reference = _gradients(spec, correct(*_copies(args), **case.config))
    try:
        got = _gradients(spec, call(backward, spec.backward_name, args, case.config), like=reference)
    except (ImplementationFailure, NotImplementedForConfig):
        return None
    if got is None or reference is None or _same(reference, got, spec, case):
        return None
    found = []
    for mistake in candidates:
        try:
            predicted = _gradients(spec, mistake.backward(*_copies(args), **case.config), like=reference)
        except Exception:  # noqa: BLE001 - a mistake that cannot run on this case explains nothing here
            continue
        if predicted is not None and _same(predicted, got, spec, case) and not _same(predicted, reference, spec, case):
            found.append(mistake)
    return found, len(candidates), got


def _copies(args: list) -> list:
    return [None if a is None else np.array(a, copy=True) for a in args]


def _gradients(spec: OpSpec, result, like: list | None = None) -> list[np.ndarray | None] | None:
    """The backward's result as one float array (or None) per differentiable input, None if it is not that.

    With ``like`` (the correct gradients), each array must also have its counterpart's shape, and be None where it is.
    """
    n = len(spec.differentiable)
    results = [result] if n == 1 else (list(result) if isinstance(result, (tuple, list)) and len(result) == n else None)
    if results is None:
        return None
    out = []
    for k, r in enumerate(results):
        want = None if like is None else like[k]
        if r is None and (like is None or want is None):
            out.append(None)
        elif isinstance(r, np.ndarray) and r.dtype.kind == "f" and (like is None or (want is not None and r.shape == want.shape)):
            out.append(r)
        else:
            return None
    return out


def _same(predicted: list, got: list, spec: OpSpec, case: Case) -> bool:
    """``got`` equals ``predicted`` on every differentiable output, within the dtype's tolerance for the op's sums."""
    fan_in = spec.fan_in(case)
    for name, want, have in zip(spec.differentiable, predicted, got):
        if want is None or have is None:
            if want is not None or have is not None:
                return False
            continue
        if want.shape != have.shape:
            return False
        want64 = want.astype(np.float64)
        if locate(f"grad_{name}", have, want64, tolerances.for_sum(case.dtype, fan_in, want64)) is not None:
            return False
    return True
