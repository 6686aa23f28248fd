"""``bpcheck record --from-database SPEC``: the cases an example database holds, as a regression corpus.

A database entry (``oracle.database``) is a Hypothesis choice sequence under the key of one property
(op, check, dtype), not a case: it means something only through that property's strategy. Each property
of the chosen ops whose key holds entries is run once more the way the ``replay`` profile runs it (only
Hypothesis' reuse phase: the stored entries, nothing drawn, no shrinking), with a check that only collects
the case drawn and passes it, no implementation at all, and the database behind ``ReadOnlyDatabase`` (an
entry that "no longer fails" must not be deleted by the export). The cases recovered, one per distinct
recipe whichever properties stored it, are then recorded with torch's answers by ``oracle.corpus``
(``source`` ``"database"``, ``found_by`` the properties), so ``bpcheck replay`` runs them without torch.

What the corpus checks is the forward and the backward: a case found by another check (adjoint, identities,
jvp, double_backward) is kept as a forward/backward regression case, and the export says that it does not
replay the check that found it. An entry that no longer decodes to a case (the strategies changed since it
was saved: the database is a cache) is counted and left out.
"""

from __future__ import annotations

import os
import re
import unittest
from dataclasses import dataclass, field

from oracle.case import Case

#: the checks a corpus replays (``oracle.corpus.CHECKS``); cases found by others are kept, with a note
REPLAYED_CHECKS = ("forward", "backward")
#: Hypothesis' own second key of a property: failing cases that were not the smallest (``ConjectureRunner``)
SECONDARY = b".secondary"


@dataclass
class Recovered:
    """What the database held for the chosen ops: distinct cases, and per property its entries and cases."""

    cases: dict[str, tuple[Case, list[str]]] = field(default_factory=dict)
    """``repr(case)`` -> (the case, the properties ``op/check/dtype`` whose entries decoded to it), in order found."""
    entries: dict[str, int] = field(default_factory=dict)
    """property -> entries stored under its key (and its secondary key)."""
    decoded: dict[str, int] = field(default_factory=dict)
    """property -> entries that decoded to a case."""
    distinct: dict[str, int] = field(default_factory=dict)
    """property -> distinct cases its entries decoded to (two choice sequences can draw the same case)."""

    def add(self, prop: str, case: Case) -> None:
        self.decoded[prop] = self.decoded.get(prop, 0) + 1
        _, found_by = self.cases.setdefault(repr(case), (case, []))
        if prop not in found_by:
            found_by.append(prop)
            self.distinct[prop] = self.distinct.get(prop, 0) + 1


def public_spec(spec: str) -> str:
    """``spec`` without the passwords of its redis:// URLs (``redis://:secret@host`` -> ``redis://***@host``):
    what the corpus header may say about where its cases came from."""
    return re.sub(r"(redis://)[^@/,]*@", r"\1***@", spec)


def recover(spec: str, ops: list[str] | None = None) -> Recovered:
    """The cases the database named by ``spec`` holds for the properties of ``ops`` (default: every op).

    ValueError for a malformed spec, ``none``, or a Redis server that cannot be reached.
    """
    from oracle.database import check_reachable, database_key, open_database  # noqa: PLC0415
    from oracle.ops import SPECS  # noqa: PLC0415
    from oracle.suite import PARAMS  # noqa: PLC0415

    for op in ops or ():
        if op not in SPECS:
            raise ValueError(f"ops: unknown op {op!r}")
    check_reachable(spec)
    for part in spec.split(","):
        folder = os.path.expanduser(part.strip().removeprefix("ro:").strip())
        if "://" not in folder and folder.lower() != "none" and not os.path.isdir(folder):
            raise ValueError(f"--from-database: no such directory {folder!r} (a database that was never written?)")
    db = open_database(spec)
    if db is None:
        raise ValueError("--from-database none: there is no database to export from")
    found = Recovered()
    for op, check, dtype in PARAMS:
        if ops and op not in ops:
            continue
        key = database_key(op, check, dtype)
        stored = len(set(db.fetch(key)) | set(db.fetch(key + SECONDARY)))
        if stored:
            name = f"{op}/{check}/{dtype}"
            found.entries[name] = stored
            _replay(op, check, dtype, db, lambda case, name=name: found.add(name, case))
    return found


def _replay(op: str, check: str, dtype: str, db, collect) -> None:
    """Run the property over what ``db`` holds for it, as the ``replay`` profile would, ``collect``-ing each case.

    Read only: Hypothesis deletes a replayed entry that no longer fails, and here every case passes.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, settings  # noqa: PLC0415
    from hypothesis.database import ReadOnlyDatabase  # noqa: PLC0415

    from oracle.pytest_plugin import CI_EXAMPLES  # noqa: PLC0415 - the replay profile's number of examples
    from oracle.suite import Tally, build_property  # noqa: PLC0415
    from oracle.verdict import PASS, Verdict  # noqa: PLC0415

    def passing(impl, spec, case: Case) -> Verdict:
        collect(case)
        return Verdict(spec.name, check, PASS, case)

    prop = build_property(op, check, dtype, examples=(), run_check=passing)
    prop = settings(
        database=ReadOnlyDatabase(db), phases=[Phase.reuse], max_examples=CI_EXAMPLES, derandomize=False, deadline=None,
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False,
    )(prop)
    try:
        prop(None, Tally())
    except unittest.SkipTest:  # no entry decoded to a case: Hypothesis ran nothing
        pass


def export(spec: str, out, ops: list[str] | None = None) -> tuple[Recovered, dict | None]:
    """Recover the database's cases (``recover``) and record them with torch's answers to ``out``.

    Returns what was recovered and the corpus header; None (and no file written) if no case was recovered.
    """
    from oracle.corpus import record_cases  # noqa: PLC0415
    from oracle.ops import SPECS  # noqa: PLC0415

    found = recover(spec, ops)
    if not found.cases:
        return found, None
    chosen = [(case, "database", {"found_by": found_by}) for case, found_by in found.cases.values()]
    header = {"seed": None, "cases_per_op": 0, "ops": list(ops or SPECS), "database": public_spec(spec)}
    return found, record_cases(out, chosen, header)


def summary(found: Recovered, spec: str, ops: list[str] | None) -> list[str]:
    """The lines ``bpcheck record --from-database`` prints about what the database held (before the corpus line)."""
    where = f"{public_spec(spec)}" + (f" (ops {', '.join(ops)})" if ops else "")
    if not found.entries:
        return [f"the database {where} holds no entry of any property: nothing to export"]
    lines = [f"the database {where}: {sum(found.entries.values())} entries of {len(found.entries)} properties, "
             f"{len(found.cases)} distinct cases"]
    for prop, n in found.entries.items():
        decoded, distinct = found.decoded.get(prop, 0), found.distinct.get(prop, 0)
        lost = f"; {n - decoded} no longer decode to a case (the strategies changed since)" if decoded < n else ""
        lines.append(f"  {prop}: {n} entries, {distinct} distinct cases{lost}")
    other = sorted({p.split("/")[1] for _, props in found.cases.values() for p in props} - set(REPLAYED_CHECKS))
    if other:
        lines.append(f"  note: cases found by {', '.join(other)} are kept, but a corpus replays only forward and "
                     f"backward against them, not the check that found them")
    return lines
