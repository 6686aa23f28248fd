"""What part of the configuration space a run verified, said honestly.

An implementation may decline configurations with NotImplementedError. Those
cases are not failures, but they are not verified either: a run in which
some cases were checked and some declined is ``partial``, with

* the fraction verified: checked cases / (checked + declined) cases; cases a
  check skipped itself (torch not trusted there) count in neither;
* the declined features: the configuration features (``OpSpec.features``:
  ``groups``, ``dilation``, ``ceil_mode``, ``bias=None``, ...) that occur in a
  declined case and in no checked case. A feature that also occurs in a
  checked case was verified there, so it is not what the implementation
  declines. When no feature separates the declined cases (say the
  implementation declines large inputs), the list is empty and the summary
  says so.

``--require-full`` (``bpcheck verify`` and the pytest plugin) turns an
incomplete result into a failure: a partial one, or a not-implemented one of
an op the module provides (a missing backward, a dtype or every configuration
declined). An op the module does not provide at all is out of scope: select
the ops to gate on with ``--ops``.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from oracle.cases.record import OPTIONAL_FUNCTIONS
from oracle.ops import SPECS

PARTIAL = "partial"
"""The status of a result where the implementation declined some cases and every checked case passed."""


def record(counts: Counter, op: str, case) -> None:
    """Count ``case``'s configuration features (and the case itself, under ``None``) into ``counts``."""
    counts[None] += 1
    if case is not None:
        counts.update(SPECS[op].features_of(case))


def summary(op: str, checked: Counter, declined: Counter, not_expressible: list[str] = ()) -> dict:
    """The coverage of one run, from the feature counts of its checked and its declined cases (see ``record``),
    and the reasons of the cases a course style cannot express (``oracle.course``): those count in neither."""
    n_checked, n_declined = checked[None], declined[None]
    total = n_checked + n_declined
    names = [name for name, _ in SPECS[op].features]
    out = {
        "checked": n_checked,
        "declined": n_declined,
        "fraction": round(n_checked / total, 4) if total else 0.0,
        "declined_features": [name for name in names if declined[name] and not checked[name]],
        "declined_feature_cases": {name: declined[name] for name in names if declined[name] and not checked[name]},
    }
    if not_expressible:
        out["not_expressible"] = len(not_expressible)
        out["not_expressible_reasons"] = list(dict.fromkeys(part for why in not_expressible for part in why.split("; ")))
    return out


def percent(fraction: float) -> str:
    """``0.4213`` -> ``'42%'``; never rounds a partial run to 0% or 100%."""
    if 0 < fraction < 0.01:
        return "<1%"
    if 0.99 < fraction < 1:
        return ">99%"
    return f"{round(100 * fraction)}%"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def declined_text(features: list[str]) -> str:
    """``['groups', 'dilation']`` -> ``'groups and dilation declined'``."""
    if not features:
        return "the declined cases share no configuration feature that the checked ones lack"
    return f"{_and(features)} declined"


def describe(coverage: dict) -> str:
    """One line: ``verified on 38% of the drawn configurations (76 of 200): groups and dilation declined``."""
    total = coverage["checked"] + coverage["declined"]
    return (f"verified on {percent(coverage['fraction'])} of the drawn configurations "
            f"({coverage['checked']} of {total}): {declined_text(coverage['declined_features'])}")


#: checks of optional parts of the contract (the forward-mode rule ``NAME_jvp``, the double backward): a module
#: without them is not incomplete (``--require-full``); a part it has and declines on some configurations still is
OPTIONAL_CHECKS = tuple(OPTIONAL_FUNCTIONS)


def absent_optional(result) -> bool:
    """Whether a result is an optional check (``OPTIONAL_CHECKS``) the implementation has nothing for."""
    from oracle.verdict import NOT_IMPLEMENTED  # noqa: PLC0415

    return result.check in OPTIONAL_CHECKS and result.status == NOT_IMPLEMENTED


def incomplete(result) -> bool:
    """Whether a result (``oracle.report.Result``) leaves part of a provided op's configuration space unverified."""
    if result.missing_op or absent_optional(result):
        return False
    if result.status == PARTIAL or (result.coverage or {}).get("declined"):
        return True
    from oracle.verdict import NOT_IMPLEMENTED  # noqa: PLC0415

    return result.status == NOT_IMPLEMENTED


def merge(op: str, coverages: Iterable[dict | None]) -> dict:
    """Several results' coverage as one: cases checked and declined added up, and the features declined in
    any of them (a feature the forward checks but the backward declines is declined)."""
    entry = {"checked": 0, "declined": 0, "declined_features": []}
    for cov in coverages:
        if not cov:
            continue
        entry["checked"] += cov["checked"]
        entry["declined"] += cov["declined"]
        if cov.get("not_expressible"):
            entry["not_expressible"] = entry.get("not_expressible", 0) + cov["not_expressible"]
            reasons = entry.setdefault("not_expressible_reasons", [])
            reasons += [r for r in cov.get("not_expressible_reasons", []) if r not in reasons]
        for name in cov["declined_features"]:
            if name not in entry["declined_features"]:
                entry["declined_features"].append(name)
    total = entry["checked"] + entry["declined"]
    entry["fraction"] = round(entry["checked"] / total, 4) if total else 0.0
    order = [name for name, _ in SPECS[op].features]
    entry["declined_features"].sort(key=order.index)
    return entry


def short(coverage: dict) -> str:
    """For a table cell: ``12% verified: groups and dilation declined``."""
    return f"{percent(coverage['fraction'])} verified: {declined_text(coverage['declined_features'])}"


def by_op(results: Iterable) -> dict[str, dict]:
    """Per op with some declined cases: ``merge`` of its results, with its one-line ``summary`` (``op_line``)."""
    results = list(results)
    out: dict[str, dict] = {}
    for op in dict.fromkeys(r.op for r in results):
        entry = merge(op, [r.coverage for r in results if r.op == op and not absent_optional(r)])
        if entry["declined"] or entry.get("not_expressible"):
            entry["summary"] = op_line(op, entry) if entry["declined"] else ""
            if entry.get("not_expressible"):
                entry["summary"] = "\n".join(line for line in (entry["summary"], expressible_line(op, entry)) if line)
            out[op] = entry
    return out


def expressible_line(op: str, entry: dict) -> str:
    """``conv2d: 12 of 1062 drawn cases not expressible in the course's API (not checked): dilation ...``."""
    total = entry["checked"] + entry["declined"] + entry["not_expressible"]
    reasons = "; ".join(entry.get("not_expressible_reasons", []))
    return (f"{op}: {entry['not_expressible']} of {total} drawn cases not expressible in the course's API "
            f"(not checked, not counted as pass or fail): {reasons}")


def op_line(op: str, entry: dict) -> str:
    """``conv2d: verified on 38% of the configuration space: groups and dilation declined``."""
    if not entry["checked"]:
        return f"{op}: verified on none of the configuration space: every drawn case was declined"
    return (f"{op}: verified on {percent(entry['fraction'])} of the configuration space "
            f"({entry['checked']} of {entry['checked'] + entry['declined']} cases): "
            f"{declined_text(entry['declined_features'])}")
