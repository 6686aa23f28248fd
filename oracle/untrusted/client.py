"""The judge's side of the boundary: start a worker, call the implementation through it, end it.

``RemoteImplementation(target)`` starts ``python -m oracle.untrusted.worker``
in its own process (see ``containment``), which imports ``target``; the judge
never does. ``impl.function(name)`` is a ``RemoteFunction`` whose calls send
arrays and plain data over a socket and get arrays and plain data back
(``oracle.untrusted.protocol``). Everything the worker can do wrong becomes an
``ImplementationFailure`` of that one call, and a fresh worker takes the next:

* it exits (any code, ``os._exit``), is killed by a signal, or its supervisor
  is killed: ``crashed``, with faulthandler's frames from its log;
* it does not answer within the call's time limit (a hang, a ``SIGSTOP``, a
  blocked ``SIGALRM``, a stray thread holding the GIL): killed from here,
  ``hang``;
* it raises anything (``SystemExit``, ``KeyboardInterrupt``, pytest's
  ``Skipped``...): ``raised``; ``NotImplementedError``: declined;
* it sends a malformed or oversized message: ``protocol``;
* it modified an argument in place: ``mutated input``.

Ending a worker ends everything it started: in a PID namespace (``unshare``,
or bubblewrap's ``--sandbox``) the kernel kills the whole namespace with its
init; without one, the init is a child subreaper that kills the worker's
descendants, and the judge kills the process group.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oracle.untrusted import protocol

#: seconds one call may take before it counts as hung (``--timeout``, $BPCHECK_CALL_TIMEOUT)
CALL_TIMEOUT = float(os.environ.get("BPCHECK_CALL_TIMEOUT", "20"))

#: the dtypes an array may stand for on the wire without being it (``carrying``)
CARRIABLE = ("bfloat16",)
#: the dtype the float32 arrays of the requests made in this context stand for (``carrying``), or None
CARRIED: contextvars.ContextVar[str | None] = contextvars.ContextVar("bpcheck_carried", default=None)


@contextlib.contextmanager
def carrying(dtype: str | None):
    """Within the block, the float32 arrays of every request sent stand for ``dtype`` (``"bfloat16"``, which NumPy
    lacks; ``oracle.dtypes``): the request says so (``"carried"``) and the worker's torch and JAX adapters make
    them bfloat16 there (``oracle.untrusted.native``). Any other dtype (or None): nothing is carried."""
    token = CARRIED.set(dtype if dtype in CARRIABLE else None)
    try:
        yield
    finally:
        CARRIED.reset(token)
#: seconds a worker may take to import the implementation ($BPCHECK_LOAD_TIMEOUT)
LOAD_TIMEOUT = float(os.environ.get("BPCHECK_LOAD_TIMEOUT", "120"))
#: the most bytes of arrays one answer may carry ($BPCHECK_MAX_RESULT_BYTES)
MAX_RESULT_BYTES = int(os.environ.get("BPCHECK_MAX_RESULT_BYTES", str(protocol.DEFAULT_MAX_PAYLOAD)))
#: lines of the worker's output shown with a crash
LOG_TAIL_LINES = 40

#: threads a worker's numeric libraries start with ($BPCHECK_WORKER_THREADS; see ``worker_environment``)
WORKER_THREADS = os.environ.get("BPCHECK_WORKER_THREADS", "1")
#: the environment variables that set them: OpenMP (torch's intra-op pool), OpenBLAS and MKL (NumPy's BLAS)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_environment() -> dict[str, str]:
    """The environment a worker starts with: the judge's, with each of ``THREAD_VARIABLES`` that the user has not
    set set to ``WORKER_THREADS`` (1 by default).

    bpcheck runs one judge and one worker per job, a job per core, and the calls it makes are small: a worker
    whose torch starts a thread per core spins them up and down around every op, against the other jobs for the
    same cores. Measured on 2 cores, ``--jobs 2``, ``torch:examples/native/functional.py`` conv2d: each worker
    burned a whole core, half of it in its OpenMP thread, while the judges waited. The judge's own torch runs on
    one thread for the same reason (``oracle.torch_oracle``). A variable the user set is kept; the implementation
    may still set its own threads.
    """
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, WORKER_THREADS)
    return env


#: resource limits of a --sandbox worker (the worker sets them before importing the implementation)
SANDBOX_LIMITS = {"memory": 8 << 30, "cpu_seconds": 3600, "processes": 256, "open_files": 256, "file_bytes": 1 << 30}


class ImplementationFailure(Exception):
    """The implementation under test misbehaved in a call: raised, hung, crashed, mutated or returned garbage."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class NotImplementedForConfig(Exception):
    """The implementation raised NotImplementedError: this configuration is outside what it supports."""


class LoadError(Exception):
    """The module cannot be imported, or implements none of the contract."""


# --------------------------------------------------------------------------- containment


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_probed: dict[str, bool] = {}


def _namespace_prefix() -> list[str] | None:
    """``unshare`` into a new PID namespace (and a user namespace when not root), if this machine allows it."""
    if os.environ.get("BPCHECK_CONTAINMENT") == "process-group":  # the fallback, forced (its tests use it)
        return None
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return None
    prefix = ["unshare", "--pid", "--fork", "--kill-child"]
    if os.geteuid() != 0:
        prefix += ["--user", "--map-root-user"]
    if "namespace" not in _probed:
        _probed["namespace"] = _works([*prefix, "--", "true"])
    if not _probed["namespace"]:
        return None
    if shutil.which("setpriv"):  # unshare dies with the judge, and the namespace with it
        prefix = ["setpriv", "--pdeathsig", "KILL", "--", *prefix]
    return [*prefix, "--"]


def sandbox_unavailable() -> str | None:
    """Why ``--sandbox`` cannot run here (None: it can)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)"
    if "bwrap" not in _probed:
        _probed["bwrap"] = _works(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "--", "true"])
    if not _probed["bwrap"]:
        return "bubblewrap is installed but cannot create its namespaces on this machine"
    return None


def _sandbox_prefix(scratch: str) -> list[str]:
    return [
        "bwrap", "--die-with-parent", "--unshare-all", "--new-session",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/dev/shm",
        "--bind", scratch, scratch, "--chdir", os.getcwd(),
        "--setenv", "TMPDIR", scratch, "--setenv", "HOME", scratch, "--",
    ]


def containment(sandbox: bool) -> str:
    """How workers are contained here: 'sandbox' (bubblewrap), 'pid namespace', or 'process group' (weakest)."""
    if sandbox:
        return "sandbox"
    return "pid namespace" if _namespace_prefix() is not None else "process group"


# --------------------------------------------------------------------------- one worker process


@dataclass
class _Exit:
    description: str
    signal: str | None = None


def _describe(report: dict | None) -> _Exit:
    if report is None:
        return _Exit("was killed, or killed its supervisor")
    if "signal" in report:
        try:
            name = signal.Signals(int(report["signal"])).name
        except (ValueError, TypeError):
            name = f"signal {report['signal']}"
        return _Exit(f"crashed (signal {name})", name)
    if "exit" in report:
        return _Exit(f"exited with code {report['exit']}")
    return _Exit("ended in a way its supervisor could not tell")


class _Worker:
    """One worker process: its channel, its status pipe, its log."""

    def __init__(self, target: str, names: list[str], sandbox: bool, limits: dict):
        self.channel, theirs = socket.socketpair()
        self.receiver = protocol.Receiver(self.channel)
        self.replies: collections.deque[tuple[dict, list[np.ndarray]]] = collections.deque()  # read, not yet asked for
        status_r, status_w = os.pipe()
        self.status = status_r
        self.log = tempfile.TemporaryFile(prefix="bpcheck-worker-", suffix=".log")
        self.scratch = tempfile.mkdtemp(prefix="bpcheck-scratch-") if sandbox else None
        fds = (theirs.fileno(), status_w, self.log.fileno())
        command = [sys.executable, "-m", "oracle.untrusted.worker", "--channel", str(fds[0]), "--status", str(fds[1]),
                   "--log", str(fds[2]), "--names", ",".join(names), "--limits", json.dumps(limits), target]
        if sandbox:
            command = [*_sandbox_prefix(self.scratch), *command]
            namespaced = True
        else:
            prefix = _namespace_prefix()
            command = [*(prefix or []), *command]
            namespaced = prefix is not None
        self.process = subprocess.Popen(command, pass_fds=fds, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=self.log, start_new_session=True, env=worker_environment())
        theirs.close()
        os.close(status_w)
        self.started = time.monotonic()
        self.ready = False
        self.provided: list[str] = []
        self.exit: _Exit | None = None
        self._finalizer = weakref.finalize(self, _kill, self.process, self.channel, self.status, self.scratch, namespaced)

    def wait_ready(self, timeout: float) -> None:
        """Wait for the worker's ``ready`` (its provided functions); LoadError with the reason otherwise."""
        if self.ready:
            return
        try:
            header, _ = self.receive(time.monotonic() + timeout)
        except TimeoutError:
            self.kill()
            raise LoadError(f"loading the module did not finish within {timeout:g} s") from None
        except (EOFError, protocol.ProtocolError) as exc:
            ended = self.ended()
            where = self.crash_lines()
            detail = ended.description if ended else f"broke the protocol ({exc})"
            raise LoadError(f"loading the module {detail}" + (f": {where[0]}" if where else "")) from None
        if header.get("type") == "load_error":
            raise LoadError(str(header.get("message", "")).strip() or "the module could not be imported")
        if header.get("type") != "ready" or not isinstance(header.get("provided"), list):
            raise LoadError("the worker did not say it was ready")
        self.provided = [str(n) for n in header["provided"]]
        self.ready = True

    def receive(self, deadline: float) -> tuple[dict, list[np.ndarray]]:
        """The next reply (with its arrays), or EOFError once the worker has ended, TimeoutError at ``deadline``."""
        while True:
            if self.replies:
                return self.replies.popleft()
            if self.receiver.buffered():
                return self._unpack(*self.receiver.receive(MAX_RESULT_BYTES, deadline))
            left = deadline - time.monotonic()  # past the deadline, what has already arrived still counts
            readable, _, _ = select.select([self.channel, self.status], [], [], max(left, 0.0))
            if self.channel in readable:
                return self._unpack(*self.receiver.receive(MAX_RESULT_BYTES, deadline))
            if self.status in readable:
                raise EOFError("the worker ended")
            if left <= 0:
                raise TimeoutError

    def _unpack(self, header: dict, arrays: list[np.ndarray]) -> tuple[dict, list[np.ndarray]]:
        """The first reply of a frame of replies (the rest queued), each with its own arrays (those from its
        ``"a"`` on); any other frame as it is."""
        if header.get("type") != "replies":
            return header, arrays
        replies = header.get("replies")
        if not isinstance(replies, list) or not replies:
            raise protocol.ProtocolError("a frame of replies without replies")
        for reply in replies:
            if not isinstance(reply, dict) or type(reply.get("a")) is not int or not 0 <= reply["a"] <= len(arrays):
                raise protocol.ProtocolError("a malformed reply")
            self.replies.append((reply, arrays[reply["a"]:]))
        return self.replies.popleft()

    def ended(self) -> _Exit | None:
        """How the worker ended (waiting briefly for its supervisor's report), or None if it is still running."""
        if self.exit is not None:
            return self.exit
        readable, _, _ = select.select([self.status], [], [], 2.0)
        if not readable:
            return None
        data = b""
        while True:
            try:
                chunk = os.read(self.status, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        try:
            report = json.loads(data.decode()) if data else None
        except ValueError:
            report = None
        self.exit = _describe(report if isinstance(report, dict) else None)
        self.kill()
        return self.exit

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        try:
            self.log.flush()
            size = os.fstat(self.log.fileno()).st_size
            with open(self.log.fileno(), "rb", closefd=False) as f:
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return []
        return text.splitlines()[-lines:]

    def crash_lines(self) -> list[str]:
        """faulthandler's fatal error and innermost frames from the log, else the last line the worker wrote."""
        tail = self.log_tail()
        out = [line.strip() for line in tail if line.startswith("Fatal Python error")][-1:]
        start = max((i for i, line in enumerate(tail) if "most recent call first" in line), default=None)
        if start is not None:
            frames = []
            for line in tail[start + 1:]:
                if not line.strip().startswith("File "):
                    break
                frames.append(line.strip())
            own = str(Path(__file__).resolve().parent)
            outside = []
            for frame in frames:  # the implementation's frames: those inside the worker's call of it
                if own in frame:
                    break
                outside.append(frame)
            frames = outside or frames
            if frames:
                out.append("where (innermost call first): " + " <- ".join(frames[:4]))
        if not out:
            last = next((line.strip() for line in reversed(tail) if line.strip()), None)
            if last:
                out.append(f"its last output: {last[:300]}")
        return out

    def kill(self) -> None:
        self._finalizer()


def _kill_namespace(process: subprocess.Popen) -> bool:
    """SIGKILL the children of ``process`` (the init of the namespace it made) and wait for ``process`` to end;
    False where /proc does not list children or it does not end in time."""
    try:
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as f:
            children = [int(pid) for pid in f.read().split()]
    except (OSError, ValueError):
        return False
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


def _kill(process: subprocess.Popen, channel: socket.socket, status: int, scratch: str | None, namespaced: bool) -> None:
    """End the worker and everything it started; close what the judge held of it (its log stays readable).

    In a PID namespace (``unshare``, bubblewrap) the namespace's init is killed, and ``unshare`` (or ``bwrap``),
    which waits for it, ends once the kernel has killed every process of the namespace: when ``process`` has
    ended, nothing of the worker's is left. Without one, the init is asked (SIGTERM): it kills the worker and
    sweeps what the worker left, which the process group may not hold.
    """
    if process.poll() is None and not (namespaced and _kill_namespace(process)):
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the session it was started in
    except OSError:
        pass
    if process.poll() is None:
        process.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    channel.close()
    try:
        os.close(status)
    except OSError:
        pass
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- the implementation, seen from the judge


class RemoteFunction:
    """A function of the implementation, called in its worker (see ``RemoteImplementation.call``)."""

    def __init__(self, owner: "RemoteImplementation", name: str):
        self.owner, self.name = owner, name

    def __call__(self, *args, **kwargs):
        return self.owner.call(self.name, list(args), kwargs)

    def __repr__(self) -> str:
        return f"<{self.name} of {self.owner.label}, in its worker>"


class Outcomes:
    """The outcomes of a list of calls, ``(value, None)`` or ``(None, the failure it raised)`` each, asked by index."""

    def __init__(self, count: int):
        self.count = count
        self.outcomes: list[tuple[Any, Exception | None]] = []

    def _fill(self, index: int) -> None:
        """Make ``self.outcomes[index]`` known (here: it already is)."""

    def result(self, index: int) -> Any:
        """The value of call ``index``, or the ImplementationFailure / NotImplementedForConfig it raised."""
        self._fill(index)
        value, failure = self.outcomes[index]
        if failure is not None:
            raise failure
        return value

    def results(self) -> list:
        return [self.result(i) for i in range(self.count)]


class Pending(Outcomes):
    """The results of one request of calls, read from the worker in order as they are asked for.

    Each call has its own time limit, counted from when the previous result arrived (or the request was
    sent): a judge that reads late never shortens it. The worker stops at the first call that raises;
    the calls after it, never run, raise the same failure if asked for. A crash, hang or malformed answer
    ends the worker (a fresh one takes the next request) and fails the call it happened in and the rest.
    """

    def __init__(self, owner: "RemoteImplementation", worker: _Worker, request_id: int, names: list[str], limit: float):
        super().__init__(len(names))
        self.owner, self.worker, self.id, self.names, self.limit = owner, worker, request_id, names, limit
        self.clock = time.monotonic()
        self.failure: Exception | None = None

    def fail(self, failure: Exception) -> None:
        """Every call not read yet fails with ``failure`` (the worker will not answer it)."""
        self.failure = failure
        if self.owner._pending is self:
            self.owner._pending = None

    def _fill(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise IndexError(f"call {index} of a request of {self.count}")
        while len(self.outcomes) <= index:
            self._read_next()

    def drain(self) -> None:
        """Read every answer still due (so that the channel is free for the next request)."""
        while len(self.outcomes) < self.count:
            self._read_next()

    def _read_next(self) -> None:
        index = len(self.outcomes)
        if self.failure is None:
            try:
                self.outcomes.append((self._receive(index), None))
            except (ImplementationFailure, NotImplementedForConfig) as exc:
                self.outcomes.append((None, exc))
                if not (isinstance(exc, ImplementationFailure) and exc.kind == "mutated input"):
                    self.fail(exc)  # the worker stops at a raise; a crash or hang has replaced it
            if len(self.outcomes) == self.count and self.owner._pending is self:
                self.owner._pending = None
        else:
            self.outcomes.append((None, self.failure))

    def _receive(self, index: int) -> Any:
        name, owner, worker = self.names[index], self.owner, self.worker
        limit = self.limit
        try:
            deadline = self.clock + (limit if limit > 0 else 10.0 ** 9)
            while True:
                reply, out = worker.receive(deadline)
                if reply.get("id") == self.id and reply.get("index") == index:
                    break
            self.clock = time.monotonic()
            return owner._outcome(name, reply, out)
        except TimeoutError:
            where = [line for line in worker.crash_lines() if line.startswith("where")]  # the worker's own dump
            owner._replace()
            raise ImplementationFailure(
                "hang", "\n".join([f"{name} did not return within {limit:g} s (--timeout / BPCHECK_CALL_TIMEOUT); "
                                    "its worker was killed", *where])) from None
        except (EOFError, OSError) as exc:
            raise owner._crash(worker, name, exc) from None
        except protocol.ProtocolError as exc:
            owner._replace()
            raise ImplementationFailure("protocol", f"{name}: the worker sent a malformed answer ({exc})") from None


class RemoteImplementation:
    """The implementation under test, imported and called only in a worker process.

    ``names``: the contract's function names to look for. ``sandbox``: run the
    worker in bubblewrap (no network, a read-only filesystem but a scratch
    folder, resource limits ``limits``). A replacement worker is started as
    soon as one ends, so that the next call does not wait for the import.
    """

    def __init__(self, target: str, names: list[str], *, timeout: float | None = None, sandbox: bool = False,
                 limits: dict | None = None, load_timeout: float | None = None):
        self.label = target
        self.names = list(names)
        self.timeout = CALL_TIMEOUT if timeout is None else timeout
        self.load_timeout = LOAD_TIMEOUT if load_timeout is None else load_timeout
        self.sandbox = sandbox
        if sandbox and sandbox_unavailable():
            raise LoadError(f"--sandbox: {sandbox_unavailable()}")
        self.limits = dict(SANDBOX_LIMITS if sandbox and limits is None else (limits or {}))
        self.containment = containment(sandbox)
        self.calls = 0
        self.workers_started = 0
        self._pending: Pending | None = None
        self._worker = self._start()
        try:
            self._worker.wait_ready(self.load_timeout)
        except LoadError:
            self._worker.kill()
            raise
        self._provided = [n for n in self._worker.provided if n in self.names]

    def _start(self) -> _Worker:
        self.workers_started += 1
        return _Worker(self.label, self.names, self.sandbox, self.limits)

    # -- what the checks see

    def function(self, name: str) -> RemoteFunction | None:
        return RemoteFunction(self, name) if name in self._provided else None

    def provided(self) -> list[str]:
        return list(self._provided)

    # -- calls

    def _replace(self) -> None:
        if self._pending is not None and self._pending.worker is self._worker:
            self._pending.fail(ImplementationFailure("crashed", "its worker was replaced before it answered"))
        self._worker.kill()
        self._worker = self._start()

    def _ready_worker(self) -> _Worker:
        try:
            self._worker.wait_ready(self.load_timeout)
        except LoadError as exc:
            self._replace()
            raise ImplementationFailure("crashed", f"a fresh worker could not load the module again: {exc}") from None
        return self._worker

    def call(self, name: str, args: list, kwargs: dict[str, Any], timeout: float | None = None) -> Any:
        """``name(*args, **kwargs)`` in the worker; its result, or ImplementationFailure / NotImplementedForConfig."""
        return self.submit([(name, args, kwargs)], timeout).result(0)

    def call_many(self, name: str, args_list: list[list], kwargs: dict[str, Any], timeout: float | None = None) -> list:
        """``[name(*args, **kwargs) for args in args_list]`` in the worker, in one round trip."""
        return self.submit([(name, args, kwargs) for args in args_list], timeout).results()

    def submit(self, calls: list[tuple[str, list, dict[str, Any]]], timeout: float | None = None) -> "Pending":
        """Send the calls ``[(name, args, kwargs), ...]`` to the worker in one request and return at once.

        The worker runs them in order while the judge goes on (computing the oracle's answer, say); the
        results are read when asked for (``Pending.result``). The arrays of the request cross once each,
        however many calls share them. One request is outstanding at a time: a new one first reads
        what is left of the previous.
        """
        if self._pending is not None:
            self._pending.drain()
        worker = self._ready_worker()
        self.calls += 1
        arrays: list[np.ndarray] = []
        sent: dict[int, int] = {}
        configs: dict[int, int] = {}  # the calls of a request mostly share one configuration: it crosses once
        trees: list[dict] = []

        def config(kwargs: dict[str, Any]) -> int:
            if id(kwargs) not in configs:
                configs[id(kwargs)] = len(trees)
                trees.append({k: protocol.encode(v, arrays, sent) for k, v in kwargs.items()})
            return configs[id(kwargs)]

        requests = [{"fn": name, "args": [protocol.encode(a, arrays, sent) for a in args], "k": config(kwargs)}
                    for name, args, kwargs in calls]
        limit = self.timeout if timeout is None else timeout
        pending = Pending(self, worker, self.calls, [name for name, _, _ in calls], limit)
        self._pending = pending
        try:
            header = {"type": "call", "id": self.calls, "configs": trees, "calls": requests, "limit": limit}
            if CARRIED.get() is not None:
                header["carried"] = CARRIED.get()
            protocol.send(worker.channel, header, arrays)
        except OSError as exc:  # the worker is gone: the first result says how
            pending.fail(self._crash(worker, pending.names[0], exc))
        return pending

    def _crash(self, worker: _Worker, name: str, exc: Exception) -> ImplementationFailure:
        ended = worker.ended() or _Exit(f"closed its channel ({exc})")
        lines = worker.crash_lines()
        self._replace()
        return ImplementationFailure("crashed", "\n".join([f"the worker {ended.description} during {name}", *lines]))

    def _outcome(self, name: str, reply: dict, out: list[np.ndarray]) -> Any:
        """The value of one call's reply, or the ImplementationFailure / NotImplementedForConfig it stands for."""
        if reply.get("type") == "raised":
            if reply.get("declined") is True:
                raise NotImplementedForConfig(str(reply.get("message") or f"{name} raised NotImplementedError"))
            exc_type, message = str(reply.get("exc_type", "?")), str(reply.get("message", ""))
            trace = str(reply.get("traceback", ""))
            raise ImplementationFailure("raised", f"{name} raised {exc_type}: {message}\n{trace}".rstrip())
        if reply.get("type") != "result":
            raise protocol.ProtocolError("an answer of unknown type")
        value = protocol.decode(reply.get("value"), out)
        mutated = reply.get("mutated") or []
        if mutated:
            position, changed = (mutated[0] + [0, 0])[:2] if isinstance(mutated[0], list) else (0, 0)
            raise ImplementationFailure(
                "mutated input", f"{name} modified its argument #{position} in place ({changed} elements changed)")
        return value

    # -- lifecycle

    def close(self) -> None:
        """End the worker and everything it started."""
        self._worker.kill()

    def __enter__(self) -> "RemoteImplementation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
