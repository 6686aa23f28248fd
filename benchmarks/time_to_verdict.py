"""How long a user waits for a verdict: ``bpcheck verify MODULE --profile ci`` timed end to end.

    python benchmarks/time_to_verdict.py [--reps 3] [--jobs auto,1] [--ops OP,OP...] [--markdown FILE]

Times, alternately and ``--reps`` times each, the whole command (start-up, every
op, check and dtype, the report) for:

* ``refimpl`` (the reference, as fast as this project's NumPy gets);
* ``benchmarks/slow_refimpl.py`` (refimpl computing every call ten times: a correct
  NumPy implementation ten times slower, as a student's often is);

with each ``--jobs`` setting, over every op of the contract or the ``--ops`` given (``nine``: the first
contract's nine ops, as the earlier figures were). Prints the median wall time of each and the load
average before the run. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {
    "refimpl": "refimpl",
    "refimpl, 10x slower": str(ROOT / "benchmarks" / "slow_refimpl.py"),
}


#: the contract's first nine ops (the README's earlier time-to-verdict figures are for these)
NINE = "conv2d,max_pool2d,avg_pool2d,linear,relu,sigmoid,flatten,binary_cross_entropy,binary_cross_entropy_with_logits"


def timed(target: str, jobs: str, ops: str | None = None) -> float:
    """Wall seconds of one ``bpcheck verify`` run; exits if the run does not pass."""
    command = [sys.executable, "-m", "oracle.cli", "verify", target, "--profile", "ci", "--jobs", jobs]
    if ops:
        command += ["--ops", ops]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", default="auto", help="comma-separated --jobs settings to time (default: auto)")
    parser.add_argument("--ops", help="comma-separated ops to check (default: all; 'nine': the first contract's)")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = parser.parse_args()
    ops = NINE if args.ops == "nine" else args.ops
    load = os.getloadavg()[0]
    settings = [(label, target, jobs) for label, target in TARGETS.items() for jobs in args.jobs.split(",")]
    walls: dict[tuple, list[float]] = {s: [] for s in settings}
    for rep in range(args.reps):
        for setting in settings if rep % 2 == 0 else settings[::-1]:  # alternate the order
            wall = timed(setting[1], setting[2], ops)
            walls[setting].append(wall)
            print(f"  {setting[0]:22s} --jobs {setting[2]:5s} {wall:6.1f} s", flush=True)
    lines = ["| implementation | `--jobs` | verdict after (s, median) | runs (s) |", "|---|---|---|---|"]
    for setting in settings:
        runs = ", ".join(f"{w:.1f}" for w in walls[setting])
        lines.append(f"| {setting[0]} | {setting[2]} | {statistics.median(walls[setting]):.1f} | {runs} |")
    print(f"`bpcheck verify MODULE --profile ci{' --ops ' + ops if ops else ''}`, median of {args.reps}, {os.cpu_count()} cores, "
          f"load average before: {load:.1f}")
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
