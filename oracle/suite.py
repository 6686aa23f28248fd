"""The property suite, generated from the op records: every op x dtype x check.

Collected from ``tests/`` and, for an installed bpcheck, from anywhere with

    pytest --pyargs oracle.suite --impl=mypkg.ops

A failure's message is the verdict: op, check, the located worst error
(index, expected, got, abs and rel error), the case's reproduction (config,
shapes, dtype, seed) and what to try next. Cases the implementation declines
with NotImplementedError are counted, not failed: the test passes with a
warning that says what was verified (the fraction of the cases and the
configuration features declined, ``oracle.coverage``), or fails with
``--require-full``; if it declines all of them the test is skipped with that
reason. Cases no check can decide (beyond a half-precision dtype's range, torch
not trusted there) are skipped the same way: a test none of whose cases was
checked is a skip, one with some skipped passes with a ``SomeCasesSkipped``
warning that counts them. Distinct defects of one check (a crash on some configurations, wrong
gradients on others) are each shrunk to their own smallest case and reported
together (``oracle.defects``). An imprecise case (a right rule that loses
digits, ``oracle.tolerances``) is not a failure: the property goes on over
every case, keeps the worst imprecise one and reports it as an
``ImpreciseGradient`` warning, or as a failure under ``--bpcheck-strict``. A
backward whose two identical calls differ (``oracle.determinism``) but pass is
reported the same way, as a ``NondeterministicGradient`` warning.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import pytest
from hypothesis import event, example, given, note, settings

from oracle import course, coverage, defects, pytest_plugin, second_order
from oracle.case import DTYPES, Case
from oracle.dtypes import HALF as HALF_DTYPES
from oracle.cases.record import OPTIONAL_FUNCTIONS
from oracle.checks import CHECKS
from oracle.database import WriteOnly, database_key
from oracle.database import apply as apply_database
from oracle.defects import Identities, failure_class
from oracle.examples import examples_for
from oracle.forward_mode import jvp
from oracle.identities import IDENTITIES
from oracle.ops import SPECS
from oracle.verdict import CHECK_TITLES, NOT_IMPLEMENTED, SKIPPED, Verdict


class NotImplementedForSomeConfigurations(UserWarning):
    """The implementation declined part of the configuration space with NotImplementedError (shown, not failed)."""


class SomeCasesSkipped(UserWarning):
    """Some drawn cases were not checked (beyond a half-precision dtype's range, torch not trusted there, ...):
    shown with how many and why, so that a pass says what it did not cover."""


class ImpreciseGradient(UserWarning):
    """The implementation's rule is right but loses digits beyond rounding (shown, failed only under --bpcheck-strict)."""


def _digits_lost(verdict: Verdict) -> float:
    return verdict.mismatch.digits_lost if verdict.mismatch is not None else 0.0


def keep_worst_imprecise(tally: "Tally", verdict: Verdict) -> None:
    """Remember ``verdict`` if it is the most imprecise case so far."""
    if tally.imprecise is None or _digits_lost(verdict) > _digits_lost(tally.imprecise):
        tally.imprecise = verdict


def _report_note(verdict: Verdict | None, strict: bool, what: str, warning: type[UserWarning], prefix: str) -> None:
    """A verdict that passes with a caveat (``what``) as a ``warning``, or as a failure under --bpcheck-strict."""
    if verdict is None:
        return
    text = prefix + verdict.render()
    if strict:
        raise AssertionError(f"\n{what} (a failure under --bpcheck-strict):\n" + text)
    warnings.warn(warning(text), stacklevel=4)


def report_imprecise(verdict: Verdict | None, strict: bool, prefix: str = "") -> None:
    """An imprecise verdict as a warning, or as a failure under --bpcheck-strict."""
    _report_note(verdict, strict, "imprecise", ImpreciseGradient, prefix)


class NondeterministicGradient(UserWarning):
    """Two identical calls of the implementation's backward gave different gradients, each within tolerance
    (shown, failed only under --bpcheck-strict)."""


def keep_nondeterministic(tally: "Tally", verdict: Verdict) -> None:
    """Remember ``verdict`` if its backward was not deterministic (the first such case: they all say the same)."""
    if verdict.nondeterminism and tally.nondeterministic is None:
        tally.nondeterministic = verdict


def report_nondeterministic(verdict: Verdict | None, strict: bool, prefix: str = "") -> None:
    """A verdict whose backward was not deterministic, as a warning, or as a failure under --bpcheck-strict."""
    _report_note(verdict, strict, "not deterministic", NondeterministicGradient, prefix)


def record(tally: "Tally", verdict: Verdict) -> bool:
    """Count a case's verdict in ``tally`` (declined, skipped, the worst imprecise, not deterministic, the features
    checked); whether it failed: the caller records the failure (``Tally.fail``) its own way."""
    tally.ran += 1
    tally.saw(verdict)
    if verdict.status == NOT_IMPLEMENTED:
        tally.declined.append(verdict)
        return False
    if verdict.status == SKIPPED:
        tally.skipped.append(verdict)
        return False
    if not verdict.failed:
        keep_nondeterministic(tally, verdict)
    if verdict.imprecise:
        keep_worst_imprecise(tally, verdict)
        return False
    return verdict.failed


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


ALL_CHECKS = {**CHECKS, "identities": lambda impl, spec, case: IDENTITIES[spec.name](impl, spec, case), "jvp": jvp,
              second_order.CHECK: second_order.double_backward}
#: the dtypes the tests are generated for: ``--bpcheck-dtype`` (``oracle.pytest_plugin.dtypes``, set before this module
#: is collected), float64 and float32 by default
SUITE_DTYPES = tuple(pytest_plugin.dtypes)
PARAMS = [
    (op, check, dtype)
    for op in SPECS
    for check in ALL_CHECKS
    for dtype in SUITE_DTYPES
    if applies(op, check)
]


def optional_missing(impl, op: str, check: str) -> str | None:
    """``"<label> has no NAME"`` if ``check`` needs a function the contract makes optional and ``impl`` lacks it."""
    # without the function the row is not implemented at once (no case drawn) and is no gap for --require-full
    name = getattr(SPECS[op], OPTIONAL_FUNCTIONS[check]) if check in OPTIONAL_FUNCTIONS else None
    if name is None or impl.function(name) is not None:
        return None
    return f"{impl.label} has no {name}"


def not_applicable(check: str, dtype: str) -> str | None:
    """Why ``check`` says nothing in ``dtype`` (the second order in half precision, ``oracle.second_order``), or None."""
    if check == second_order.CHECK and dtype in HALF_DTYPES:
        return second_order.HALF_PRECISION
    return None


def checks_for(op: str) -> list[str]:
    """The checks that apply to ``op``, in ``ALL_CHECKS`` order; under a course style (``oracle.course``) not the
    optional ones: no course's API has a forward-mode rule or a second order, so those rows would say nothing."""
    styled = course.style() is not None
    return [check for check in ALL_CHECKS if applies(op, check) and not (styled and check in OPTIONAL_FUNCTIONS)]


@dataclass(repr=False)
class Tally:
    """What one run of a property saw, case by case."""

    ran: int = 0
    declined: list = field(default_factory=list)
    """The NOT_IMPLEMENTED verdicts (configurations the implementation declines)."""
    skipped: list = field(default_factory=list)
    """The SKIPPED verdicts."""
    failing: Verdict | None = None
    """The last failing verdict: after Hypothesis has shrunk and replayed, the minimal counterexample."""
    defects: dict[str, Verdict] = field(default_factory=dict)
    """Failure identity (``identities``) -> its last failing verdict: after Hypothesis has shrunk
    and replayed each distinct failure, each one's minimal counterexample."""
    checked_features: Counter = field(default_factory=Counter)
    declined_features: Counter = field(default_factory=Counter)
    """The configuration features of the checked and of the declined cases (``oracle.coverage.record``)."""
    masked: set = field(default_factory=set)
    """Identities of defects already found and shrunk: their failing cases pass (``search_defects``)."""
    identities: Identities = field(default_factory=Identities)
    """Tells failures apart (``oracle.defects.Identities``)."""
    imprecise: Verdict | None = None
    """The worst imprecise verdict (most digits lost beyond rounding); the cases go on after it."""
    nondeterministic: Verdict | None = None
    """The first verdict (pass or imprecise) whose backward gave different gradients for identical calls."""
    not_expressible: list = field(default_factory=list)
    """Why each drawn case the run's course style cannot express was left out (``oracle.course``): never checked,
    never a pass or a failure."""


    @property
    def checked(self) -> int:
        """The cases a check decided: neither declined (NOT_IMPLEMENTED) nor skipped."""
        return self.ran - len(self.declined) - len(self.skipped)

    def saw(self, verdict: Verdict) -> None:
        """Count the configuration features of a case's verdict: declined, checked, or (skipped) neither."""
        if verdict.status == NOT_IMPLEMENTED:
            coverage.record(self.declined_features, verdict.op, verdict.case)
        elif verdict.status != SKIPPED:
            coverage.record(self.checked_features, verdict.op, verdict.case)

    def fail(self, verdict: Verdict) -> defects.CheckFailed | None:
        """Record a failing verdict; the exception that tells its identity apart from the others (None if masked)."""
        identity = self.identities.of(verdict)
        if identity in self.masked:
            return None
        self.failing = verdict
        self.defects[identity] = verdict
        return failure_class(identity)("\n" + verdict.render())

    def defect_list(self) -> list[tuple[str, Verdict]]:
        """``(what to call it, its smallest failing verdict)`` for each distinct defect, in the order found."""
        return [(self.identities.label(name), verdict) for name, verdict in self.defects.items()]

    def coverage(self, op: str) -> dict:
        """What was verified (``oracle.coverage.summary``)."""
        return coverage.summary(op, self.checked_features, self.declined_features, self.not_expressible)

    def __repr__(self) -> str:  # short: Hypothesis prints it with every failing case
        return f"Tally(ran={self.ran}, declined={len(self.declined)}, defects={list(self.defects)})"

    def _repr_pretty_(self, printer, cycle) -> None:  # Hypothesis's pretty printer: the same short form
        printer.text(repr(self))


class ShrinkBudget:
    """A ``before`` hook: once a failure is found, ``seconds`` more of checking (shrinking), then no more.

    Past the budget every case passes unchecked, so Hypothesis ends with the smallest failure found so
    far. Each shrinking attempt of a hang costs the whole call time limit (and a fresh worker), so
    without a budget a hang would hold a run for minutes. ``announce(repr(case))``, if given, is called
    before each checked case. ``cut`` tells whether the budget ran out; ``last`` is the last case let through.
    """

    def __init__(self, tally: "Tally", seconds: float, announce: Callable[[str], None] | None = None,
                 draw_seconds: float | None = None):
        self.tally, self.seconds, self.announce = tally, seconds, announce
        self.failed_at: float | None = None
        self.cut = False
        self.last: Case | None = None
        self.draw_seconds = draw_seconds
        """Cases drawn more than this after the first (``bpcheck fuzz``'s rounds) pass unchecked, unless a
        failure is being shrunk (from the first: a fresh process's first check pays for torch's warm-up)."""
        self.draw_until: float | None = None

    def __call__(self, case: Case) -> bool:
        if self.draw_seconds is not None and self.tally.failing is None:
            now = time.monotonic()
            if self.draw_until is None:
                self.draw_until = now + self.draw_seconds
            elif now > self.draw_until:
                return False
        if self.tally.failing is not None:
            now = time.monotonic()
            if self.failed_at is None:
                self.failed_at = now
            if self.cut or now - self.failed_at >= self.seconds:
                self.cut = True
                return False
        self.last = case
        if self.announce is not None:
            self.announce(repr(case))
        return True

    def hint(self) -> str | None:
        """What a reported failure should say if shrinking was cut short."""
        if not self.cut:
            return None
        return f"shrinking stopped after {self.seconds:g} s (--shrink-time): a smaller failing case may exist"


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
    AssertionError (a ``CheckFailed`` of the failure's identity, ``oracle.defects``) carrying the rendered
    verdict of the (shrunk) counterexample, or, with ``report_multiple_bugs``, an ExceptionGroup of one
    such per distinct failure, each shrunk separately. ``tally`` records
    every case. ``before(case)``, if given, is called before each case is checked; when it returns
    False the case is not checked and counts as passing (``bpcheck verify`` uses it to announce each
    case to its parent process, and to stop shrinking that has used up its time).
    """
    spec = SPECS[op]
    run_check = run_check or ALL_CHECKS[check]

    @given(case=course.cases(spec, dtype))
    def prop(impl, tally: Tally, case):
        why = course.not_expressible(case)
        if why:
            tally.not_expressible.append(why)
            return
        if before is not None and not before(case):
            return
        verdict = run_check(impl, spec, case)
        event(f"verdict: {verdict.status}")
        tally.ran += 1
        tally.saw(verdict)
        if verdict.status == NOT_IMPLEMENTED:
            tally.declined.append(verdict)
            return
        if verdict.status == SKIPPED:
            tally.skipped.append(verdict)
            note(verdict.render())
            return
        if not verdict.failed:
            keep_nondeterministic(tally, verdict)
        if verdict.imprecise:
            keep_worst_imprecise(tally, verdict)
            return
        if verdict.failed:
            error = tally.fail(verdict)
            if error is not None:
                raise error

    # every property shares this source; without its own digest each would draw the same derandomized cases
    prop.hypothesis.inner_test._hypothesis_internal_add_digest = f"{op}/{check}/{dtype}".encode()
    # the example database is keyed by the property, not by this source or the implementation (oracle.database)
    prop._hypothesis_internal_database_key = database_key(op, check, dtype)
    for case in examples_for(op, dtype) if examples is None else examples:
        prop = example(case=case)(prop)
    return prop


def check_example(impl, op: str, check: str, case: Case) -> Verdict:
    """One explicit example through one check."""
    return ALL_CHECKS[check](impl, SPECS[op], case)


def _provides(impl, op: str) -> bool:
    spec = SPECS[op]
    return impl.function(spec.name) is not None or impl.function(spec.backward_name) is not None


def _report_declined(impl, op: str, check: str, tally: Tally, dtype: str = "") -> None:
    """Say what was verified when the implementation declined cases with NotImplementedError.

    Skipped if it declined every case; with ``--require-full`` a failure (unless the module has
    neither the op's forward nor its backward); else a NotImplementedForSomeConfigurations warning
    with the fraction verified and the configuration features declined.
    """
    if not tally.declined:
        return
    first = tally.declined[0]
    where = f"{op} {check}" + (f" ({dtype})" if dtype else "")
    cov = tally.coverage(op)
    if cov["checked"]:
        what = f"partial: {coverage.describe(cov)}"
    else:
        what = f"not implemented for any of the {cov['declined']} drawn configuration(s)"
    message = f"{impl.label}: {where} {what}; e.g. {first.message} on {first.case!r}"
    if pytest_plugin.require_full and _provides(impl, op) and (cov["checked"] or check not in coverage.OPTIONAL_CHECKS):
        pytest.fail(f"{message}\n(--require-full: every drawn configuration must be verified)", pytrace=False)
    if not cov["checked"]:
        pytest.skip(message)
    warnings.warn(NotImplementedForSomeConfigurations(message), stacklevel=2)


def _report_skipped(impl, op: str, check: str, tally: Tally, dtype: str = "") -> None:
    """Say which cases were skipped (``SKIPPED`` verdicts: a case outside what the dtype or the oracle can decide).

    The test is skipped, with the first reason, if no case was checked (so a run that checked nothing is never a
    pass); else a ``SomeCasesSkipped`` warning says how many of the cases were not checked and why.
    """
    if not tally.skipped:
        return
    first = tally.skipped[0]
    where = f"{op} {check}" + (f" ({dtype})" if dtype else "")
    if tally.checked <= 0:
        pytest.skip(f"{impl.label}: {where}: no case checked; all {len(tally.skipped)} skipped, e.g. "
                    f"{first.message} on {first.case!r}")
    warnings.warn(SomeCasesSkipped(f"{impl.label}: {where}: {len(tally.skipped)} of {tally.ran} cases skipped, e.g. "
                                   f"{first.message} on {first.case!r}"), stacklevel=2)


#: the most searches of one property for distinct defects (``search_defects``)
DEFECT_ROUNDS = 4


def search_defects(make_prop: Callable[[int], Callable], impl, tally: Tally) -> None:
    """Run a property until it finds no new defect; raise every distinct one found, each shrunk separately.

    Hypothesis shrinks distinct failures separately, but stops drawing soon after the first one: a
    second defect on rarer configurations would go unseen. So after a round that fails, the defects
    found are masked (their failing cases pass) and the property (``make_prop(round)``, a fresh one
    each round) runs again, at most ``DEFECT_ROUNDS`` times. The rounds draw the same cases in a
    derandomized profile, so the search goes on where the last one stopped. Raises the one
    ``CheckFailed``, or an ExceptionGroup of all of them; anything else a round raises ends the search.
    """
    errors: list[BaseException] = []
    try:
        for round_ in range(DEFECT_ROUNDS):
            known = set(tally.defects)
            tally.masked = known
            try:
                make_prop(round_)(impl, tally)
                break
            except Exception as exc:  # noqa: BLE001 - the failures are the finding; raised below
                errors.append(exc)
                if not defects.only_failures(exc) or set(tally.defects) <= known:
                    break
    finally:
        tally.masked = set()
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise defects.group(errors)


def _run_reporting_defects(make_prop, impl, tally: Tally, title: str) -> None:
    """``search_defects``; distinct failures come out as one ExceptionGroup whose message names each defect."""
    try:
        search_defects(make_prop, impl, tally)
    except BaseExceptionGroup as group:
        regrouped = defects.regroup(group, title)
        if regrouped is group:
            raise
        raise regrouped from None


def run_property(impl, op: str, check: str, dtype: str, strict: bool = False) -> None:
    """Run one check over the op's strategy (and its explicit edge-case examples) for one dtype."""
    tally = Tally()
    _run_reporting_defects(lambda _: build_property(op, check, dtype), impl, tally, f"{op} {check} ({dtype})")
    _report_declined(impl, op, check, tally, dtype)
    _report_skipped(impl, op, check, tally, dtype)
    report_imprecise(tally.imprecise, strict)
    report_nondeterministic(tally.nondeterministic, strict)


def _make_test(op: str, check: str, dtype: str):
    run: dict[str, ShrinkBudget] = {}  # this run's budget (the property is built once, at import)
    prop = build_property(op, check, dtype, before=lambda case: run["budget"](case), examples=())

    def test(impl, request):
        missing = optional_missing(impl, op, check)
        if missing:
            pytest.skip(missing)
        why = not_applicable(check, dtype)
        if why:
            pytest.skip(f"{op} {check} ({dtype}): {why}")
        tally = Tally()
        profile = settings.get_profile(pytest_plugin.active_profile)
        budget = run["budget"] = ShrinkBudget(tally, pytest_plugin.shrink_time)

        db = pytest_plugin.database  # --database; None: the profile's own

        def make_prop(round_: int):
            if round_ == 0:
                return settings(profile)(prop) if db is None else apply_database(prop, profile, db)
            # later rounds mask the defects found: they must not replay (and so delete) the stored failures
            again = build_property(op, check, dtype, before=budget, examples=())
            return settings(profile, database=None)(again) if db is None else apply_database(again, profile, WriteOnly(db))

        try:
            _run_reporting_defects(make_prop, impl, tally, f"{op} {CHECK_TITLES.get(check, check)} ({dtype})")
        except BaseException as exc:
            if budget.hint():
                exc.add_note(budget.hint())
            raise
        if tally.not_expressible and not tally.ran:
            pytest.skip(f"{impl.label}: {op} {check} ({dtype}): not expressible in the {course.style()} API: "
                        f"{tally.not_expressible[0]}")
        _report_declined(impl, op, check, tally, dtype)
        _report_skipped(impl, op, check, tally, dtype)
        report_imprecise(tally.imprecise, _strict(request))
        report_nondeterministic(tally.nondeterministic, _strict(request))

    # expose Hypothesis's handle so --hypothesis-show-statistics reports this test
    test.hypothesis = prop.hypothesis
    test.is_hypothesis_test = True
    test.__name__ = f"test_{op}_{check}_{dtype}"
    test.__doc__ = f"{op}: {CHECK_TITLES.get(check, check)}, {dtype}"
    return test


def _make_examples_test(op: str, check: str):
    """The op's explicit edge cases and field bugs (oracle.examples) through one check, in each dtype of the suite."""
    cases = [case for dtype in SUITE_DTYPES for case in examples_for(op, dtype)]

    @pytest.mark.parametrize("case", cases, ids=[f"{c.dtype}-{i % (len(cases) // len(SUITE_DTYPES))}" for i, c in enumerate(cases)])
    def test(impl, case, request):
        why = not_applicable(check, case.dtype)
        if why:
            pytest.skip(f"{op} {check} ({case.dtype}): {why}")
        why = course.not_expressible(case)
        if why:
            pytest.skip(f"{impl.label}: not expressible in the {course.style()} API: {why}")
        verdict = check_example(impl, op, check, case)
        if verdict.status == NOT_IMPLEMENTED:
            if pytest_plugin.require_full and _provides(impl, op) and check not in coverage.OPTIONAL_CHECKS:
                pytest.fail(f"{impl.label}: {verdict.message} (--require-full)", pytrace=False)
            pytest.skip(f"{impl.label}: {verdict.message}")
        if verdict.failed:
            raise AssertionError("\nexplicit example (oracle/examples.py):\n" + verdict.render())
        if verdict.imprecise:
            report_imprecise(verdict, _strict(request), "explicit example (oracle/examples.py):\n")
        if verdict.nondeterminism:
            report_nondeterministic(verdict, _strict(request), "explicit example (oracle/examples.py):\n")

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
