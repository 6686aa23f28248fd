"""The property suite, generated from the op records: every op x dtype x check.

Collected from ``tests/`` and, for an installed bpcheck, from anywhere with

    pytest --pyargs oracle.suite --impl=mypkg.ops

A failure's message is the verdict: op, check, the located worst error
(index, expected, got, abs and rel error), the case's reproduction (config,
shapes, dtype, seed) and what to try next. Cases the implementation declines
with NotImplementedError are counted, not failed; if it declines all of them
the test is skipped with that reason. An imprecise case (a right rule that
loses digits, ``oracle.tolerances``) is not a failure: the property goes on
over every case, keeps the worst imprecise one and reports it as an
``ImpreciseGradient`` warning, or as a failure under ``--bpcheck-strict``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import pytest
from hypothesis import event, example, given, note, settings

from oracle import pytest_plugin
from oracle.case import DTYPES, Case
from oracle.checks import CHECKS
from oracle.examples import examples_for
from oracle.identities import IDENTITIES
from oracle.ops import SPECS
from oracle.verdict import CHECK_TITLES, NOT_IMPLEMENTED, SKIPPED, Verdict


class NotImplementedForSomeConfigurations(UserWarning):
    """The implementation declined part of the configuration space with NotImplementedError (shown, not failed)."""


class ImpreciseGradient(UserWarning):
    """The implementation's rule is right but loses digits beyond rounding (shown, failed only under --bpcheck-strict)."""


def _digits_lost(verdict: Verdict) -> float:
    return verdict.mismatch.digits_lost if verdict.mismatch is not None else 0.0


def keep_worst_imprecise(tally: "Tally", verdict: Verdict) -> None:
    """Remember ``verdict`` if it is the most imprecise case so far."""
    if tally.imprecise is None or _digits_lost(verdict) > _digits_lost(tally.imprecise):
        tally.imprecise = verdict


def report_imprecise(verdict: Verdict | None, strict: bool, prefix: str = "") -> None:
    """An imprecise verdict as a warning, or as a failure under --bpcheck-strict."""
    if verdict is None:
        return
    text = prefix + verdict.render()
    if strict:
        raise AssertionError("\nimprecise (a failure under --bpcheck-strict):\n" + text)
    warnings.warn(ImpreciseGradient(text), stacklevel=3)


def _strict(request) -> bool:
    return bool(request.config.getoption("bpcheck_strict", default=False))


def applies(op: str, check: str) -> bool:
    """Whether ``check`` says anything about ``op`` (the adjoint needs linearity, identities need some)."""
    spec = SPECS[op]
    if check == "adjoint":
        return bool(spec.linear_in or spec.linearized_in)
    if check == "identities":
        return op in IDENTITIES
    return True


ALL_CHECKS = {**CHECKS, "identities": lambda impl, spec, case: IDENTITIES[spec.name](impl, spec, case)}
PARAMS = [
    (op, check, dtype)
    for op in SPECS
    for check in ALL_CHECKS
    for dtype in DTYPES
    if applies(op, check)
]


def checks_for(op: str) -> list[str]:
    """The checks that apply to ``op``, in ``ALL_CHECKS`` order."""
    return [check for check in ALL_CHECKS if applies(op, check)]


@dataclass
class Tally:
    """What one run of a property saw, case by case."""

    ran: int = 0
    declined: list = field(default_factory=list)
    """The NOT_IMPLEMENTED verdicts (configurations the implementation declines)."""
    skipped: list = field(default_factory=list)
    """The SKIPPED verdicts."""
    failing: Verdict | None = None
    """The last failing verdict: after Hypothesis has shrunk and replayed, the minimal counterexample."""
    imprecise: Verdict | None = None
    """The worst imprecise verdict (most digits lost beyond rounding); the cases go on after it."""


def build_property(
    op: str,
    check: str,
    dtype: str,
    *,
    before: Callable[[Case], bool] | None = None,
    examples: list[Case] | None = None,
    run_check: Callable | None = None,
):
    """The Hypothesis test ``prop(impl, tally)`` of one check over the op's strategy for one dtype.

    ``examples`` are attached as explicit examples: by default the op's own (``oracle.examples``);
    a failing one stops the run unshrunk, so the pytest suite and ``bpcheck verify`` pass ``()`` and
    run them separately. ``run_check`` replaces the check (the bug zoo records verdicts through it).
    Call the result (after decorating it with ``settings``/``seed`` if wanted) to run it: it raises
    AssertionError carrying the rendered verdict of the (shrunk) counterexample. ``tally`` records
    every case. ``before(case)``, if given, is called before each case is checked; when it returns
    False the case is not checked and counts as passing (``bpcheck verify`` uses it to announce each
    case to its parent process, and to stop shrinking that has used up its time).
    """
    spec = SPECS[op]
    run_check = run_check or ALL_CHECKS[check]

    @given(case=spec.cases(dtype))
    def prop(impl, tally: Tally, case):
        if before is not None and not before(case):
            return
        verdict = run_check(impl, spec, case)
        event(f"verdict: {verdict.status}")
        tally.ran += 1
        if verdict.status == NOT_IMPLEMENTED:
            tally.declined.append(verdict)
            return
        if verdict.status == SKIPPED:
            tally.skipped.append(verdict)
            note(verdict.render())
            return
        if verdict.imprecise:
            keep_worst_imprecise(tally, verdict)
            return
        if verdict.failed:
            tally.failing = verdict
            raise AssertionError("\n" + verdict.render())

    # every property shares this source; without its own digest each would draw the same derandomized cases
    prop.hypothesis.inner_test._hypothesis_internal_add_digest = f"{op}/{check}/{dtype}".encode()
    for case in examples_for(op, dtype) if examples is None else examples:
        prop = example(case=case)(prop)
    return prop


def check_example(impl, op: str, check: str, case: Case) -> Verdict:
    """One explicit example through one check."""
    return ALL_CHECKS[check](impl, SPECS[op], case)


def _report_declined(impl, op: str, check: str, tally: Tally) -> None:
    """Skip if the implementation declined every case with NotImplementedError; else say how many it declined."""
    if not tally.declined:
        return
    first = tally.declined[0]
    message = (
        f"{impl.label}: {op} {check} not implemented for {len(tally.declined)} of {tally.ran} drawn "
        f"configuration(s); e.g. {first.message} on {first.case!r}"
    )
    if len(tally.declined) == tally.ran:
        pytest.skip(message)
    warnings.warn(NotImplementedForSomeConfigurations(message), stacklevel=2)


def run_property(impl, op: str, check: str, dtype: str, strict: bool = False) -> None:
    """Run one check over the op's strategy (and its explicit edge-case examples) for one dtype."""
    tally = Tally()
    build_property(op, check, dtype)(impl, tally)
    _report_declined(impl, op, check, tally)
    report_imprecise(tally.imprecise, strict)


def _make_test(op: str, check: str, dtype: str):
    prop = build_property(op, check, dtype, examples=())

    def test(impl, request):
        tally = Tally()
        settings(settings.get_profile(pytest_plugin.active_profile))(prop)(impl, tally)
        _report_declined(impl, op, check, tally)
        report_imprecise(tally.imprecise, _strict(request))

    # expose Hypothesis's handle so --hypothesis-show-statistics reports this test
    test.hypothesis = prop.hypothesis
    test.is_hypothesis_test = True
    test.__name__ = f"test_{op}_{check}_{dtype}"
    test.__doc__ = f"{op}: {CHECK_TITLES.get(check, check)}, {dtype}"
    return test


def _make_examples_test(op: str, check: str):
    """The op's explicit edge cases and field bugs (oracle.examples) through one check, both dtypes."""
    cases = [case for dtype in DTYPES for case in examples_for(op, dtype)]

    @pytest.mark.parametrize("case", cases, ids=[f"{c.dtype}-{i % (len(cases) // len(DTYPES))}" for i, c in enumerate(cases)])
    def test(impl, case, request):
        verdict = check_example(impl, op, check, case)
        if verdict.status == NOT_IMPLEMENTED:
            pytest.skip(f"{impl.label}: {verdict.message}")
        if verdict.failed:
            raise AssertionError("\nexplicit example (oracle/examples.py):\n" + verdict.render())
        if verdict.imprecise:
            report_imprecise(verdict, _strict(request), "explicit example (oracle/examples.py):\n")

    test.__name__ = f"test_{op}_{check}_examples"
    return test


TESTS = {}
for _op, _check, _dtype in PARAMS:
    _test = _make_test(_op, _check, _dtype)
    TESTS[_test.__name__] = _test
for _op, _check in dict.fromkeys((op, check) for op, check, _ in PARAMS):
    if examples_for(_op, DTYPES[0]):
        _test = _make_examples_test(_op, _check)
        TESTS[_test.__name__] = _test
globals().update(TESTS)
