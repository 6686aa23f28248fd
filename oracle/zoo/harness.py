"""Run the property suite on a mutant and record what happened: the machinery of tests/test_zoo.py and the report.

``run(impl, op, check)`` drives ``oracle.suite.build_property`` itself, exactly
as the suite runs it (the same strategies, explicit examples and derandomized
'ci' draws), and records every verdict on the way: whether the mutant was
killed, the first failing verdict (with its hints), the time from the start to
that first failure and how many of the cases failed.

Two deliberate departures from a plain suite run, both in ``zoo_settings``/``run``:

* no shrinking: a killed mutant stops at its first failing case (the 'ci'
  profile with the shrink phase removed, so the cases drawn are the same);
* explicit examples that refimpl itself rejects (a ValueError/TypeError from
  its forward: a case the contract calls invalid) are left out and listed in
  ``Outcome.invalid_examples``: the suite cannot judge a mutant on them, and a
  crash of the torch oracle there would hide the mutant's real failures.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from hypothesis import Phase, settings

import oracle.suite as suite
from oracle import pytest_plugin  # noqa: F401 - registers the ci/dev/thorough profiles
from oracle.case import Case
from oracle.implementation import Implementation
from oracle.mistakes import reference
from oracle.ops import SPECS, positional
from oracle.verdict import FAIL, IMPRECISE, PASS, Verdict

#: the checks a mutant is run against, in the order the zoo tries them (the cheaper one first)
ZOO_CHECKS = ("backward", "finite_differences")
#: the dtype of the zoo runs: float64 is enough to kill every mistake, and faster
ZOO_DTYPE = "float64"

ZOO_PROFILE = "zoo"
settings.register_profile(
    ZOO_PROFILE,
    parent=settings.get_profile("ci"),
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target),
)
DRAWN_ONLY_PROFILE = "zoo-drawn-only"
settings.register_profile(DRAWN_ONLY_PROFILE, parent=settings.get_profile("ci"), phases=(Phase.generate,))


@dataclass
class Outcome:
    """What one property run of one check on one mutant did."""

    check: str
    verdicts: list[Verdict] = field(default_factory=list)
    first_failure: Verdict | None = None
    seconds_to_first_failure: float | None = None
    seconds: float = 0.0
    raised: BaseException | None = None
    invalid_examples: list[Case] = field(default_factory=list)
    explicit_examples: int = 0

    @property
    def killed(self) -> bool:
        return self.first_failure is not None

    @property
    def failures(self) -> int:
        return sum(v.status == FAIL for v in self.verdicts)

    @property
    def judged(self) -> int:
        """Cases with a PASS, imprecise or FAIL verdict (not skipped, not declined)."""
        return sum(v.status in (PASS, IMPRECISE, FAIL) for v in self.verdicts)

    @property
    def imprecise(self) -> int:
        """Cases the mutant got through as merely imprecise: a wrong rule inside the imprecise band (should be none)."""
        return sum(v.status == IMPRECISE for v in self.verdicts)

    @property
    def first_case_index(self) -> int | None:
        """1-based position of the first failing case among those run (explicit examples run first)."""
        for i, v in enumerate(self.verdicts, 1):
            if v.status == FAIL:
                return i
        return None

    @property
    def first_failure_is_example(self) -> bool:
        index = self.first_case_index
        return index is not None and index <= self.explicit_examples

    def message(self) -> str:
        """Everything the run raised, sub-exceptions of an ExceptionGroup included."""
        return _text(self.raised) if self.raised is not None else ""

    def hinted(self, mistake_name: str) -> bool:
        """The first failure names ``mistake_name`` in a hint, and so does the suite's failure message."""
        tag = f"'{mistake_name}'"
        in_verdict = self.first_failure is not None and any(tag in h for h in self.first_failure.hints)
        return in_verdict and (self.raised is None or tag in self.message())


def _text(exc: BaseException) -> str:
    parts = [str(exc), *getattr(exc, "__notes__", [])]
    for sub in getattr(exc, "exceptions", ()):
        parts.append(_text(sub))
    return "\n".join(parts)


def refimpl_rejects(case: Case) -> bool:
    """refimpl's forward raises ValueError/TypeError on ``case``: the case is outside the contract."""
    spec = SPECS[case.op]
    forward = reference(spec.name)
    if forward is None:
        return False
    try:
        with np.errstate(all="ignore"):
            forward(*positional(spec, case.arrays()), **case.config)
    except (ValueError, TypeError):
        return True
    return False


def run(
    impl: Implementation,
    op: str,
    check: str,
    *,
    dtype: str = ZOO_DTYPE,
    stop_at_first_failure: bool = True,
    explicit_examples: bool = True,
    max_examples: int | None = None,
) -> Outcome:
    """Run ``check`` of ``op`` on ``impl`` through the suite's own property (``oracle.suite.build_property``) and record it.

    ``stop_at_first_failure=False`` lets the run go on over every case after a
    failure (for the failure rate); the failing verdicts are recorded, then
    passed to the suite as PASS so it does not stop. ``explicit_examples=False``
    runs the drawn cases only (are the strategies enough on their own?). ``max_examples`` caps the
    drawn cases below the profile's (still derandomized).
    """
    outcome = Outcome(check)
    real_check = suite.ALL_CHECKS[check]
    start = time.perf_counter()

    def recording_check(impl_, spec_, case_):
        verdict = real_check(impl_, spec_, case_)
        outcome.verdicts.append(verdict)
        if verdict.failed and outcome.first_failure is None:
            outcome.first_failure = verdict
            outcome.seconds_to_first_failure = time.perf_counter() - start
        if verdict.failed and not stop_at_first_failure:
            return dataclasses.replace(verdict, status=PASS)
        return verdict

    kept = []
    if explicit_examples:
        for case in suite.examples_for(op, dtype):
            (outcome.invalid_examples if refimpl_rejects(case) else kept).append(case)
    outcome.explicit_examples = len(kept)
    prop = suite.build_property(op, check, dtype, examples=kept, run_check=recording_check)
    profile = ZOO_PROFILE if explicit_examples else DRAWN_ONLY_PROFILE
    try:
        chosen = settings.get_profile(profile)
        if max_examples is not None:
            chosen = settings(chosen, max_examples=max_examples)
        settings(chosen)(prop)(impl, suite.Tally())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a failing property is the expected outcome
        outcome.raised = exc
    finally:
        outcome.seconds = time.perf_counter() - start
    return outcome
