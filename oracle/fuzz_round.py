"""One round of `bpcheck fuzz`: a property run for a while, in a Dask worker, the implementation isolated.

``fuzz_round`` is the Dask task. It runs where Dask puts it (a local or a remote ``dask worker``) and
hands the round to a ``WorkerPool`` child (``oracle.isolation``), kept for the next rounds of that
worker, which runs ``verify.run_unit`` on the property with the round's seed, number of examples and
time, the campaign's example database replayed first and fed with what it finds. The implementation
itself runs in that child's untrusted worker, as for `bpcheck verify`: a crash or a hang kills at most
the child, and comes back as a failure of the property with the case it died on. Only plain data
crosses (the unit, the config, the result dict).

The round also reports the property's behaviours: for each case checked, its configuration features
(``OpSpec.features_of``: groups, dilation, ceil_mode, ...) and its value recipes (zeros, ties, ...) as
one string. The campaign schedules the properties still showing new ones (``oracle.fuzz``).
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any, Callable

_POOLS: dict[tuple, Any] = {}
_LOCK = threading.RLock()


def behaviour(case) -> str:
    """One case's behaviour: its configuration features and value recipes, e.g. ``dilation+ceil_mode|x=ties``."""
    from oracle.ops import SPECS  # noqa: PLC0415

    features = "+".join(SPECS[case.op].features_of(case)) or "-"
    values = ",".join(f"{k}={v}" for k, v in sorted((case.values or {}).items())) or "-"
    return f"{features}|{values}"


def fuzz_unit(impl, unit: tuple, config: dict, announce: Callable[[str], None]) -> dict:
    """WorkerPool work: ``unit = (op, check, dtype, seed, seconds)``; ``{"result": Result dict, "behaviours": [...]}``."""
    from oracle.verify import _case_from_repr, run_unit  # noqa: PLC0415

    op, check, dtype, seed, seconds = unit
    seen: set[str] = set()

    def watch(text: str) -> None:
        announce(text)
        case = _case_from_repr(text)
        if case is not None:
            seen.add(behaviour(case))

    round_config = {**config, "seed": seed, "derandomize": False, "draw_seconds": seconds, "explicit_examples": False}
    result = run_unit(impl, (op, check, dtype), round_config, watch)
    return {"result": result, "behaviours": sorted(seen)}


def _pool(target: str, config: dict):
    from oracle.isolation import WorkerPool  # noqa: PLC0415
    from oracle.verify import load_in_child  # noqa: PLC0415

    key = (target, tuple(sorted(config.items())))
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            if multiprocessing.current_process().daemon:
                raise RuntimeError(
                    "this Dask worker is a daemonic process, which may not start the process that isolates the "
                    "implementation: start it with DASK_DISTRIBUTED__WORKER__DAEMON=False dask worker ... "
                    "(or dask worker --no-nanny)")
            budget = config["draw_seconds_max"] + config["shrink_time"] + 60.0
            stall = max(60.0, 10 * config["timeout"]) if config["timeout"] > 0 else budget
            pool = WorkerPool(load_in_child, fuzz_unit, target, config, jobs=1, budget=budget, stall=min(stall, budget))
            pool.provided = pool.start()
            _POOLS[key] = pool
        return pool


def warm(target: str, config: dict) -> list[str]:
    """The Dask task that readies a worker before the clock starts: loads the implementation in its isolated
    child and checks one case there (a fresh process's first check pays for torch's warm-up; its result is
    dropped); the contract's functions the module defines (``SetupFailed`` with the reason if it cannot be loaded)."""
    from oracle.ops import SPECS  # noqa: PLC0415

    with _LOCK:
        pool = _pool(target, config)
        op = next((op for op, spec in SPECS.items() if spec.name in pool.provided), None)
        if op is not None:
            pool.run([(op, "forward", "float64", 0, 0.0)], on_result=lambda *_: None, on_death=lambda *_: None)
        return pool.provided


def fuzz_round(target: str, config: dict, unit: tuple) -> dict:
    """The Dask task: one round of ``unit = (op, check, dtype, seed, seconds)``; a plain dict (``fuzz_unit``'s, plus
    ``"seconds"``), where a death of the child is a FAIL result with the case it died on."""
    from oracle.verify import death_result  # noqa: PLC0415

    op, check, dtype = unit[:3]
    started = time.perf_counter()
    out: dict = {}
    announced = [0]

    def on_result(_unit, data: dict) -> None:
        if "error" in data:  # run_unit itself raised: a failure of the harness, reported as such
            from oracle.report import Result  # noqa: PLC0415
            from oracle.verdict import FAIL  # noqa: PLC0415

            out["result"] = Result(op, check, dtype, FAIL, message=f"the check could not run: {data['error']}",
                                   rendered=data.get("traceback", "")).as_dict()
            out["behaviours"] = []
        else:
            out.update(data)

    def on_death(_unit, death) -> None:
        out["result"] = death_result((op, check, dtype), death, announced[0], time.perf_counter() - started).as_dict()
        out["behaviours"] = []

    def on_announce(_unit, _text) -> None:
        announced[0] += 1

    with _LOCK:  # one round at a time per pool (a Dask worker may run several threads)
        pool = _pool(target, config)
        pool.run([tuple(unit)], on_result=on_result, on_death=on_death, on_announce=on_announce)
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out
