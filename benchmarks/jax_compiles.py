"""Where a ``jax:`` run's time goes: the calls of a recorded run replayed in one process, compile vs call.

    BPCHECK_JAX_TRACE=trace.jsonl bpcheck verify jax:MODULE --ops conv2d --profile ci   # records every call
    python benchmarks/jax_compiles.py trace.jsonl --module MODULE [--cache DIR] [--limit N]

``BPCHECK_JAX_TRACE`` makes the ``jax:`` adapter (``oracle.untrusted.native``) append one line per call of
the implementation: the function, its arguments' shapes and dtypes, the configuration, the seconds it took and
whether that worker had seen the signature before. This script replays those calls, in their order, each
recorded worker's calls in their own child process (as in the run: each worker has its own in-process caches),
on arrays of the recorded shapes (normal values), through the same adapter, and prints per function the calls
of a new signature and of a seen one with their seconds, and the seconds JAX itself reports for tracing to a
jaxpr, lowering to StableHLO and the backend's compile (a persistent-cache hit counts there too, with its
retrieval), from ``jax.monitoring``.

``--cache DIR`` is the persistent compilation cache (``BPCHECK_JAX_CACHE``; default: a fresh empty one, a cold
run; ``none``: off). With no trace file given, it only summarizes the trace (what the run itself measured).
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: JAX's own compile-phase events (``jax._src.dispatch``), and the persistent cache's retrieval
PHASES = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache read",
}


def read(path: str) -> list[dict]:
    with open(path) as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    for row in rows:
        row["process"] = str(row.get("process", row.get("pid")))
    return rows


def summarize(rows: list[dict], title: str) -> dict:
    """Per function: calls of a new signature and their seconds, calls of a seen one and theirs."""
    table: dict = collections.defaultdict(lambda: [0, 0.0, 0, 0.0])
    for row in rows:
        entry = table[json.loads(row["signature"])[0]]
        if row["new"]:
            entry[0] += 1
            entry[1] += row["seconds"]
        else:
            entry[2] += 1
            entry[3] += row["seconds"]
    print(f"\n{title}")
    print(f"| function | new signatures | their s | ms each | calls seen before | their s | ms each |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total_new = total_seen = 0.0
    for name, (new, new_s, seen, seen_s) in sorted(table.items()):
        print(f"| {name} | {new} | {new_s:.2f} | {1000 * new_s / max(new, 1):.1f} | {seen} | {seen_s:.2f} | "
              f"{1000 * seen_s / max(seen, 1):.2f} |")
        total_new += new_s
        total_seen += seen_s
    signatures = {row["signature"] for row in rows}
    print(f"\n{len(rows)} calls, {len(signatures)} distinct signatures, "
          f"{sum(row['new'] for row in rows)} new to their worker; {total_new:.1f} s in calls of a new signature, "
          f"{total_seen:.1f} s in the others; {len({row['process'] for row in rows})} worker(s)")
    return dict(table)


def _array(np, described, rng):
    """An array of the recorded ``[shape, dtype]`` (normal values), None, or a tuple of them."""
    if described is None:
        return None
    if (len(described) == 2 and isinstance(described[0], list) and all(isinstance(n, int) for n in described[0])
            and isinstance(described[1], str)):
        shape, dtype = described
        kind = np.dtype(dtype).kind
        if kind == "f":
            return rng.standard_normal(shape).astype(dtype)
        return rng.integers(0, 2, size=shape).astype(dtype)
    return tuple(_array(np, d, rng) for d in described)


def replay(rows: list[dict], module: str) -> None:
    """Replay ``rows`` (one worker's calls, in order) through the adapter; print a JSON summary line."""
    import numpy as np  # noqa: PLC0415

    from oracle.ops import SPECS  # noqa: PLC0415
    from oracle.untrusted import native, worker  # noqa: PLC0415

    jax = native.jax_setup()
    phases: dict = collections.Counter()

    def listen(event, duration, **_):
        if event in PHASES:
            phases[PHASES[event]] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    impl = native.adapt_jax(worker.load(module), SPECS)
    rng = np.random.default_rng(0)
    seen, out = set(), []
    started, cpu = time.perf_counter(), time.process_time()
    calls = []
    for row in rows:
        name, args, config = json.loads(row["signature"])
        calls.append((name, [_array(np, a, rng) for a in args], {key: ast.literal_eval(value) for key, value in config}))
    for row, (name, arrays, config) in zip(rows, calls):
        t = time.perf_counter()
        try:
            getattr(impl, name)(*arrays, **config)
        except NotImplementedError:
            pass
        out.append({"process": "replay", "signature": row["signature"], "seconds": time.perf_counter() - t,
                    "new": row["signature"] not in seen})
        seen.add(row["signature"])
    print(json.dumps({"rows": out, "phases": dict(phases), "wall": time.perf_counter() - started,
                      "cpu": time.process_time() - cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", help="a BPCHECK_JAX_TRACE file")
    parser.add_argument("--module", help="the jax: module the run checked (a path or dotted name); without it, "
                        "only the trace's own summary")
    parser.add_argument("--cache", default="", help="persistent compilation cache for the replay (default: a fresh "
                        "empty directory; 'none': off)")
    parser.add_argument("--limit", type=int, default=0, help="replay only each worker's first N calls")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: replay one worker's calls here
    args = parser.parse_args()
    rows = read(args.trace)
    if args.worker is not None:
        replay([row for row in rows if row["process"] == args.worker][: args.limit or None], args.module)
        return
    summarize(rows, f"recorded: {args.trace}")
    if not args.module:
        return
    env = dict(os.environ)
    env.pop("BPCHECK_JAX_TRACE", None)
    with tempfile.TemporaryDirectory(prefix="bpcheck-jax-cache-") as fresh:
        env["BPCHECK_JAX_CACHE"] = "" if args.cache == "none" else args.cache or fresh
        replayed, phases, wall, cpu = [], collections.Counter(), 0.0, 0.0
        for process in dict.fromkeys(row["process"] for row in rows):
            result = subprocess.run([sys.executable, __file__, args.trace, "--module", args.module, "--worker", process,
                                     "--limit", str(args.limit)], cwd=ROOT, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(result.stderr)
            summary = json.loads(result.stdout.strip().splitlines()[-1])
            for row in summary["rows"]:
                row["process"] = process
            replayed += summary["rows"]
            phases.update(summary["phases"])
            wall += summary["wall"]
            cpu += summary["cpu"]
    summarize(replayed, f"replayed (BPCHECK_JAX_FAST_COMPILE={os.environ.get('BPCHECK_JAX_FAST_COMPILE', '1')}, cache: "
              f"{'off' if args.cache == 'none' else args.cache or 'fresh'}): {wall:.1f} s of calls, {cpu:.1f} s of CPU; "
              f"load average {os.getloadavg()[0]:.1f}")
    print("JAX's compile phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))


if __name__ == "__main__":
    main()
