"""The worker: the only process that imports and calls the implementation under test.

Started by ``oracle.untrusted.client`` as ``python -m oracle.untrusted.worker``
(inside a PID namespace, or bubblewrap's sandbox, when the machine has them).
It imports nothing of the judge: no torch, no tolerances, no oracle; only NumPy
and the wire format (``oracle.untrusted.protocol``).

Two processes run this file:

* the *init* (``--init``): forks the worker before anything untrusted is
  imported, reaps it, kills whatever the worker left behind (it is a child
  subreaper, and in a PID namespace it is PID 1: when it exits, the kernel
  kills every process of the namespace), and writes the worker's exit status
  to the status pipe, which the worker itself never holds;
* the *worker*: imports the module, says which functions of the contract it
  has, then serves calls one at a time: the arguments arrive as arrays, the
  function runs on them, and the result goes back as arrays and plain data,
  with the arguments it modified in place (compared with copies kept here).
  Whatever the function raises, ``SystemExit`` and ``KeyboardInterrupt``
  included, is reported as raised; ``NotImplementedError`` as declined.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import importlib
import importlib.util
import json
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
import types
from pathlib import Path

import numpy as np

from oracle.untrusted import native, network, protocol, styles

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

#: seconds the replies of quick calls may be held back to go out in one write (``Outbox``)
FLUSH_AFTER = 0.005
#: resource limits the client may ask for (--limits), by their resource module names
LIMITS = {"memory": "RLIMIT_AS", "cpu_seconds": "RLIMIT_CPU", "processes": "RLIMIT_NPROC",
          "open_files": "RLIMIT_NOFILE", "file_bytes": "RLIMIT_FSIZE"}


def _prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


# --------------------------------------------------------------------------- the init


def _children(pid: int) -> list[int]:
    """The live children of ``pid`` (from /proc; [] where there is no /proc)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(entry))
    return found


def _sweep() -> None:
    """Kill every process the worker left behind (they are reparented to this subreaper), until none is left.

    As PID 1 of a namespace there is nothing to do: the kernel kills them all when this process exits (and
    /proc, if it is the host's, would name other processes' children).
    """
    me = os.getpid()
    if me == 1:
        return
    for _ in range(1000):
        left = _children(me)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not left:
            return


def _init(worker: int, status_fd: int) -> None:
    """Reap until the worker exits, sweep what it left, report how it ended on the status pipe, exit.

    SIGTERM (the judge ending the worker) kills the worker, and the sweep follows as after any other end.
    """

    def end_worker(signum, frame):
        try:
            os.kill(worker, signal.SIGKILL)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, end_worker)
    status = None
    while status is None:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == worker:
            status = wait_status
    _sweep()
    if status is None:
        report = {"lost": True}
    elif os.WIFSIGNALED(status):
        report = {"signal": os.WTERMSIG(status)}
    else:
        report = {"exit": os.WEXITSTATUS(status)}
    try:
        os.write(status_fd, json.dumps(report).encode())
    finally:
        os._exit(0)


# --------------------------------------------------------------------------- the worker


def load(target: str):
    """Import ``target``: a dotted module name, or a path to a ``.py`` file; ``torch:`` or ``jax:`` before either names
    a module of torch or JAX ops, seen through ``oracle.untrusted.native`` as the contract's NumPy functions;
    ``cs231n:`` or ``dls:`` a module written to a course's API, seen through ``oracle.untrusted.styles``;
    ``network:`` a student's whole model (``oracle.untrusted.network``)."""
    if network.is_network(target):
        return network.adapt(target, load)
    if styles.is_styled(target):
        if styles.style_of(target) == "layers":  # the mapping names the module
            from oracle.untrusted.styles import layers  # noqa: PLC0415

            return types.SimpleNamespace(**layers.functions_from(styles.module_of(target), load))
        return styles.adapt(styles.style_of(target), load(styles.module_of(target)))
    if native.is_native(target):
        from oracle.ops import SPECS  # noqa: PLC0415 - which inputs each op differentiates

        if native.framework(target) == "jax":
            native.jax_setup()  # float64 on before the module makes any array
            return native.adapt_jax(load(native.module_of(target)), SPECS)
        return native.adapt(load(native.module_of(target)), SPECS)
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        if not path.is_file():
            raise ImportError(f"no such file: {target}")
        name = f"bpcheck_impl_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {target} as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.resolve().parent))
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def _apply_limits(limits: dict) -> None:
    for name, value in limits.items():
        which = getattr(resource, LIMITS[name])
        try:
            resource.setrlimit(which, (int(value), int(value)))
        except (ValueError, OSError):
            pass  # a limit the system will not set (RLIMIT_NPROC as root, say) is left as it is


def _changed(before: np.ndarray, after: np.ndarray) -> int:
    with np.errstate(all="ignore"):
        same = (before == after) | (np.isnan(before) & np.isnan(after)) if before.dtype.kind in "fc" else before == after
    return int(np.size(same) - np.count_nonzero(same))


def _immutable(tree: dict) -> bool:
    """Whether the value of ``tree`` is one no function can change (None, scalars, type names, tuples of them)."""
    kind = tree.get("t") if isinstance(tree, dict) else None
    if kind == "tuple" and isinstance(tree.get("items"), list):
        return all(_immutable(item) for item in tree["items"])
    return kind in ("none", "py", "other")


class Configs:
    """The keyword arguments of a request's calls (``{"configs": [{name: tree}, ...]}``; a call names its own by
    ``"k"``). One made only of immutable values is decoded once and shared by its calls; any other (arrays,
    lists) is decoded afresh for each call, so that nothing one call does to it reaches the next."""

    def __init__(self, trees: list[dict], arrays: list[np.ndarray]):
        self.trees, self.arrays = trees, arrays
        self.shared = [{str(k): protocol.decode(v, arrays) for k, v in tree.items()}
                       if all(_immutable(v) for v in tree.values()) else None for tree in trees]

    def __getitem__(self, k: int) -> dict:
        if self.shared[k] is not None:
            return self.shared[k]  # ``fn(**kwargs)`` gives the function a dict of its own
        return {str(name): protocol.decode(v, self.arrays, copy=True) for name, v in self.trees[k].items()}


#: the fraction of the call limit after which a call still running has every thread's stack dumped to the log
DUMP_AT = 0.9


class Outbox:
    """Replies held back for at most about ``FLUSH_AFTER`` seconds, so that those of quick calls reach the judge in
    one frame (one write, one wake-up and one header to parse for the judge per burst, not one per call).

    The serving loop sends what is held once it is that old, before a call of another function (so that a hang
    is always named after the function that hung), and with a request's last reply. While a call runs long, the
    watchdog's thread sends what the calls before it left held (within ``Watchdog.POLL``), unless the call keeps
    the GIL: then they go out when it ends, and the judge, which times each call from the last reply it read,
    may see that call's limit shortened by the time they were held. No thread is woken per burst: with a thread
    of its own that did (until 2026-12-05), holding a reply cost 3.9 s of the serving loop's 17 s outside the
    calls over a `verify refimpl` run (py-spy; mostly ``Condition.notify`` handing over the GIL), and the thread
    3.1 s of CPU of its own.
    """

    def __init__(self, channel: socket.socket):
        self.channel = channel
        self.held: list[tuple[dict, list[np.ndarray]]] = []
        self.since = 0.0
        self.lock = threading.Lock()

    def hold(self, reply: dict, out: list[np.ndarray]) -> None:
        """Hold a reply, with copies of its arrays (a function that returns its own buffer and refills it on the
        next call must not change a result already given); send what is held if the oldest is due."""
        out = [a.copy() for a in out]
        with self.lock:
            now = time.monotonic()
            if not self.held:
                self.since = now
            self.held.append((reply, out))
            if now - self.since >= FLUSH_AFTER:
                self._send()

    def flush(self, reply: dict | None = None, out: list[np.ndarray] = ()) -> None:
        """Send what is held, and ``reply`` after it, now."""
        with self.lock:
            if reply is not None:
                self.held.append((reply, list(out)))
            self._send()

    def send_due(self) -> None:
        """Send what is held if the oldest has waited ``FLUSH_AFTER`` (called from the watchdog's thread)."""
        if self.held and self.lock.acquire(blocking=False):
            try:
                if self.held and time.monotonic() - self.since >= FLUSH_AFTER:
                    self._send()
            except OSError:
                pass  # the judge has gone: the serving loop finds out on its next read
            finally:
                self.lock.release()

    def _send(self) -> None:
        """One frame ``{"type": "replies", "replies": [...]}``: each reply's arrays start at its ``"a"``."""
        if self.held:
            held, self.held = self.held, []
            replies, arrays = [], []
            for reply, out in held:
                replies.append({**reply, "a": len(arrays)})
                arrays += out
            protocol.send(self.channel, {"type": "replies", "replies": replies}, arrays)


class Watchdog:
    """A thread of its own that polls the call in progress (two assignments a call; arming
    ``faulthandler.dump_traceback_later`` around every call would cost 36 us a call, measured):

    * once a call has run for ``DUMP_AT`` of its limit, it writes every thread's stack to the log (stderr), so
      that the judge, which kills the worker at the limit, can say where the call was stuck (a call stuck in C
      code that holds the GIL gets no dump: the judge's message then has no "where" line);
    * while a call runs, it sends the replies the calls before it left held (``Outbox.send_due``).
    """

    POLL = 0.05

    def __init__(self):
        self.call, self.started, self.limit, self.dumped = 0, None, 0.0, 0
        self.thread = None
        self.outbox: Outbox | None = None

    def begin(self, limit: float) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._watch, name="bpcheck-watchdog", daemon=True)
            self.thread.start()
        self.call += 1
        self.limit, self.started = limit, time.monotonic()

    def end(self) -> None:
        self.started = None

    def _watch(self) -> None:
        while True:
            time.sleep(self.POLL)
            call, started, limit = self.call, self.started, self.limit
            if started is not None and self.outbox is not None:
                self.outbox.send_due()
            if started is not None and limit and call != self.dumped and time.monotonic() - started > DUMP_AT * limit:
                self.dumped = call
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)


WATCHDOG = Watchdog()


def _call(fn, request: dict, arrays: list[np.ndarray], configs: Configs, reply: dict,
          limit: float = 0.0) -> tuple[dict, list[np.ndarray]]:
    """Run one call of a request (``{"fn": name, "args": [...], "k": its configuration}``); its reply (``reply`` +
    the outcome) and the reply's arrays.

    The function gets copies of the frame's arrays (several calls of a request may share one) and is judged for
    mutating them against the frame's, which nothing else touches.
    """
    args = [protocol.decode(tree, arrays, copy=True) for tree in request["args"]]
    kwargs = configs[request["k"]]
    originals = [arrays[tree["i"]] if isinstance(a, np.ndarray) and tree.get("t") == "nd" else None
                 for tree, a in zip(request["args"], args)]
    try:
        if not callable(fn):
            raise AttributeError("the module has no such function")
        WATCHDOG.begin(limit)
        try:
            result = fn(*args, **kwargs)
        finally:
            WATCHDOG.end()
    except NotImplementedError as exc:
        return {**reply, "type": "raised", "declined": True, "exc_type": "NotImplementedError", "message": str(exc)}, []
    except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, pytest's outcomes: all the judge's to see
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
        return {**reply, "type": "raised", "declined": False, "exc_type": type(exc).__name__,
                "message": str(exc)[:4000], "traceback": text[-8000:]}, []
    out: list[np.ndarray] = []
    value = protocol.encode(result, out)
    mutated = [[i, _changed(b, a)] for i, (b, a) in enumerate(zip(originals, args))
               if b is not None and isinstance(a, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
               and a.tobytes() != b.tobytes() and _changed(b, a)]
    return {**reply, "type": "result", "value": value, "mutated": mutated}, out


def _limit(header: dict) -> float:
    """The call limit the judge enforces on this request's calls (0: none), as a number of seconds."""
    value = header.get("limit")
    return float(value) if isinstance(value, (int, float)) and value > 0 and value == value else 0.0


def serve(channel: socket.socket, target: str, names: list[str]) -> None:
    try:
        module = load(target)
    except BaseException as exc:  # noqa: BLE001 - any failure to load, SystemExit included, is reported as one line
        plain = native.module_of(target) if native.is_native(target) else styles.module_of(target)
        is_file = plain.endswith(".py") or Path(plain).is_file()
        what = f"importing {target} failed" if is_file else f"cannot import {target!r}"
        message = str(exc) if isinstance(exc, ImportError) and str(exc).startswith("no such file") else (
            f"{what}: {type(exc).__name__}: {exc}")
        if network.is_network(target) and not message.startswith("no such file"):
            message = f"building the model failed: {type(exc).__name__}: {exc}"
        protocol.send(channel, {"type": "load_error", "message": message[:4000]})
        return
    provided = [n for n in names if callable(getattr(module, n, None))]
    protocol.send(channel, {"type": "ready", "provided": provided})
    receiver = protocol.Receiver(channel)
    outbox = Outbox(channel)
    WATCHDOG.outbox = outbox
    while True:
        try:
            header, arrays = receiver.receive()
        except EOFError:
            return
        if header.get("type") != "call":
            return
        # one reply per call, until the first that raises; replies of quick calls go out together (``Outbox``)
        previous = None
        native.carry(header.get("carried"))  # float32 arrays standing for bfloat16, for the torch/JAX adapters
        calls = header["calls"]
        configs = Configs(header["configs"], arrays)
        for index, request in enumerate(calls):
            name = str(request.get("fn"))
            if name != previous:
                outbox.flush()
            fn = getattr(module, name, None) if name in provided else None
            reply, out = _call(fn, request, arrays, configs, {"id": header["id"], "index": index},
                               limit=_limit(header))
            previous = name
            if reply["type"] == "raised" or index == len(calls) - 1:
                outbox.flush(reply, out)  # the request's last reply goes out at once
                break
            outbox.hold(reply, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m oracle.untrusted.worker")
    parser.add_argument("--channel", type=int, required=True)
    parser.add_argument("--status", type=int, required=True)
    parser.add_argument("--log", type=int, required=True)
    parser.add_argument("--names", required=True, help="comma-separated function names of the contract")
    parser.add_argument("--limits", default="{}", help="JSON: resource limits (see LIMITS)")
    parser.add_argument("target")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a user's Ctrl-C is the judge's to handle
    os.dup2(args.log, 1)
    os.dup2(args.log, 2)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the init dies with whoever started it
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    worker = os.fork()
    if worker:
        os.close(args.channel)
        _init(worker, args.status)
    os.close(args.status)
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    faulthandler.enable(file=sys.stderr, all_threads=False)
    _apply_limits(json.loads(args.limits))
    channel = socket.socket(fileno=args.channel)
    serve(channel, args.target, args.names.split(","))
    os._exit(0)


if __name__ == "__main__":
    main()
