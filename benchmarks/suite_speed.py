"""How fast the property suite checks cases: examples per second, per op and check (one process, 'ci' profile).

    python benchmarks/suite_speed.py [--impl refimpl] [--markdown FILE]

Runs each generated property (oracle.suite.build_property) once, without the
explicit examples, and divides the cases it checked by its wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

from hypothesis import settings

from oracle.case import DTYPES
from oracle.implementation import Implementation
from oracle.pytest_plugin import CI_EXAMPLES
from oracle.suite import ALL_CHECKS, Tally, applies, build_property
from oracle.ops import SPECS


def measure(impl: Implementation) -> list[tuple[str, str, int, float]]:
    """``(op, check, cases, seconds)`` for every op and applicable check, both dtypes together."""
    settings.load_profile("ci")
    rows = []
    for op in SPECS:
        for check in ALL_CHECKS:
            if not applies(op, check):
                continue
            ran, seconds = 0, 0.0
            for dtype in DTYPES:
                tally = Tally()
                prop = build_property(op, check, dtype, examples=())
                started = time.perf_counter()
                prop(impl, tally)
                seconds += time.perf_counter() - started
                ran += tally.ran
            rows.append((op, check, ran, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="refimpl")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = parser.parse_args()
    rows = measure(Implementation.load(args.impl))
    checks = [c for c in ALL_CHECKS]
    lines = [
        f"Examples per second, {args.impl}, 'ci' profile ({CI_EXAMPLES} drawn cases per op, check and dtype), one process:",
        "",
        "| op | " + " | ".join(checks) + " | all checks |",
        "|---|" + "---:|" * (len(checks) + 1),
    ]
    per_op = {}
    for op, check, ran, seconds in rows:
        per_op.setdefault(op, {})[check] = (ran, seconds)
    rates = []
    for op, cells in per_op.items():
        ran = sum(r for r, _ in cells.values())
        seconds = sum(s for _, s in cells.values())
        rates.append(ran / seconds)
        shown = [f"{cells[c][0] / cells[c][1]:.0f}" if c in cells else "" for c in checks]
        lines.append(f"| {op} | " + " | ".join(shown) + f" | {ran / seconds:.0f} |")
    total_ran = sum(r for _, _, r, _ in rows)
    total_s = sum(s for _, _, _, s in rows)
    lines += ["", f"{total_ran} cases in {total_s:.1f} s ({total_ran / total_s:.0f}/s overall; median op {statistics.median(rates):.0f}/s)"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
