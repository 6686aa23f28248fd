"""Fuzz an implementation for a while, on every core of one machine or of many (Dask), with a shared database.

A campaign runs every property (op, check, dtype) of the implementation in rounds: each round is
up to --round-examples random (not derandomized) cases of one property, for at most --round-seconds,
with a fresh seed, on a Dask worker (``oracle.fuzz_round``: the implementation runs in an isolated
worker there, as for `bpcheck verify`, so a crash or a hang is a failure found, and the campaign
goes on). The cluster is a LocalCluster of --workers processes (default: one per core), or the
running one at --scheduler tcp://HOST:8786.

Scheduling, stated plainly: every property gets a first round; after that, the next free worker
takes the property with the fewest rounds running, then whose rounds have gone the fewest times in
a row without a new behaviour (a combination of configuration features and value recipes it had not
shown before, ``oracle.fuzz_round.behaviour``), then with the fewest rounds so far. A property that
finds new behaviour is thus run again at once; properties that have stopped finding any share what
is left, round robin; with fewer properties than workers, a property runs on several at once (each
round its own seed). A property that FAILs is retired: its failure, shrunk to the smallest case, is
reported and saved in the database.
New rounds start until --time-budget is spent (or every property has had --max-rounds); the rounds
running then end by it (plus the time to shrink a failure, --shrink-time).

With --database (or $BPCHECK_DATABASE), every failure found is saved there, keyed by the property;
`bpcheck verify` and `pytest --impl` given the same database replay it first, on any machine
(``oracle.database``). Without one, the failures are only printed.

Exit status: 0 if no property failed (not implemented, partial and imprecise are not failures), 1 if
any did, 2 if MODULE cannot be loaded, an option is wrong, or the cluster or a Redis database cannot
be reached.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from dataclasses import dataclass, field

from oracle.case import DTYPES
from oracle.ops import SPECS
from oracle.report import Result
from oracle.verdict import FAIL, IMPRECISE, NOT_IMPLEMENTED, PASS, SKIPPED

HELP = "fuzz an implementation for a time budget on a Dask cluster, failures saved in a shared example database"

NOT_RUN = "not run: out of time"
DEFAULT_ROUND_EXAMPLES = 200
DEFAULT_ROUND_SECONDS = 30.0
DEFAULT_SHRINK_TIME = 30.0

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1h30m`` -> seconds; ValueError naming the argument otherwise."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s|)", text.strip().lower()) if isinstance(text, str) else []
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*(h|min|m|s|)", "", text.strip().lower()).strip():
        raise ValueError(f"--time-budget must be a duration like 60, 60s, 10m or 1h30m, got {text!r}")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"--time-budget must be more than 0 s, got {text!r}")
    return seconds


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from oracle.implementation import CALL_TIMEOUT  # noqa: PLC0415
    from oracle.verify import _nonnegative_float, _positive_int, add_database_argument, add_sandbox_argument  # noqa: PLC0415

    parser.add_argument("module", metavar="MODULE", help="the implementation: a dotted module name or a path to a .py file")
    parser.add_argument("--ops", metavar="OP[,OP...]", help="fuzz only these ops (default: all the module provides)")
    parser.add_argument("--checks", metavar="CHECK[,CHECK...]",
                        help="fuzz only these checks (default: every one that applies: forward, backward, "
                        "finite_differences, adjoint, identities)")
    parser.add_argument("--dtype", choices=("float32", "float64", "both"), default="both", help="default: both")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="Dask worker processes of the local cluster (default: one per core); with --scheduler, "
                        "the rounds in flight at once (default: the cluster's threads)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="use a running Dask cluster (tcp://HOST:8786) instead of a local one")
    parser.add_argument("--time-budget", type=_duration, default=parse_duration("10m"), metavar="DURATION",
                        help="start no round after this long: 60, 60s, 10m, 1h30m (default: 10m)")
    parser.add_argument("--round-examples", type=_positive_int, default=DEFAULT_ROUND_EXAMPLES, metavar="N",
                        help=f"cases per round of one property (default: {DEFAULT_ROUND_EXAMPLES})")
    parser.add_argument("--round-seconds", type=_nonnegative_float, default=None, metavar="SECONDS",
                        help="a round checks no new case after this long (default: the budget shared so that every "
                        f"property can have a round, budget x rounds at a time / properties, from 1 to "
                        f"{DEFAULT_ROUND_SECONDS:g} s)")
    parser.add_argument("--shrink-time", type=_nonnegative_float, default=DEFAULT_SHRINK_TIME, metavar="SECONDS",
                        help=f"stop shrinking a failure after this long (default: {DEFAULT_SHRINK_TIME:g})")
    parser.add_argument("--timeout", type=_nonnegative_float, default=CALL_TIMEOUT, metavar="SECONDS",
                        help=f"time limit of one call of the implementation, beyond it a hang (default: {CALL_TIMEOUT:g})")
    parser.add_argument("--max-rounds", type=_positive_int, default=None, metavar="N",
                        help="at most N rounds of each property: the campaign ends when every property has had "
                        "them (or failed), or at the time budget (default: no limit)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed the campaign's choice of round seeds")
    add_database_argument(parser)
    add_sandbox_argument(parser)


@dataclass
class Property:
    """What the campaign knows of one property (op, check, dtype)."""

    op: str
    check: str
    dtype: str
    rounds: int = 0
    examples: int = 0
    seconds: float = 0.0
    behaviours: set = field(default_factory=set)
    stale: int = 0
    """Rounds in a row without a new behaviour."""
    status: str = PASS
    failure: Result | None = None
    found_after: float | None = None
    """Seconds from the start of the campaign to the end of the round that found the failure."""
    in_flight: int = 0
    """Rounds of it running now."""

    @property
    def name(self) -> str:
        return f"{self.op} {self.check} {self.dtype}"

    def priority(self) -> tuple:
        """Smaller runs sooner: the fewest rounds running, then in a row without new behaviour, then in all."""
        return (self.in_flight, self.stale, self.rounds)

    def absorb(self, result: Result, behaviours: list[str], now: float) -> None:
        """Take in one round's result."""
        self.rounds += 1
        self.examples += result.examples
        self.seconds += result.seconds
        new = set(behaviours) - self.behaviours
        self.behaviours |= new
        self.stale = 0 if new else self.stale + 1
        if result.status == FAIL:
            if self.status != FAIL:  # the first failure found (a round running alongside may find another)
                self.status, self.failure, self.found_after = FAIL, result, now
        elif result.status == NOT_IMPLEMENTED and self.status == PASS and self.examples == result.examples:
            self.status = NOT_IMPLEMENTED  # first round: nothing checked; stays so unless a later round checks some
        elif result.status in (IMPRECISE, "partial") and self.status in (PASS, NOT_IMPLEMENTED):
            self.status = result.status
        elif result.status == PASS and self.status == NOT_IMPLEMENTED:
            self.status = PASS

    @property
    def retired(self) -> bool:
        return self.status in (FAIL, NOT_IMPLEMENTED, SKIPPED)


def default_round_seconds(budget: float, slots: int, n_properties: int) -> float:
    """Every property a round within the budget where it can be: ``budget * slots / properties``, from 1 to 30 s."""
    return min(DEFAULT_ROUND_SECONDS, max(1.0, budget * slots / max(1, n_properties)))


def pick(properties: list[Property], max_rounds: int | None = None) -> Property | None:
    """The next property to run a round of (module docstring), or None if every one is retired or has had (or is
    running) ``max_rounds``. A property runs on two workers at once only when every other one is running."""
    ready = [p for p in properties
             if not p.retired and (max_rounds is None or p.rounds + p.in_flight < max_rounds)]
    return min(ready, key=Property.priority) if ready else None


def _fail_usage(message: str) -> int:
    print(f"bpcheck fuzz: {message}", file=sys.stderr)
    return 2


def _parse_checks(text: str | None) -> list[str] | None:
    from oracle.suite import ALL_CHECKS  # noqa: PLC0415

    if not text:
        return None
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in ALL_CHECKS]
    if unknown or not wanted:
        raise ValueError(f"--checks: unknown {', '.join(map(repr, unknown)) or 'empty list'} (the checks: {', '.join(ALL_CHECKS)})")
    return wanted


def warm_up(client, target: str, config: dict) -> list[str]:
    """Ready every worker of the cluster (the implementation loaded in its isolated child) before the clock starts;
    the contract's functions the module defines. Raises the worker's ``SetupFailed`` if it cannot be loaded."""
    from oracle.fuzz_round import warm  # noqa: PLC0415

    addresses = list(client.scheduler_info(n_workers=-1)["workers"]) if _takes_n_workers(client) else list(
        client.scheduler_info()["workers"])
    futures = [client.submit(warm, target, config, workers=[a], allow_other_workers=False, pure=False)
               for a in addresses]
    return client.gather(futures)[0]


def _takes_n_workers(client) -> bool:
    import inspect  # noqa: PLC0415

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def properties_of(provided: list[str], ops: list[str], checks: list[str] | None, dtypes: list[str]) -> list[Property]:
    """Every (op, check, dtype) to fuzz: the ops the module provides (forward or backward), the checks that apply."""
    from oracle.suite import checks_for  # noqa: PLC0415

    out = []
    for op in ops:
        spec = SPECS[op]
        if spec.name not in provided and spec.backward_name not in provided:
            continue
        for check in checks_for(op):
            if checks is None or check in checks:
                out.extend(Property(op, check, dtype) for dtype in dtypes)
    return out


def _client(scheduler: str | None, workers: int):
    """A Dask client: of the running cluster at ``scheduler``, or of a new LocalCluster of ``workers`` processes."""
    import dask  # noqa: PLC0415
    from distributed import Client, LocalCluster  # noqa: PLC0415

    if scheduler:
        return Client(scheduler, timeout="20s"), None
    # the workers start the processes that isolate the implementation: a daemonic process may not
    dask.config.set({"distributed.worker.daemon": False})
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=40)
    return Client(cluster), cluster


def campaign(target: str, properties: list[Property], config: dict, *, client, slots: int, budget: float,
             round_seconds: float, rng: random.Random, max_rounds: int | None = None, log=None) -> float:
    """Run rounds on ``client`` until ``budget`` seconds are spent; returns the seconds the campaign took."""
    from distributed import as_completed  # noqa: PLC0415

    from oracle.fuzz_round import fuzz_round  # noqa: PLC0415

    started = time.monotonic()
    futures = as_completed()
    running = {}

    def submit() -> bool:
        left = budget - (time.monotonic() - started)
        prop = pick(properties, max_rounds)
        if prop is None or left < min(1.0, budget):  # no round of a mere instant at the end
            return False
        prop.in_flight += 1
        unit = (prop.op, prop.check, prop.dtype, rng.randrange(2**32), max(0.1, min(round_seconds, left)))
        future = client.submit(fuzz_round, target, config, unit, pure=False)
        running[future.key] = prop
        futures.add(future)
        return True

    for _ in range(slots):
        if not submit():
            break
    for future in futures:
        prop = running.pop(future.key)
        prop.in_flight -= 1
        now = time.monotonic() - started
        try:
            out = future.result()
        except Exception as exc:  # noqa: BLE001 - a round that could not run at all: say so, end that property
            prop.status = FAIL
            prop.found_after = now
            prop.failure = Result(prop.op, prop.check, prop.dtype, FAIL,
                                  message=f"the round could not run: {type(exc).__name__}: {exc}")
        else:
            result = Result.from_dict(out["result"])
            prop.absorb(result, out["behaviours"], now)
            if log is not None:
                log(f"[{now:6.1f} s] {prop.name}: round {prop.rounds}, {result.examples} cases, {result.status}"
                    + (f", {len(prop.behaviours)} behaviours" if prop.stale == 0 else ""))
        submit()
    return time.monotonic() - started


def summary(target: str, properties: list[Property], seconds: float, header: str) -> str:
    """The plain-text summary: a line per property, then each failure with its smallest case."""
    lines = [header, ""]
    width = max([len(p.name) for p in properties] + [8])
    lines.append(f"{'property':<{width}}  {'rounds':>6}  {'examples':>8}  {'behaviours':>10}  status")
    for p in properties:
        found = f" (found after {p.found_after:.1f} s)" if p.status == FAIL and p.found_after is not None else ""
        status = p.status if p.rounds else NOT_RUN
        lines.append(f"{p.name:<{width}}  {p.rounds:>6}  {p.examples:>8}  {len(p.behaviours):>10}  {status}{found}")
    failures = [p for p in properties if p.status == FAIL]
    total = sum(p.examples for p in properties)
    for p in failures:
        lines += ["", f"FAIL: {p.name} " + "-" * max(0, 60 - len(p.name))]
        lines.append(p.failure.rendered or p.failure.message)
    rate = total / seconds if seconds > 0 else 0.0
    unrun = sum(not p.rounds for p in properties)
    lines += ["", f"{len(properties)} properties, {total} examples in {seconds:.1f} s ({rate:.1f} examples/s): "
              + (f"{len(failures)} FAILED" if failures else "no failure")
              + (f"; {unrun} {NOT_RUN} (a longer --time-budget runs them)" if unrun else "")]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("bpcheck fuzz: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    from oracle.isolation import SetupFailed  # noqa: PLC0415
    from oracle.verify import available_cores, parse_ops, resolve_database, resolve_sandbox  # noqa: PLC0415

    try:
        ops = parse_ops(args.ops)
        checks = _parse_checks(args.checks)
        database = resolve_database(args.database)
    except ValueError as exc:
        return _fail_usage(str(exc))
    dtypes = list(DTYPES) if args.dtype == "both" else [args.dtype]
    config = {
        "profile": "dev", "max_examples": args.round_examples, "derandomize": False, "seed": None,
        "timeout": args.timeout, "shrink_time": args.shrink_time, "budget": 0.0, "jobs": 1,
        "sandbox": resolve_sandbox(args.sandbox, "fuzz"), "database": database,
        "require_full": False, "strict": False, "draw_seconds_max": args.round_seconds or DEFAULT_ROUND_SECONDS,
    }
    workers = args.workers or available_cores()
    warming = time.monotonic()
    try:
        client, cluster = _client(args.scheduler, workers)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ...: the cluster is not there
        return _fail_usage(f"cannot start or reach the Dask cluster: {type(exc).__name__}: {exc}")
    try:
        try:
            provided = warm_up(client, args.module, config)
        except SetupFailed as exc:
            return _fail_usage(str(exc).splitlines()[0] if str(exc) else "the module could not be loaded")
        properties = properties_of(provided, ops, checks, dtypes)
        if not properties:
            return _fail_usage(f"{args.module} provides none of the ops asked for")
        print(f"bpcheck fuzz: cluster up and implementation loaded on every worker in "
              f"{time.monotonic() - warming:.1f} s (not counted in the budget)", file=sys.stderr, flush=True)
        slots = args.workers or sum(client.nthreads().values()) or workers
        round_seconds = args.round_seconds if args.round_seconds is not None else default_round_seconds(
            args.time_budget, slots, len(properties))
        where = f"scheduler {args.scheduler}" if args.scheduler else f"local cluster of {workers} workers"
        header = (f"bpcheck fuzz {args.module}: {len(properties)} properties, {where}, {slots} rounds at a time "
                  f"of up to {args.round_examples} cases / {round_seconds:.3g} s, budget {args.time_budget:g} s, "
                  f"database {database or 'none (failures are printed, not saved)'}")
        print(header, file=sys.stderr, flush=True)
        rng = random.Random(args.seed)
        seconds = campaign(args.module, properties, config, client=client, slots=slots, budget=args.time_budget,
                           round_seconds=round_seconds, rng=rng, max_rounds=args.max_rounds,
                           log=lambda line: print(f"bpcheck fuzz: {line}", file=sys.stderr, flush=True))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    print(summary(args.module, properties, seconds, header))
    return 1 if any(p.status == FAIL for p in properties) else 0
