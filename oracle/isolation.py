"""Run untrusted work in child processes that are allowed to die.

An implementation under test may take the whole interpreter down on one
configuration (a segfault or abort in native code), or hang where the per-call
``SIGALRM`` limit cannot reach it (native code that never returns to Python).
``WorkerPool`` runs units of work in long-lived child processes (started with
the ``forkserver`` method, which imports numpy/torch/hypothesis once and forks
each child from there, so a child costs milliseconds, not an import of torch):

* each child first runs ``setup(setup_arg, config)`` (load the module) and
  reports its result, or the one-line reason it failed;
* it then takes units one at a time and returns one plain-dict result per
  unit; before each call into the implementation it announces what it is
  about to run (``announce(text)``, a message on the pipe to the parent);
* if the child dies, the unit it was working on gets a ``Death`` (which
  signal, or which exit code, the last announcement, the tail of the child's
  output including faulthandler's traceback); a fresh child takes the
  remaining units;
* a child that exceeds the per-unit time ``budget``, or stays silent for
  ``stall`` seconds in one announcement, is killed and reported the same way.

The child's stdout and stderr go to a log file (the parent's terminal shows
only the report), with ``faulthandler`` enabled on it.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import tempfile
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

#: modules the fork server imports once, so that each child starts warm
PRELOAD = ["numpy", "torch", "hypothesis", "oracle.checks", "oracle.identities", "oracle.strategies", "oracle.suite"]


class SetupFailed(Exception):
    """The first child could not set up (the module does not load), or died trying."""


@dataclass
class Death:
    """How a child died (or was killed) while working on a unit."""

    description: str
    """e.g. ``crashed (signal SIGSEGV)``, ``exited with code 3``, ``killed after 600 s``"""
    last_announcement: str | None
    """What the child said it was about to run when it died (None: it died before announcing anything)."""
    log_tail: list[str] = field(default_factory=list)
    """The last lines the child wrote to stdout/stderr (faulthandler's traceback on a crash)."""
    signal: str | None = None

    def frames(self) -> list[str]:
        """faulthandler's frames of the crash (``File "x.py", line 7 in relu``), innermost first; [] if none."""
        lines = self.log_tail
        start = max((i for i, line in enumerate(lines) if "most recent call first" in line), default=None)
        if start is None:
            return []
        frames = []
        for line in lines[start + 1:]:
            if not line.strip().startswith("File "):
                break
            frames.append(line.strip())
        return frames

    def fatal_error(self) -> str | None:
        """faulthandler's ``Fatal Python error: ...`` line, if any."""
        return next((line.strip() for line in reversed(self.log_tail) if line.startswith("Fatal Python error")), None)

    def last_output(self) -> str | None:
        return next((line.strip() for line in reversed(self.log_tail) if line.strip()), None)


def describe_exit(exitcode: int | None) -> tuple[str, str | None]:
    """('crashed (signal SIGSEGV)', 'SIGSEGV') for a negative exit code, ('exited with code N', None) otherwise."""
    if exitcode is None:
        return "did not exit", None
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"crashed (signal {name})", name
    return f"exited with code {exitcode}", None


def start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


# --------------------------------------------------------------------------- the child


def _child_main(conn: Connection, setup: Callable, work: Callable, setup_arg: Any, config: dict, log_path: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends its children
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 - lives as long as the child
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    faulthandler.enable(file=log, all_threads=False)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=log, all_threads=False)

    def announce(text: str) -> None:
        conn.send(("announce", text))

    try:
        state, info = setup(setup_arg, config)
    except BaseException as exc:  # noqa: BLE001 - any failure to set up is reported as one line
        message = str(exc) if exc.__class__.__name__ == "LoadError" else f"{type(exc).__name__}: {exc}"
        conn.send(("setup_error", message))
        return
    conn.send(("ready", info))
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] != "unit":
                return
            unit = message[1]
            try:
                result = work(state, unit, config, announce)
            except BaseException as exc:  # noqa: BLE001 - work() should not raise; if it does, say so and go on
                result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            conn.send(("result", result))
    finally:
        close = getattr(state, "close", None)
        if callable(close):  # a child ends with os._exit: end what the state started (its worker) here
            close()


# --------------------------------------------------------------------------- the parent


@dataclass
class _Worker:
    process: Any
    conn: Connection
    log_path: Path
    ready: bool = False
    info: Any = None
    unit: Any = None
    unit_started: float = 0.0
    last_message: float = 0.0
    last_announcement: str | None = None
    dead: bool = False
    setup_error: str | None = None


class WorkerPool:
    """Children that run ``work(state, unit, config, announce) -> dict`` after ``setup(setup_arg, config) -> (state, info)``.

    ``setup`` and ``work`` must be importable module-level functions (they are
    pickled by reference). ``config`` is a plain, picklable dict.
    """

    def __init__(
        self,
        setup: Callable,
        work: Callable,
        setup_arg: Any,
        config: dict,
        *,
        jobs: int = 1,
        budget: float = 600.0,
        stall: float = 120.0,
        preload: list[str] | None = None,
        weight: Callable[[Any], float] | None = None,
    ):
        self.setup, self.work, self.setup_arg, self.config = setup, work, setup_arg, config
        self.jobs = max(1, jobs)
        self.budget = budget
        self.weight = weight or (lambda unit: 1)
        """How many budgets a unit may take (a screen of several checks: one each)."""
        self.stall = stall
        self.context = multiprocessing.get_context(start_method())
        if start_method() == "forkserver":
            self.context.set_forkserver_preload(PRELOAD if preload is None else preload)
        self._logs = tempfile.TemporaryDirectory(prefix="bpcheck-verify-")
        self._workers: list[_Worker] = []
        self._started = 0

    # -- lifecycle

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop every child (politely, then by force) and remove the logs."""
        for w in self._workers:
            if w.process.is_alive():
                try:
                    w.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(1.0)
            w.conn.close()
        self._workers.clear()
        self._logs.cleanup()

    def _spawn(self) -> _Worker:
        self._started += 1
        log_path = Path(self._logs.name) / f"worker-{self._started}.log"
        parent_end, child_end = self.context.Pipe(duplex=True)
        process = self.context.Process(
            target=_child_main,
            args=(child_end, self.setup, self.work, self.setup_arg, self.config, str(log_path)),
            name=f"bpcheck-worker-{self._started}",
            daemon=True,
        )
        process.start()
        child_end.close()
        worker = _Worker(process, parent_end, log_path, last_message=time.monotonic())
        self._workers.append(worker)
        return worker

    def _log_tail(self, worker: _Worker, lines: int = 40) -> list[str]:
        try:
            text = worker.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def _receive(self, worker: _Worker) -> list[tuple]:
        """Every message the worker has sent so far; marks it dead on end of file."""
        messages = []
        try:
            while worker.conn.poll():
                messages.append(worker.conn.recv())
                worker.last_message = time.monotonic()
        except (EOFError, OSError, ValueError):
            worker.dead = True
        except Exception:  # noqa: BLE001 - a message cut off by the child's death
            worker.dead = True
        return messages

    def _death(self, worker: _Worker, description: str | None = None) -> Death:
        worker.process.join(1.0)
        text, sig = describe_exit(worker.process.exitcode)
        return Death(description or text, worker.last_announcement, self._log_tail(worker), sig)

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            try:  # faulthandler writes where the child is stuck to its log first
                os.kill(worker.process.pid, signal.SIGUSR1)
                worker.process.join(0.3)
            except (OSError, AttributeError):
                pass
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(2.0)
        worker.dead = True

    def _retire(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        worker.conn.close()

    # -- running

    def start(self, timeout: float = 300.0) -> Any:
        """Start the children and wait for the first one's setup: its ``info``, or SetupFailed with the reason.

        All ``jobs`` children are started at once, so that the others load the module (start their workers)
        while the first does; ``run`` takes each as it reports ready.
        """
        worker = self._spawn()
        while len(self._workers) < self.jobs:
            self._spawn()
        deadline = time.monotonic() + timeout
        while True:
            wait([worker.conn, worker.process.sentinel], timeout=0.5)
            for message in self._receive(worker):
                if message[0] == "ready":
                    worker.ready, worker.info = True, message[1]
                    return message[1]
                if message[0] == "setup_error":
                    raise SetupFailed(message[1])
            if worker.dead or not worker.process.is_alive():
                for message in self._receive(worker):
                    if message[0] == "setup_error":
                        raise SetupFailed(message[1])
                death = self._death(worker)
                frames = death.frames()
                where = f" at {frames[0]}" if frames else (f": {death.last_output()}" if death.last_output() else "")
                raise SetupFailed(f"loading the module {death.description}{where}")
            if time.monotonic() > deadline:
                self._kill(worker)
                raise SetupFailed(f"loading the module did not finish within {timeout:g} s")

    def run(
        self,
        units: list,
        on_result: Callable[[Any, dict], None],
        on_death: Callable[[Any, Death], None],
        on_announce: Callable[[Any, str], None] | None = None,
    ) -> None:
        """Run every unit; each ends in exactly one ``on_result(unit, dict)`` or ``on_death(unit, Death)``."""
        pending = deque(units)

        def assign(worker: _Worker) -> None:
            if pending:
                worker.unit = pending.popleft()
                worker.unit_started = worker.last_message = time.monotonic()
                worker.last_announcement = None
                worker.conn.send(("unit", worker.unit))

        def busy() -> bool:
            return any(w.unit is not None for w in self._workers)

        for w in self._workers:
            if w.ready and w.unit is None:
                assign(w)
        while pending or busy():
            # keep `jobs` children alive while there is work for them
            while pending and len(self._workers) < self.jobs:
                self._spawn()
            handles = [w.conn for w in self._workers] + [w.process.sentinel for w in self._workers]
            wait(handles, timeout=0.5)
            now = time.monotonic()
            for w in list(self._workers):
                for message in self._receive(w):
                    kind = message[0]
                    if kind == "ready":
                        w.ready, w.info = True, message[1]
                        assign(w)
                    elif kind == "setup_error":
                        w.dead, w.setup_error = True, message[1]
                    elif kind == "announce":
                        w.last_announcement = message[1]
                        if on_announce is not None and w.unit is not None:
                            on_announce(w.unit, message[1])
                    elif kind == "result":
                        unit, w.unit = w.unit, None
                        on_result(unit, message[1])
                        assign(w)
                alive = w.process.is_alive() and not w.dead
                if not alive:
                    if w.unit is None and not w.ready and pending:
                        # died while setting up although the first child did not: charge it to the next unit,
                        # so that a child that can never start cannot keep the loop going
                        w.unit = pending.popleft()
                    if w.unit is not None:
                        death = self._death(w)
                        if w.setup_error is not None:
                            death.description = f"could not load the module again: {w.setup_error}"
                        on_death(w.unit, death)
                        w.unit = None
                    self._kill(w)
                    self._retire(w)
                    continue
                if w.unit is not None:
                    allowed = self.budget * self.weight(w.unit)
                    if now - w.unit_started > allowed:
                        self._kill(w)
                        on_death(w.unit, self._death(w, f"killed after {allowed:g} s (--budget, the time allowed for one op/check/dtype)"))
                        w.unit = None
                        self._retire(w)
                    elif now - w.last_message > self.stall:
                        self._kill(w)
                        on_death(w.unit, self._death(
                            w, f"killed: stuck for {self.stall:g} s on one case, beyond the per-call time limit "
                            "(native code that never returns to Python?)"))
                        w.unit = None
                        self._retire(w)
