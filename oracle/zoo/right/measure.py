"""Run every check of the swapped op on each counterpart, in both dtypes, and count the verdicts.

``measure(module)`` drives ``oracle.zoo.harness.run`` (the suite's own
property, the 'ci' profile's derandomized cases, explicit examples first,
no shrinking) for each check of ``oracle.suite.checks_for(op)`` and each dtype,
going on after a failure so that every verdict is recorded. A verdict is

    pass             the check passed
    FAIL             a false alarm (or a bug of the counterpart)
    imprecise        any other judged status (the tolerance model's "right, but rounds worse than torch")
    not implemented  / skipped: not judged

A run that raises outside a verdict (an error of the property itself) counts as a FAIL.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from oracle.case import DTYPES
from oracle.implementation import Implementation
from oracle.suite import checks_for, optional_missing
from oracle.verdict import FAIL, NOT_IMPLEMENTED, PASS, SKIPPED, Verdict
from oracle.zoo.harness import run
from oracle.zoo.right import COUNTERPARTS

UNJUDGED = (NOT_IMPLEMENTED, SKIPPED)


def is_imprecise(verdict: Verdict) -> bool:
    """A judged verdict that is neither pass nor FAIL (the tolerance model's 'imprecise')."""
    return verdict.status not in (PASS, FAIL, *UNJUDGED)


@dataclass
class Measurement:
    """Every verdict of every applicable check of one counterpart's op, in both dtypes."""

    module: str
    op: str
    counts: dict[tuple[str, str], Counter] = field(default_factory=dict)
    """``(check, dtype) -> Counter of verdict statuses``"""
    failures: list[Verdict] = field(default_factory=list)
    """Every FAIL verdict, in order."""
    imprecise_verdicts: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Runs that raised outside a verdict: ``'check/dtype: message'``."""
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.module.rsplit(".", 1)[-1]

    def total(self, status: str) -> int:
        return sum(c[status] for c in self.counts.values())

    @property
    def fails(self) -> int:
        return self.total(FAIL) + len(self.errors)

    @property
    def passes(self) -> int:
        return self.total(PASS)

    @property
    def imprecise(self) -> int:
        return len(self.imprecise_verdicts)

    @property
    def judged(self) -> int:
        return sum(n for c in self.counts.values() for status, n in c.items() if status not in UNJUDGED)

    @property
    def ok(self) -> bool:
        """No FAIL, and at least one case judged."""
        return self.fails == 0 and self.judged > 0

    def failing_checks(self) -> list[str]:
        return [f"{check}/{dtype}" for (check, dtype), c in self.counts.items() if c[FAIL]] + [e.split(":")[0] for e in self.errors]

    def first_failures(self) -> dict[tuple[str, str], Verdict]:
        """The first FAIL verdict of each (check, dtype)."""
        first: dict[tuple[str, str], Verdict] = {}
        for v in self.failures:
            first.setdefault((v.check, v.case.dtype if v.case else "?"), v)
        return first


def measure(module: str, op: str | None = None, *, max_examples: int | None = None, dtypes=DTYPES) -> Measurement:
    """Run each check of ``op`` (default: the counterpart's) on ``module``, in each dtype, recording every verdict."""
    op = op or COUNTERPARTS[module]
    impl = Implementation.load(module)
    result = Measurement(module, op)
    start = time.perf_counter()
    try:
        for check in checks_for(op):
            if optional_missing(impl, op, check):  # a function the contract makes optional, not defined: no verdict
                continue
            for dtype in dtypes:
                outcome = run(impl, op, check, dtype=dtype, stop_at_first_failure=False, max_examples=max_examples)
                result.counts[check, dtype] = Counter(v.status for v in outcome.verdicts)
                result.failures += [v for v in outcome.verdicts if v.failed]
                result.imprecise_verdicts += [v for v in outcome.verdicts if is_imprecise(v)]
                if outcome.raised is not None:
                    result.errors.append(f"{check}/{dtype}: {type(outcome.raised).__name__}: {outcome.message()[:2000]}")
    finally:
        close = getattr(impl, "close", None)  # an implementation in a worker process: end the worker
        if close is not None:
            close()
    result.seconds = time.perf_counter() - start
    return result
