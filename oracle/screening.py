"""One draw per (op, dtype) serving every check: the screen `bpcheck verify` runs first.

A unit of `bpcheck verify` is one check of one op in one dtype, and each used to run its own Hypothesis search:
the op's cases were drawn once per check, and Hypothesis's engine and the drawing cost about half of a judge's
time. The screen draws the op's cases once per dtype (the profile's number of them) and runs every check on each
case, so each check still sees that many cases:

* a check with no failing case is done: its explicit examples run after, as before, and its result is final;
* a check that fails is not run on the later cases; it is run again alone (``verify.run_unit``): its own
  search, shrinking and search for its other defects, exactly as without the screen, so its verdict is the
  same. If its own draws miss the case the screen found, that case is replayed from an example database of
  its own: the screen and the check's property draw from the same strategy, so the same choice sequence is the
  same case, and Hypothesis shrinks it;
* if the check alone no longer fails (the failure depends on what ran before it in the same worker), the
  screen's own, unshrunk, failure is the verdict, with a hint that says so.

So a passing run costs one search per (op, dtype), and a failing check costs what it always did. The screen is
for runs without an example database (a database replays each check's stored failures, keyed by check:
``oracle.database``) and for drawing runs (not the ``replay`` profile); ``bpcheck fuzz`` keeps one search per
check (its rounds are timed per check).
"""

from __future__ import annotations

import os
import time
from typing import Callable

#: the check field of a screening unit: (op, SCREEN, dtype, checks)
SCREEN = "every check"


#: set to 0 to run every unit alone (to measure what the screen saves: ``benchmarks/time_to_verdict.py``)
ENV = "BPCHECK_SCREEN"


def wanted(config: dict) -> bool:
    """Whether `bpcheck verify` screens: no example database, a drawing profile, no per-round drawing time."""
    return (os.environ.get(ENV, "1") != "0" and config.get("database") is None and config["profile"] != "replay"
            and config.get("draw_seconds") is None)


def unit(op: str, dtype: str, checks: list[str]) -> tuple:
    """The screening unit of ``op`` in ``dtype`` over ``checks``."""
    return (op, SCREEN, dtype, tuple(checks))


def is_screen(work_unit: tuple) -> bool:
    return len(work_unit) == 4 and work_unit[1] == SCREEN


def replaying(choices_hex: tuple[str, ...], key: tuple[str, str, str]):
    """An in-memory example database holding ``choices_hex`` (choice sequences, hex) under the property ``key``."""
    from hypothesis.database import InMemoryExampleDatabase  # noqa: PLC0415

    from oracle.database import database_key  # noqa: PLC0415

    db = InMemoryExampleDatabase()
    for choices in choices_hex:
        db.save(database_key(*key), bytes.fromhex(choices))
    return db


def _current_choices() -> str:
    """The choice sequence (hex) Hypothesis drew the running case from."""
    from hypothesis.control import current_build_context  # noqa: PLC0415
    from hypothesis.database import choices_to_bytes  # noqa: PLC0415

    return choices_to_bytes(current_build_context().data.choices).hex()


def _property(op: str, dtype: str, checks: tuple[str, ...], tallies: dict, before: Callable, failed: dict,
              seconds: dict):
    """The Hypothesis test ``screen(impl)``: each drawn case through every check not failed yet."""
    from hypothesis import given  # noqa: PLC0415

    from oracle import course  # noqa: PLC0415
    from oracle.ops import SPECS  # noqa: PLC0415
    from oracle.suite import ALL_CHECKS, record  # noqa: PLC0415

    spec = SPECS[op]

    @given(case=course.cases(spec, dtype))
    def screen(impl, case):
        why = course.not_expressible(case)
        if why:
            for tally in tallies.values():
                tally.not_expressible.append(why)
            return
        if not before(case):
            return
        for check in checks:
            if check in failed:
                continue
            started = time.perf_counter()
            verdict = ALL_CHECKS[check](impl, spec, case)
            seconds[check] += time.perf_counter() - started
            if record(tallies[check], verdict):
                tallies[check].fail(verdict)
                failed[check] = _current_choices()

    screen.hypothesis.inner_test._hypothesis_internal_add_digest = f"{op}/screen/{dtype}".encode()
    return screen


def run_screen(impl, work_unit: tuple, config: dict, announce: Callable[[str], None]) -> dict:
    """WorkerPool work: the screen of one (op, dtype). Returns ``{"results": [Result dicts], "recheck": {check:
    [choice sequences, hex]}}``: a final result for each check that passed the screen (its explicit examples
    included), and for each that failed, its unshrunk result (kept in case the check alone passes) and the failing
    case, replayed if the check's own draws miss it. A result's seconds are its own check's calls; the drawing is
    shared."""
    from hypothesis.reporting import with_reporter  # noqa: PLC0415

    from oracle import course  # noqa: PLC0415
    from oracle.database import apply as apply_database  # noqa: PLC0415
    from oracle.suite import ShrinkBudget, Tally  # noqa: PLC0415
    from oracle.verify import conclude, hypothesis_settings, run_examples, undrawn_result  # noqa: PLC0415

    op, _, dtype, checks = work_unit
    course.activate(config.get("style"), config.get("conventions"))
    results = []
    drawn = []
    for check in checks:
        undrawn = undrawn_result(impl, (op, check, dtype))
        if undrawn:
            results.append(undrawn)
        else:
            drawn.append(check)
    if not drawn:
        return {"results": results, "recheck": {}}
    tallies = {check: Tally() for check in drawn}
    seconds = dict.fromkeys(drawn, 0.0)
    failed: dict[str, str] = {}
    announcer = ShrinkBudget(Tally(), config["shrink_time"], announce)  # nothing fails in it: it only announces
    prop = apply_database(_property(op, dtype, tuple(drawn), tallies, announcer, failed, seconds),
                          hypothesis_settings(config), None, seed=config["seed"])
    try:
        with with_reporter(lambda *_: None):
            prop(impl)
    except Exception:  # noqa: BLE001 - a check that could not run: each check alone reports it properly
        return {"results": results, "recheck": {check: [failed[check]] if check in failed else [] for check in drawn}}
    recheck = {}
    for check in drawn:
        tally = tallies[check]
        budget = ShrinkBudget(tally, config["shrink_time"], announce)
        if check not in failed and config.get("explicit_examples", True):
            started = time.perf_counter()
            run_examples(impl, op, check, dtype, tally, budget)
            seconds[check] += time.perf_counter() - started
        result = conclude(impl, (op, check, dtype), tally, budget, None, seconds[check], config)
        results.append(result)
        if check in failed:
            recheck[check] = [failed[check]]
    return {"results": results, "recheck": recheck}
