"""The property suite, generated from the op records: every op x dtype x check.

Collected from ``tests/`` and, for an installed bpcheck, from anywhere with

    pytest --pyargs oracle.suite --impl=mypkg.ops

A failure's message is the verdict: op, check, the located worst error
(index, expected, got, abs and rel error), the case's reproduction (config,
shapes, dtype, seed) and what to try next. Cases the implementation declines
with NotImplementedError are counted, not failed; if it declines all of them
the test is skipped with that reason.
"""

from __future__ import annotations

import pytest
from hypothesis import event, example, given, note

from oracle.case import DTYPES
from oracle.checks import CHECKS
from oracle.examples import examples_for
from oracle.identities import IDENTITIES
from oracle.ops import SPECS
from oracle.verdict import NOT_IMPLEMENTED, SKIPPED


def _applies(op: str, check: str) -> bool:
    spec = SPECS[op]
    if check == "adjoint":
        return bool(spec.linear_in or spec.linearized_in)
    if check == "identities":
        return op in IDENTITIES
    return True


ALL_CHECKS = {**CHECKS, "identities": lambda impl, spec, case: IDENTITIES[spec.name](impl, spec, case)}
PARAMS = [
    pytest.param(op, check, dtype, id=f"{op}-{check}-{dtype}")
    for op in SPECS
    for check in ALL_CHECKS
    for dtype in DTYPES
    if _applies(op, check)
]


def run_property(impl, op: str, check: str, dtype: str) -> None:
    """Run one check over the op's strategy (and its explicit edge-case examples) for one dtype."""
    spec = SPECS[op]
    run_check = ALL_CHECKS[check]
    declined: list = []
    seen = {"ran": 0}

    @given(case=spec.cases(dtype))
    def prop(case):
        verdict = run_check(impl, spec, case)
        event(f"{op}/{check}: {verdict.status}")
        seen["ran"] += 1
        if verdict.status == NOT_IMPLEMENTED:
            declined.append(verdict)
            return
        if verdict.status == SKIPPED:
            note(verdict.render())
            return
        if verdict.failed:
            raise AssertionError("\n" + verdict.render())

    for case in examples_for(op, dtype):
        prop = example(case=case)(prop)
    prop()
    if declined:
        first = declined[0]
        message = (
            f"{impl.label}: {op} {check} not implemented for {len(declined)} of {seen['ran']} drawn configuration(s); "
            f"e.g. {first.message} on {first.case!r}"
        )
        if len(declined) == seen["ran"]:
            pytest.skip(message)
        print(message)


@pytest.mark.parametrize(("op", "check", "dtype"), PARAMS)
def test_property(impl, op, check, dtype):
    run_property(impl, op, check, dtype)
