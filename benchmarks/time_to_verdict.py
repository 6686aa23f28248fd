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

``--target LABEL=MODULE`` (repeatable) times other implementations instead, e.g.
``jax=jax:examples/native/jax_functional.py`` or ``torch=torch:examples/native/functional.py``;
``--per-op`` also prints, per op, the seconds of its op/check/dtype units (``--json``'s
``results[i].seconds``, summed; with ``--jobs 2`` two units run at a time, so these add up
to about twice the wall time). ``--checkout DIR`` runs another checkout's code (its
``.venv``, from its directory: the "before" of a change). A ``jax:`` target gets a fresh,
empty persistent compilation cache for each run (``BPCHECK_JAX_CACHE``: a cold run), or
with ``--jax-cache DIR`` that one (warm after its first run).
"""

from __future__ import annotations

import argparse
import json
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


def timed(target: str, jobs: str, ops: str | None = None, checkout: Path = ROOT, per_op: dict | None = None,
          jax_cache: str | None = None, examples: int | None = None, allow_fail: bool = False,
          screen: str = "on") -> tuple[float, float | None]:
    """``(wall seconds, CPU seconds of every process of the run)`` of one ``bpcheck verify`` run; exits if it does
    not pass. The CPU is polled from ``/proc`` every 0.1 s (a process's last 0.1 s before it ends may be missed;
    None where there is no ``/proc``): on a loaded machine it says more than the wall time. ``per_op``, if given,
    gets each op's unit seconds added (``{op: seconds}``)."""
    python = sys.executable if checkout == ROOT else str(checkout / ".venv" / "bin" / "python")
    report = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    report.close()
    command = [python, "-m", "oracle.cli", "verify", target, "--profile", "ci", "--jobs", jobs, "--json", report.name]
    if ops:
        command += ["--ops", ops]
    if examples:
        command += ["--examples", str(examples)]
    seen: dict[int, float] = {}
    env = {**os.environ, "BPCHECK_SCREEN": "0" if screen == "off" else "1"}
    fresh = tempfile.TemporaryDirectory(prefix="bpcheck-jax-cache-")
    if target.startswith("jax:"):
        env["BPCHECK_JAX_CACHE"] = jax_cache or fresh.name
    with fresh, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=checkout, stdout=out, stderr=err, text=True, env=env)
        while process.poll() is None:
            for pid, seconds in _cpu_seconds(process.pid).items():
                seen[pid] = max(seen.get(pid, 0.0), seconds)
            time.sleep(0.1)
        wall = time.perf_counter() - started
        if process.returncode not in (0, 1) or process.returncode == 1 and not allow_fail:
            out.seek(0), err.seek(0)
            raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{out.read()[-2000:]}{err.read()[-2000:]}")
    if per_op is not None:
        for result in json.loads(Path(report.name).read_text())["results"]:
            per_op[result["op"]] = per_op.get(result["op"], 0.0) + (result.get("seconds") or 0.0)
    if os.environ.get("BPCHECK_TTV_KEEP"):  # where to keep each run's --json report
        os.replace(report.name, Path(os.environ["BPCHECK_TTV_KEEP"]) / f"{target.split('/')[-1]}-{time.time():.0f}.json")
    else:
        os.unlink(report.name)
    return wall, (sum(seen.values()) if seen else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", default="auto", help="comma-separated --jobs settings to time (default: auto)")
    parser.add_argument("--ops", help="comma-separated ops to check (default: all; 'nine': the first contract's)")
    parser.add_argument("--screen", default="on", help="comma-separated: on (as shipped), off (every unit alone)")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--target", action="append", metavar="LABEL=MODULE",
                        help="time this implementation (repeatable; default: refimpl and the ten times slower one)")
    parser.add_argument("--checkout", type=Path, default=ROOT,
                        help="run this checkout's code, with its .venv (default: this one)")
    parser.add_argument("--allow-fail", action="store_true", help="time a run whose verdict is FAIL too (exit 1)")
    parser.add_argument("--examples", type=int, help="drawn cases per unit (default: the ci profile's)")
    parser.add_argument("--per-op", action="store_true", help="also print each op's unit seconds (median)")
    parser.add_argument("--jax-cache", help="a jax: target's persistent compilation cache (default: a fresh one "
                        "per run, cold)")
    args = parser.parse_args()
    ops = NINE if args.ops == "nine" else args.ops
    load = os.getloadavg()[0]
    targets = dict(t.split("=", 1) for t in args.target) if args.target else TARGETS
    settings = [(label, target, jobs, screen) for label, target in targets.items() for jobs in args.jobs.split(",")
                for screen in args.screen.split(",")]
    walls: dict[tuple, list[float]] = {s: [] for s in settings}
    cpus: dict[tuple, list[float]] = {s: [] for s in settings}
    per_op: dict[tuple, list[dict]] = {s: [] for s in settings}
    for rep in range(args.reps):
        for setting in settings if rep % 2 == 0 else settings[::-1]:  # alternate the order
            seconds: dict = {}
            before = os.getloadavg()[0]
            wall, cpu = timed(setting[1], setting[2], ops, args.checkout, seconds, args.jax_cache, args.examples,
                              args.allow_fail, setting[3])
            walls[setting].append(wall)
            per_op[setting].append(seconds)
            if cpu is not None:
                cpus[setting].append(cpu)
            print(f"  {setting[0]:22s} --jobs {setting[2]:5s} screen {setting[3]:3s} {wall:6.1f} s, CPU {cpu or float('nan'):6.1f} s, "
                  f"load average {before:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
            if args.per_op:
                print("    " + ", ".join(f"{op} {s:.1f}" for op, s in seconds.items()), flush=True)
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
    if args.per_op:
        names = list(dict.fromkeys(op for s in settings for run in per_op[s] for op in run))
        lines += ["", "| op | " + " | ".join(f"{s[0]} (unit s)" for s in settings) + " |",
                  "|---|" + "---:|" * len(settings)]
        for op in names:
            lines.append(f"| {op} | " + " | ".join(
                f"{statistics.median(run.get(op, 0.0) for run in per_op[s]):.1f}" for s in settings) + " |")
        print("\n".join(lines[-len(names) - 3:]))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
