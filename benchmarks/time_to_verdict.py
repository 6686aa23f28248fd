"""How long a user waits for a verdict: ``bpcheck verify MODULE --profile ci`` timed end to end.

    python benchmarks/time_to_verdict.py [--reps 3] [--jobs auto,1] [--ops OP,OP...] [--screen on,off] [--markdown FILE]

Times, alternately and ``--reps`` times each, the whole command (start-up, every
op, check and dtype, the report) for:

* ``refimpl`` (the reference, as fast as this project's NumPy gets);
* ``benchmarks/slow_refimpl.py`` (refimpl computing every call ten times: a correct
  NumPy implementation ten times slower, as a student's often is);

with each ``--jobs`` setting, over every op of the contract or the ``--ops`` given
(``nine``: the first contract's nine ops, as the earlier figures were), and with the screen
(``oracle.screening``: one draw per op and dtype serving every check) on, as shipped, or off
(``--screen on,off``: every op/check/dtype searched alone, as before it). Prints the
median wall time of each, the CPU seconds of all its processes (the CLI, the fork
server, the judges, the workers) and the load average before the run. Run it on a
quiet machine; on a loaded one, read the CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TARGETS = {
    "refimpl": "refimpl",
    "refimpl, 10x slower": str(ROOT / "benchmarks" / "slow_refimpl.py"),
}


#: the contract's first nine ops (the README's earlier time-to-verdict figures are for these)
NINE = "conv2d,max_pool2d,avg_pool2d,linear,relu,sigmoid,flatten,binary_cross_entropy,binary_cross_entropy_with_logits"


def _cpu_seconds(root: int) -> dict[int, float]:
    """``{pid: user + system CPU seconds}`` of ``root`` and every process below it, from ``/proc`` ({} elsewhere)."""
    tick, parents, cpu = os.sysconf("SC_CLK_TCK"), {}, {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        parents[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, p in parents.items() if p == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def timed(target: str, jobs: str, ops: str | None = None, screen: str = "on") -> tuple[float, float | None]:
    """``(wall seconds, CPU seconds of every process of the run)`` of one ``bpcheck verify`` run; exits if it does
    not pass. The CPU is polled from ``/proc`` every 0.1 s (a process's last 0.1 s before it ends may be missed;
    None where there is no ``/proc``): on a loaded machine it says more than the wall time."""
    command = [sys.executable, "-m", "oracle.cli", "verify", target, "--profile", "ci", "--jobs", jobs]
    if ops:
        command += ["--ops", ops]
    seen: dict[int, float] = {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        env = {**os.environ, "BPCHECK_SCREEN": "0" if screen == "off" else "1"}
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err, text=True, env=env)
        while process.poll() is None:
            for pid, seconds in _cpu_seconds(process.pid).items():
                seen[pid] = max(seen.get(pid, 0.0), seconds)
            time.sleep(0.1)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            out.seek(0), err.seek(0)
            raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{out.read()[-2000:]}{err.read()[-2000:]}")
    return wall, (sum(seen.values()) if seen else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", default="auto", help="comma-separated --jobs settings to time (default: auto)")
    parser.add_argument("--ops", help="comma-separated ops to check (default: all; 'nine': the first contract's)")
    parser.add_argument("--screen", default="on", help="comma-separated: on (as shipped), off (every unit alone)")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    args = parser.parse_args()
    ops = NINE if args.ops == "nine" else args.ops
    load = os.getloadavg()[0]
    settings = [(label, target, jobs, screen) for label, target in TARGETS.items() for jobs in args.jobs.split(",")
                for screen in args.screen.split(",")]
    walls: dict[tuple, list[float]] = {s: [] for s in settings}
    cpus: dict[tuple, list[float]] = {s: [] for s in settings}
    for rep in range(args.reps):
        for setting in settings if rep % 2 == 0 else settings[::-1]:  # alternate the order
            wall, cpu = timed(setting[1], setting[2], ops, setting[3])
            walls[setting].append(wall)
            if cpu is not None:
                cpus[setting].append(cpu)
            print(f"  {setting[0]:22s} --jobs {setting[2]:5s} screen {setting[3]:3s} {wall:6.1f} s, "
                  f"CPU {cpu or float('nan'):6.1f} s", flush=True)
    lines = ["| implementation | `--jobs` | screen | verdict after (s, median) | runs (s) | CPU s, all processes (median) |",
             "|---|---|---|---|---|---|"]
    for setting in settings:
        runs = ", ".join(f"{w:.1f}" for w in walls[setting])
        cpu = f"{statistics.median(cpus[setting]):.1f}" if cpus[setting] else "n/a"
        lines.append(f"| {setting[0]} | {setting[2]} | {setting[3]} | {statistics.median(walls[setting]):.1f} | {runs} "
                     f"| {cpu} |")
    print(f"`bpcheck verify MODULE --profile ci{' --ops ' + ops if ops else ''}`, median of {args.reps}, {os.cpu_count()} cores, "
          f"load average before: {load:.1f}")
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
