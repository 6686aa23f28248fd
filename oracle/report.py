"""The reports of ``bpcheck verify``: the results table, the counterexamples, JSON and JUnit XML.

One ``Result`` per (op, check, dtype). The table merges the dtypes of an op
and check into one row; JSON and JUnit keep one entry per (op, check, dtype).

JSON (``--json FILE``)::

    {
      "bpcheck": "0.1.0",
      "module": "refimpl",                      # as given on the command line
      "provided": ["conv2d", "conv2d_backward", ...],   # the contract's functions the module defines
      "settings": {"ops": [...], "dtypes": [...], "profile": "ci", "max_examples": 30,
                   "derandomize": true, "seed": null, "timeout": 20.0, "shrink_time": 60.0,
                   "budget": 600.0, "jobs": 1, "require_full": false},
      "summary": {"results": 52, "pass": 49, "FAIL": 1, "partial": 1, "not implemented": 1, "skipped": 0,
                  "seconds": 41.2, "not_deterministic": 0, "exit_code": 1},
      "coverage": {                             # the ops where some cases were declined (oracle.coverage)
        "conv2d": {"checked": 1620, "declined": 480, "fraction": 0.7714,
                   "declined_features": ["groups", "dilation"],
                   "summary": "conv2d: verified on 77% of the configuration space (1620 of 2100 cases): groups and dilation declined"}
      },
      "results": [
        {"op": "relu", "check": "backward", "dtype": "float64", "status": "FAIL",   # pass | imprecise | FAIL | partial | not implemented | skipped
         "examples": 31,            # cases checked (explicit examples, drawn cases, shrinking)
         "not_implemented": 0,      # of those, declined by the implementation (NotImplementedError)
         "skipped": 0,              # of those, skipped by the check (e.g. torch not trusted there)
         "seconds": 0.8,
         "message": "...",          # one line: the failure, or why not implemented / skipped
         "verdict": {...} | null,   # Verdict.as_dict() of the minimal counterexample
                                    # (or of the first declined / skipped case)
         "rendered": "..." | null,  # Verdict.render() of the failure (or of the worst imprecise case)
         "coverage": {"checked": 30, "declined": 1, "fraction": 0.9677,   # null if nothing ran
                      "declined_features": ["groups"], "declined_feature_cases": {"groups": 1}},
         "defects": [               # FAIL only: each distinct failure (oracle.defects), its own smallest case
           {"identity": "crash: IndexError", "message": "...", "verdict": {...}, "rendered": "..."},
           {"identity": "wrong grad_x", ...}] | null,
         "nondeterministic": "..." | null},  # Verdict.render() of a case whose backward gave different
                                    # gradients for two identical calls (a note: the status stays pass/imprecise)
        ...
      ],
      "failures": [ ...the results whose status is FAIL, same fields... ],
      "imprecise": [ ...the results whose status is imprecise (right rule, digits lost), same fields... ],
      "not_deterministic": [ ...the results with a nondeterministic note, same fields... ]
    }

An ``imprecise`` result (``oracle.tolerances``) is not a failure: exit code 0,
a passing JUnit testcase whose system-out says so, unless ``--strict`` (then
exit 1 and a JUnit failure of type ``imprecise``). Nor is a backward that is
not deterministic (``oracle.determinism``): a note on a result that otherwise
passes, shown in the table and below it; under ``--strict`` exit 1 and a JUnit
failure of type ``not deterministic``.

Non-finite floats (an ``inf`` relative error, a ``nan`` output) are written as
the strings ``"inf"``, ``"-inf"``, ``"nan"`` so that the file is strict JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from oracle import coverage as _coverage
from oracle.coverage import PARTIAL
from oracle.determinism import NOT_DETERMINISTIC
from oracle.verdict import CHECK_TITLES, FAIL, IMPRECISE, NOT_EXPRESSIBLE, NOT_IMPLEMENTED, PASS, SKIPPED

STATUSES = (PASS, IMPRECISE, FAIL, PARTIAL, NOT_IMPLEMENTED, NOT_EXPRESSIBLE, SKIPPED)
STYLES = {PASS: "green", IMPRECISE: "bold magenta", FAIL: "bold red", PARTIAL: "yellow", NOT_IMPLEMENTED: "yellow",
          NOT_EXPRESSIBLE: "dim", SKIPPED: "dim"}
ALL_CHECKS_LABEL = "(all)"
"""The check column of the single row shown for an op the module does not implement at all."""


@dataclass
class Result:
    """The outcome of one check of one op in one dtype."""

    op: str
    check: str
    dtype: str
    status: str
    examples: int = 0
    not_implemented: int = 0
    skipped: int = 0
    seconds: float = 0.0
    message: str = ""
    verdict: dict | None = None
    rendered: str | None = None
    missing_op: bool = False
    """The module has neither the forward nor the backward of the op: nothing was run."""
    coverage: dict | None = None
    """What was verified (``oracle.coverage.summary``): cases checked and declined, declined features."""
    defects: list | None = None
    """FAIL: each distinct failure (``oracle.defects``) as {identity, message, verdict, rendered}."""
    nondeterministic: str | None = None
    """The rendered verdict of a case whose backward gave different gradients for two identical calls
    (``oracle.determinism``), None if every call repeated itself. A note, not a status."""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def exit_code(results: Iterable[Result], require_full: bool = False, strict: bool = False) -> int:
    """0 when nothing failed (not implemented, partial, imprecise and skipped are not failures), else 1.

    ``require_full``: an incomplete result (``oracle.coverage.incomplete``) is a failure too;
    ``strict``: an imprecise one is.
    """
    results = list(results)
    return 1 if any(r.failed or (strict and _gated_by_strict(r)) for r in results) or (
        require_full and any(map(_coverage.incomplete, results))) else 0


def _gated_by_strict(result: Result) -> bool:
    """Whether ``result`` fails under --strict only: imprecise, or a backward that is not deterministic."""
    return result.status == IMPRECISE or bool(result.nondeterministic)


def nondeterministic_label(result: Result) -> str:
    """The note's first line, ``not deterministic: ...`` (``oracle.determinism``)."""
    text = result.nondeterministic or ""
    return next((line.strip() for line in text.splitlines() if line.strip().startswith(NOT_DETERMINISTIC)), NOT_DETERMINISTIC)


def counts(results: Iterable[Result]) -> dict[str, int]:
    results = list(results)
    statuses = list(STATUSES) + [r.status for r in results if r.status not in STATUSES]
    return {status: sum(r.status == status for r in results) for status in dict.fromkeys(statuses)}


# --------------------------------------------------------------------------- the table


_MERGE_ORDER = (FAIL, IMPRECISE, PARTIAL, PASS, NOT_IMPLEMENTED, NOT_EXPRESSIBLE, SKIPPED)


def _merge_status(statuses: list[str]) -> str:
    """The row's status: the first of FAIL, imprecise, partial, pass, not implemented, skipped (any other after FAIL)."""
    if not statuses:
        return SKIPPED
    return min(statuses, key=lambda s: _MERGE_ORDER.index(s) if s in _MERGE_ORDER else 0.5)


def _one_line(text: str, limit: int = 90) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def summary_of(result: Result) -> str:
    """A one-line description of a result, for the table's detail column."""
    if result.failed and result.defects and len(result.defects) > 1:
        return f"{len(result.defects)} distinct defects: " + "; ".join(d["identity"] for d in result.defects)
    if result.status == PARTIAL and result.coverage:
        return _one_line(_coverage.describe(result.coverage), 120)
    if result.failed:
        verdict = result.verdict or {}
        mismatch = verdict.get("mismatch")
        if verdict.get("message"):
            return _one_line(verdict["message"])
        if mismatch:
            return f"{mismatch['array']}: {mismatch['count']} of {mismatch['size']} out of tolerance, worst at {mismatch['index']}"
        return _one_line(result.message)
    if result.status == IMPRECISE:
        mismatch = (result.verdict or {}).get("mismatch")
        if mismatch:
            lost = math.log10(mismatch["abs_error"] / mismatch["allowed"]) if mismatch["allowed"] and mismatch["abs_error"] else 0.0
            return (f"{mismatch['array']} at {mismatch['index']}: rel err {mismatch['rel_error']:.2g}, "
                    f"{lost:.1f} digits lost beyond rounding (right rule, unstable formula?)")
        return _one_line(result.message)
    if result.status == PASS and result.not_implemented and result.verdict:
        return "declines e.g.: " + _one_line(result.verdict.get("message", ""))
    return _one_line(result.message)


def _rows(results: list[Result]):
    """(op, check, [results]) in first-seen order; an op missing entirely gives one row."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        key = (r.op, ALL_CHECKS_LABEL if r.missing_op else r.check)
        groups.setdefault(key, []).append(r)
    return [(op, check, rs) for (op, check), rs in groups.items()]


def table(results: list[Result], width: int | None = None) -> Table:
    """The results, one row per op and check; the detail column is cut to fit ``width`` (the others are not)."""
    headers = ("op", "check", "dtype(s)", "status", "examples", "not impl.", "detail")
    rows = []
    previous_op = None
    for op, check, rs in _rows(results):
        status = _merge_status([r.status for r in rs])
        nondeterministic = next((r for r in rs if r.nondeterministic), None)
        same = [r.dtype for r in rs if not r.missing_op and r.status == status]
        other = [f"{r.dtype}: {r.status}" for r in rs if not r.missing_op and r.status != status]
        dtypes = ", ".join(same) + (f" ({'; '.join(other)})" if other else "")
        examples = sum(r.examples for r in rs)
        declined = sum(r.not_implemented for r in rs)
        detail_from = next((r for r in rs if r.status == status and r.message), None) or next((r for r in rs if r.message), None)
        missing = rs[0].missing_op
        detail = summary_of(detail_from) if detail_from else ""
        if status == PARTIAL:  # the row's dtypes together, like the examples and not impl. columns
            detail = _coverage.short(_coverage.merge(op, [r.coverage for r in rs]))
        if nondeterministic is not None and status in (PASS, PARTIAL):
            detail = nondeterministic_label(nondeterministic)
        rows.append([
            op if op != previous_op else "",
            check,
            dtypes or "-",
            status + (f", {NOT_DETERMINISTIC}" if nondeterministic is not None and status != FAIL else ""),
            "-" if missing else str(examples),
            "-" if missing else (f"{declined}/{examples}" if declined else "0"),
            detail,
        ])
        previous_op = op
    natural = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)]
    # each column takes its text plus 2 of padding and 1 of border; the table 1 more border
    fixed = sum(w + 3 for w in natural[:-1]) + 4
    fits = width is None or fixed + 10 <= width
    t = Table(header_style="bold")
    for i, header in enumerate(headers[:-1]):
        t.add_column(header, justify="right" if header in ("examples", "not impl.") else "left",
                     no_wrap=fits, min_width=natural[i] if fits else None, overflow="fold")
    if fits:  # one line per row: the detail is cut (the failures are printed in full below)
        t.add_column(headers[-1], overflow="ellipsis", no_wrap=True, max_width=None if width is None else width - fixed)
    # else a narrow terminal: no detail column (the failures are printed in full below), rich wraps the rest
    for row in rows:
        cells = [*row[:3], Text(row[3], style=STYLES.get(row[3].split(",")[0], "")), *row[4:6]]
        t.add_row(*cells, Text(row[6])) if fits else t.add_row(*cells)
    return t


def print_report(console: Console, results: list[Result], *, header: str, footer: str) -> None:
    """The table, a line per op that was verified only in part, then each failure's minimal counterexample
    (each distinct defect's, when a check has several), then the one-line summary."""
    console.print(Text(header, style="bold"), soft_wrap=True)
    console.print(table(results, console.width))
    partial = _coverage.by_op(results)
    if partial:
        console.print()
        for entry in partial.values():
            console.print(Text(entry["summary"], style="yellow"), soft_wrap=True)
    failures = [r for r in results if r.failed]
    for r in failures:
        title = f"FAIL: {r.op} {CHECK_TITLES.get(r.check, r.check)} ({r.dtype})"
        defects = r.defects if r.defects and len(r.defects) > 1 else None
        if defects is None:
            console.print()
            console.rule(Text(title, style="bold red"), align="left")
            console.print(Text(r.rendered or r.message), soft_wrap=True)
            continue
        for i, defect in enumerate(defects, 1):
            console.print()
            console.rule(Text(f"{title}: defect {i} of {len(defects)}: {defect['identity']}", style="bold red"), align="left")
            console.print(Text(defect["rendered"] or defect["message"]), soft_wrap=True)
    for r in results:
        if r.status == IMPRECISE:
            console.print()
            console.rule(Text(f"imprecise: {r.op} {CHECK_TITLES.get(r.check, r.check)} ({r.dtype})", style=STYLES[IMPRECISE]),
                         align="left")
            console.print(Text(r.rendered or r.message), soft_wrap=True)
    for r in results:
        if r.nondeterministic:
            console.print()
            console.rule(Text(f"{NOT_DETERMINISTIC}: {r.op} {CHECK_TITLES.get(r.check, r.check)} ({r.dtype})",
                              style=STYLES[IMPRECISE]), align="left")
            console.print(Text(r.nondeterministic), soft_wrap=True)
    console.print()
    console.print(Text(footer), soft_wrap=True)


def footer_line(results: list[Result], seconds: float, require_full: bool = False, strict: bool = False) -> str:
    c = counts(results)
    parts = [f"{n} {s}" for s, n in c.items() if n]
    verdict = "FAILED" if exit_code(results, require_full, strict) else "OK"
    line = f"{verdict}: {len(results)} op/check/dtype results: {', '.join(parts) or 'nothing run'} in {seconds:.1f} s"
    incomplete = sum(map(_coverage.incomplete, results))
    if require_full and incomplete:
        line += f" (--require-full: {incomplete} not verified on every drawn configuration)"
    nondeterministic = sum(bool(r.nondeterministic) for r in results)
    if nondeterministic:
        line += f"; {nondeterministic} {NOT_DETERMINISTIC}"
    gated = [f"{c[IMPRECISE]} imprecise"] if c.get(IMPRECISE) else []
    gated += [f"{nondeterministic} {NOT_DETERMINISTIC}"] if nondeterministic else []
    if strict and gated:
        line += f" (--strict: {', '.join(gated)})"
    return line


# --------------------------------------------------------------------------- JSON


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def as_json(module: str, provided: list[str], settings: dict, results: list[Result], seconds: float) -> dict:
    try:
        bpcheck_version = version("bpcheck")
    except Exception:  # noqa: BLE001 - not installed: no version
        bpcheck_version = None
    rows = [{k: v for k, v in r.as_dict().items() if k != "missing_op"} for r in results]
    return _json_safe(
        {
            "bpcheck": bpcheck_version,
            "module": module,
            "provided": list(provided),
            "settings": dict(settings),
            "summary": {"results": len(results), **counts(results), "seconds": round(seconds, 3),
                        "not_deterministic": sum(bool(r.nondeterministic) for r in results),
                        "exit_code": exit_code(results, bool(settings.get("require_full")), bool(settings.get("strict")))},
            "coverage": _coverage.by_op(results),
            "results": rows,
            "failures": [row for row in rows if row["status"] == FAIL],
            "imprecise": [row for row in rows if row["status"] == IMPRECISE],
            "not_deterministic": [row for row in rows if row["nondeterministic"]],
        }
    )


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file in the same folder, then renamed over it."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_json(path: str | Path, document: dict) -> None:
    write_atomically(path, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())


# --------------------------------------------------------------------------- JUnit XML

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_ILLEGAL.sub("\N{REPLACEMENT CHARACTER}", text)


def junit(module: str, settings: dict, results: list[Result], seconds: float) -> ET.ElementTree:
    """One testsuite, one testcase per (op, check, dtype): classname = the op, name = ``check[dtype]``."""
    require_full, strict = bool(settings.get("require_full")), bool(settings.get("strict"))
    # the results that fail only because of --require-full or --strict
    gated = {id(r) for r in results if not r.failed and (
        (require_full and _coverage.incomplete(r)) or (strict and _gated_by_strict(r)))}
    n_failures = sum(r.failed for r in results) + len(gated)
    n_skipped = sum(r.status in (NOT_IMPLEMENTED, NOT_EXPRESSIBLE, SKIPPED) and id(r) not in gated for r in results)
    suites = ET.Element("testsuites", name=f"bpcheck verify {module}", tests=str(len(results)),
                        failures=str(n_failures), errors="0", skipped=str(n_skipped), time=f"{seconds:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=f"bpcheck verify {module}", tests=str(len(results)),
                          failures=str(n_failures), errors="0", skipped=str(n_skipped), time=f"{seconds:.3f}")
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="module", value=_xml_text(module))
    for key, value in settings.items():
        ET.SubElement(properties, "property", name=key, value=_xml_text(json.dumps(_json_safe(value))))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.op, name=f"{r.check}[{r.dtype}]", time=f"{r.seconds:.3f}")
        props = {"status": r.status}
        if r.coverage and r.coverage["declined"]:
            props.update(verified_fraction=f"{r.coverage['fraction']:g}", checked=str(r.coverage["checked"]),
                         declined=str(r.coverage["declined"]), declined_features=", ".join(r.coverage["declined_features"]))
        if r.defects:
            props["defects"] = "; ".join(d["identity"] for d in r.defects)
        properties = ET.SubElement(case, "properties")
        for key, value in props.items():
            ET.SubElement(properties, "property", name=key, value=_xml_text(value))
        if r.failed:
            failure = ET.SubElement(case, "failure", message=_xml_text(summary_of(r)), type="FAIL")
            if r.defects and len(r.defects) > 1:
                failure.text = _xml_text("\n\n".join(f"defect {i} of {len(r.defects)}: {d['identity']}\n{d['rendered']}"
                                                      for i, d in enumerate(r.defects, 1)))
            else:
                failure.text = _xml_text(r.rendered or r.message)
        elif id(r) in gated:
            if strict and r.status != IMPRECISE and r.nondeterministic:
                failure = ET.SubElement(case, "failure", type=NOT_DETERMINISTIC,
                                        message=_xml_text(f"--strict: {nondeterministic_label(r)}"))
                failure.text = _xml_text(r.nondeterministic)
            else:
                flag = "--strict" if r.status == IMPRECISE else "--require-full"
                failure = ET.SubElement(case, "failure", type=r.status,
                                        message=_xml_text(f"{flag}: {r.status}: {summary_of(r)}"))
                failure.text = _xml_text(r.rendered or r.message)
        elif r.status in (NOT_IMPLEMENTED, NOT_EXPRESSIBLE, SKIPPED):
            ET.SubElement(case, "skipped", message=_xml_text(f"{r.status}: {r.message}" if r.message else r.status))
        out = f"examples: {r.examples}; not implemented for {r.not_implemented}; skipped {r.skipped}"
        if r.status in (PASS, PARTIAL) and r.message:
            out += f"\n{r.message}"
        if r.status == IMPRECISE:
            out += f"\nimprecise (right rule, digits lost beyond rounding; not a failure without --strict):\n{r.rendered or r.message}"
        if r.nondeterministic:
            out += f"\n{NOT_DETERMINISTIC} (right values, two identical calls differ; not a failure without --strict):\n{r.nondeterministic}"
        ET.SubElement(case, "system-out").text = _xml_text(out)
    tree = ET.ElementTree(suites)
    ET.indent(tree)
    return tree


def write_junit(path: str | Path, tree: ET.ElementTree) -> None:
    buffer = io.BytesIO()
    tree.write(buffer, encoding="utf-8", xml_declaration=True)
    write_atomically(path, buffer.getvalue())
