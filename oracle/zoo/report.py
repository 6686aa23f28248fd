"""How well the property suite kills the bug zoo, and spares its counterparts: Markdown tables for the README.

    python -m oracle.zoo.report                   # every mutant and every counterpart
    python -m oracle.zoo.report conv_unflipped_filter maxpool_ties_all conv_fft
    python -m oracle.zoo.report --no-counterparts # the first half only

The report has two halves and ends with both numbers:
"wrong rules caught: K/N; right rules passed: P/M (I imprecise)".

First half, wrong rules caught:

For each mutant (``oracle.zoo``), each check of ``harness.ZOO_CHECKS`` is run
through the suite's own property (``build_property``) with the 'ci' profile's derandomized
cases (see ``oracle.zoo.harness``), going on after failures to count them:

killed by            the checks that failed on at least one case
first failure        which check, on which case (explicit examples run first), and the time from the
                     start of the zoo's run of the mutant (backward first, then finite differences)
failing cases        failing / judged cases, per check: how many of the suite's cases see the mistake
drawn cases alone    the failing cases when the strategies run without the explicit examples: none
                     (in bold) is a hole in oracle.strategies that only a hand-written example covers
hint                 whether the first failure's hint names the right mistake (oracle.diagnosis)

Second half, right rules passed: for each counterpart (``oracle.zoo.right``: refimpl
with one op computed another, correct way), every check of that op
(``oracle.suite.checks_for``) in both dtypes on the 'ci' profile's cases, going
on after failures (``oracle.zoo.right.measure``):

verdicts             pass / imprecise / FAIL verdicts over every check and dtype
failing              the check/dtype pairs with a FAIL (a false alarm: a right rule rejected)
A counterpart passes if it gets no FAIL; "imprecise" counts the counterparts with at least one
imprecise verdict (right, but rounding worse than the tolerance model expects of torch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from oracle.implementation import Implementation
from oracle.mistakes import MISTAKES
from oracle.verdict import CHECK_TITLES
from oracle.zoo import MUTANTS
from oracle.zoo.harness import ZOO_CHECKS, ZOO_DTYPE, Outcome, run
from oracle.zoo.right import COUNTERPARTS

SHORT = {"backward": "backward", "finite_differences": "finite differences"}


def measure(mutant: str, dtype: str = ZOO_DTYPE) -> dict:
    """One row of the table for the mutant module ``mutant``."""
    mistake = MISTAKES[MUTANTS[mutant]]
    impl = Implementation.load(mutant)
    full: dict[str, Outcome] = {c: run(impl, mistake.op, c, dtype=dtype, stop_at_first_failure=False) for c in ZOO_CHECKS}
    drawn: dict[str, Outcome] = {
        c: run(impl, mistake.op, c, dtype=dtype, stop_at_first_failure=False, explicit_examples=False) for c in ZOO_CHECKS
    }
    elapsed, first = 0.0, None
    for check in ZOO_CHECKS:  # the zoo's order: a check runs to the end only if it does not kill
        outcome = full[check]
        if outcome.killed:
            first = (check, outcome, elapsed + outcome.seconds_to_first_failure)
            break
        elapsed += outcome.seconds
    return {
        "mistake": mistake,
        "full": full,
        "drawn": drawn,
        "first": first,
        "killed_by": [c for c in ZOO_CHECKS if full[c].killed],
        "drawn_killed_by": [c for c in ZOO_CHECKS if drawn[c].killed],
        "hint": first is not None and first[1].hinted(mistake.name),
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def row(r: dict) -> str:
    m = r["mistake"]
    killed_by = ", ".join(SHORT[c] for c in r["killed_by"]) or "**SURVIVES**"
    if r["first"]:
        check, outcome, seconds = r["first"]
        where = "example" if outcome.first_failure_is_example else "drawn case"
        first = f"{SHORT[check]}, {where} {outcome.first_case_index}"
        time_to_first = _ms(seconds)
    else:
        first, time_to_first = "-", "-"
    rates = " / ".join(f"{r['full'][c].failures}/{r['full'][c].judged}" for c in ZOO_CHECKS)
    drawn = " / ".join(f"{r['drawn'][c].failures}/{r['drawn'][c].judged}" for c in ZOO_CHECKS)
    if not r["drawn_killed_by"]:
        drawn = f"**{drawn}**"
    hint = "yes" if r["hint"] else ("**no**" if r["first"] else "-")
    return f"| `{m.name}` | {m.op} | {killed_by} | {first} | {time_to_first} | {rates} | {drawn} | {hint} |"


def table(rows: list[dict], dtype: str) -> str:
    checks = " / ".join(SHORT[c] for c in ZOO_CHECKS)
    lines = [
        f"| mutant | op | killed by | first failure | time to first failure | failing cases ({checks}) | drawn cases alone: failing ({checks}) | hint names it |",
        "|---|---|---|---|---|---|---|---|",
        *(row(r) for r in rows),
    ]
    n = len(rows)
    killed = sum(bool(r["killed_by"]) for r in rows)
    drawn = sum(bool(r["drawn_killed_by"]) for r in rows)
    hinted = sum(r["hint"] for r in rows)
    imprecise = {r["mistake"].name: sum(o.imprecise for o in r["full"].values()) for r in rows}
    times = [r["first"][2] for r in rows if r["first"]]
    summary = [
        "",
        f"Kill rate: **{killed}/{n}** mutants ({100 * killed / max(n, 1):.0f}%) killed by the suite "
        f"({' + '.join(CHECK_TITLES[c] for c in ZOO_CHECKS)}, {dtype}, 'ci' profile); "
        f"{drawn}/{n} by the drawn cases alone, without the explicit examples.",
        f"Hint names the right mistake: {hinted}/{killed} killed mutants.",
        f"Cases a mutant got through as merely imprecise (a wrong rule inside the imprecise band): "
        f"{sum(imprecise.values())}" + "".join(f"; {name}: {n}" for name, n in imprecise.items() if n),
    ]
    if times:
        summary.append(f"Time to first failure: median {_ms(statistics.median(times))}, max {_ms(max(times))}.")
    invalid = {repr(c) for r in rows for o in r["full"].values() for c in o.invalid_examples}
    if invalid:
        summary.append(f"Left out: {len(invalid)} explicit example(s) refimpl rejects as invalid: " + "; ".join(sorted(invalid)))
    return "\n".join(lines + summary)


def counterpart_table(measurements: list) -> str:
    """The second half: one row per counterpart (``oracle.zoo.right.measure.Measurement``)."""
    lines = [
        "| counterpart | op | computes it | verdicts: pass / imprecise / FAIL | failing (check/dtype) | time |",
        "|---|---|---|---|---|---|",
    ]
    for m in measurements:
        failing = ", ".join(m.failing_checks()) or "-"
        verdicts = f"{m.passes} / {m.imprecise} / {m.fails}"
        if m.fails:
            verdicts, failing = f"**{verdicts}**", f"**{failing}**"
        lines.append(f"| `{m.name}` | {m.op} | {_how(m.module)} | {verdicts} | {failing} | {_ms(m.seconds)} |")
    n = len(measurements)
    passed = sum(m.ok for m in measurements)
    imprecise = sum(m.imprecise > 0 for m in measurements)
    lines += [
        "",
        f"Right rules passed: **{passed}/{n}** counterparts with no FAIL ({imprecise} with imprecise verdicts), "
        f"every check of their op, float64 and float32, 'ci' profile.",
    ]
    return "\n".join(lines)


def _how(module: str) -> str:
    """The counterpart's one-line description: its docstring's first line after the name."""
    import importlib  # noqa: PLC0415

    doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()
    first = doc[0] if doc else ""
    return first.split(": ", 1)[-1].rstrip(".").replace("``", "`")


def summary_line(rows: list[dict], measurements: list) -> str:
    """Both numbers: wrong rules caught, right rules passed."""
    caught = sum(bool(r["killed_by"]) for r in rows)
    passed = sum(m.ok for m in measurements)
    imprecise = sum(m.imprecise > 0 for m in measurements)
    return (
        f"wrong rules caught: {caught}/{len(rows)}; "
        f"right rules passed: {passed}/{len(measurements)} ({imprecise} imprecise)"
    )


def _warm_up() -> None:
    """Import torch and run one check, so the first mutant's time is not the import's."""
    from oracle.checks import backward  # noqa: PLC0415
    from oracle.examples import examples_for  # noqa: PLC0415
    from oracle.ops import SPECS  # noqa: PLC0415

    impl = Implementation.load("refimpl")
    for case in examples_for("conv2d", ZOO_DTYPE)[:1]:
        backward(impl, SPECS["conv2d"], case)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oracle.zoo.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mistake and/or counterpart names (default: the whole zoo and every counterpart)")
    parser.add_argument("--dtype", default=ZOO_DTYPE, choices=("float64", "float32"), help="dtype of the zoo's runs (counterparts run both)")
    parser.add_argument("--no-counterparts", action="store_true", help="only the first half: wrong rules caught")
    parser.add_argument("--no-zoo", action="store_true", help="only the second half: right rules passed")
    args = parser.parse_args(argv)
    counterpart_names = {module.rsplit(".", 1)[-1]: module for module in COUNTERPARTS}
    unknown = [m for m in args.names if m not in MISTAKES and m not in counterpart_names]
    if unknown:
        parser.error(
            f"unknown name(s) {', '.join(unknown)}; mistakes: {', '.join(MISTAKES)}; counterparts: {', '.join(counterpart_names)}"
        )
    wanted_mistakes = {m for m in args.names if m in MISTAKES} or (set() if args.names else set(MISTAKES))
    wanted_counterparts = {m for m in args.names if m in counterpart_names} or (set() if args.names else set(counterpart_names))
    if args.no_zoo:
        wanted_mistakes = set()
    if args.no_counterparts:
        wanted_counterparts = set()
    _warm_up()
    start = time.perf_counter()
    rows = []
    for module, name in MUTANTS.items():
        if name in wanted_mistakes:
            rows.append(measure(module, args.dtype))
            print(f"measured {name}", file=sys.stderr, flush=True)
    if rows:
        print(table(rows, args.dtype))
    from oracle.zoo.right.measure import measure as measure_counterpart  # noqa: PLC0415

    measurements = []
    for name, module in counterpart_names.items():
        if name in wanted_counterparts:
            measurements.append(measure_counterpart(module))
            print(f"measured counterpart {name}", file=sys.stderr, flush=True)
    if measurements:
        print(("\n" if rows else "") + counterpart_table(measurements))
    print(f"\n{summary_line(rows, measurements)}")
    print(f"\n(measured in {time.perf_counter() - start:.1f} s)")
    zoo_ok = all(r["killed_by"] and r["hint"] for r in rows)
    return 0 if zoo_ok and all(m.ok for m in measurements) else 1


if __name__ == "__main__":
    sys.exit(main())
