"""What the process boundary costs: refimpl judged in its worker (as every implementation is) vs in-process.

    python benchmarks/boundary_cost.py [--reps 3] [--markdown FILE]

Runs, alternately and ``--reps`` times each, with the same settings:

* ``bpcheck verify refimpl --profile ci`` (all ops, both dtypes, one judge process);
* ``pytest --pyargs oracle.suite --impl=refimpl -n 2`` (the property suite, two pytest workers);

once as shipped (refimpl called through ``oracle.untrusted``: its own worker process, arrays over a socket)
and once with refimpl imported into the judge (``--in-process``, a benchmark-only switch: the judge trusts
the module, so this is the cost of the boundary and nothing else). Prints wall times, their medians, and
the ratio boundary / in-process. Run it on a quiet machine: both modes compete for the same cores.

    python benchmarks/boundary_cost.py --per-check conv2d,max_pool2d,linear

instead times each check of the ops alone (100 float64 cases, in-process vs worker, best of two).
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


def _in_process_loader(target: str, config: dict):
    """``oracle.verify.load_in_child`` with the module imported in the judge (trusted: benchmarks only)."""
    import importlib  # noqa: PLC0415

    from oracle.implementation import Implementation  # noqa: PLC0415

    impl = Implementation(importlib.import_module(target), target)
    return impl, impl.provided()


def pytest_configure(config) -> None:
    """As a pytest plugin (``-p boundary_cost``): the ``impl`` fixture gets the module imported in-process."""
    import importlib  # noqa: PLC0415

    from oracle import implementation  # noqa: PLC0415

    def load(target, **_):
        return implementation.Implementation(importlib.import_module(target), target)

    implementation.Implementation.load = staticmethod(load)


def _verify_in_process(argv: list[str]) -> int:
    from oracle import cli, verify  # noqa: PLC0415

    verify.load_in_child = _in_process_loader
    return cli.main(argv)


COMMANDS = {
    "verify": [sys.executable, "-m", "oracle.cli", "verify", "refimpl", "--profile", "ci"],
    "pytest -n 2": [sys.executable, "-m", "pytest", "--pyargs", "oracle.suite", "--impl=refimpl", "-n", "2", "-q",
                    "-p", "no:cacheprovider"],
}


def _command(name: str, in_process: bool) -> tuple[list[str], dict]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}
    command = list(COMMANDS[name])
    if in_process and name == "verify":
        command = [sys.executable, str(Path(__file__).resolve()), "--run-verify-in-process", *command[4:]]
    elif in_process:
        command += ["-p", "boundary_cost"]
    return command, env


def _timed(name: str, in_process: bool) -> float:
    command, env = _command(name, in_process)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{name} ({'in-process' if in_process else 'boundary'}) failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def per_check(ops: list[str], examples: int = 100, reps: int = 2) -> list[tuple[str, str, float, float]]:
    """``(op, check, in-process s, worker s)``: each check's property on ``examples`` float64 cases, best of ``reps``."""
    import importlib  # noqa: PLC0415

    from hypothesis import settings  # noqa: PLC0415

    from oracle import pytest_plugin  # noqa: F401, PLC0415 - registers the profiles
    from oracle.implementation import Implementation  # noqa: PLC0415
    from oracle.suite import Tally, build_property, checks_for  # noqa: PLC0415

    local = Implementation(importlib.import_module("refimpl"), "refimpl")
    rows = []
    with Implementation.load("refimpl") as remote:
        for op in ops:
            for check in checks_for(op):
                best = {}
                for _ in range(reps):
                    for label, impl in (("local", local), ("remote", remote)):
                        prop = settings(settings.get_profile("ci"), max_examples=examples)(
                            build_property(op, check, "float64", examples=()))
                        started = time.perf_counter()
                        prop(impl, Tally())
                        best[label] = min(best.get(label, float("inf")), time.perf_counter() - started)
                rows.append((op, check, best["local"], best["remote"]))
                print(f"  {op:12s} {check:20s} in-process {best['local']:6.2f} s  worker {best['remote']:6.2f} s  "
                      f"{best['remote'] / best['local']:5.2f}x", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=sorted(COMMANDS), help="one command only")
    parser.add_argument("--markdown", help="also write the table as Markdown to this file")
    parser.add_argument("--per-check", metavar="OP[,OP...]",
                        help="instead: each check of these ops alone, 100 float64 cases, in-process vs worker (best of 2)")
    parser.add_argument("--run-verify-in-process", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_verify_in_process is not None:
        raise SystemExit(_verify_in_process(["verify", *args.run_verify_in_process]))
    if args.per_check:
        rows = per_check(args.per_check.split(","))
        checks = list(dict.fromkeys(check for _, check, _, _ in rows))
        lines = ["| op | " + " | ".join(checks) + " |", "|---" * (len(checks) + 1) + "|"]
        for op in dict.fromkeys(op for op, _, _, _ in rows):
            ratios = {check: remote / local for o, check, local, remote in rows if o == op}
            lines.append(f"| {op} | " + " | ".join(f"{ratios[c]:.2f}x" if c in ratios else "" for c in checks) + " |")
        print(f"load average: {os.getloadavg()[0]:.1f}")
        print("\n".join(lines))
        return
    rows = []
    for name in [args.only] if args.only else list(COMMANDS):
        times: dict[bool, list[float]] = {False: [], True: []}
        for rep in range(args.reps):
            for in_process in (True, False) if rep % 2 == 0 else (False, True):  # alternate the order
                times[in_process].append(_timed(name, in_process))
                print(f"  {name:12s} {'in-process' if in_process else 'boundary':10s} {times[in_process][-1]:7.1f} s",
                      flush=True)
        inside, across = statistics.median(times[True]), statistics.median(times[False])
        rows.append((name, inside, across, across / inside))
    lines = ["| command | in-process (s) | through the worker (s) | ratio |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {inside:.1f} | {across:.1f} | {ratio:.2f}x |" for name, inside, across, ratio in rows]
    print(f"median of {args.reps} runs each, load average before: {os.getloadavg()[0]:.1f}")
    print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
