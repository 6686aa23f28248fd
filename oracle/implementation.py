"""The implementation under test, as the checks see it, and the one way to call it.

An implementation is any module with (some of) the contract's functions:
``refimpl``, ``mypkg.ops`` or a plain file ``path/to/my_cnn.py``.
``Implementation.load(target)`` never imports it here: it starts a worker
process that does (``oracle.untrusted``), and its functions are proxies whose
calls cross the process boundary as arrays and plain data. Every call goes
through ``call``; every way the result can be malformed (wrong count, shape
or dtype, NaN or inf where the oracle has none) becomes an
``ImplementationFailure`` in ``check_result``.

``Implementation(module, label)`` wraps an object already in this process: for
the project's own trusted test doubles only, never for code under test.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from oracle import dtypes
from oracle.ops import SPECS
from oracle.untrusted import client
from oracle.untrusted.client import ImplementationFailure, LoadError, NotImplementedForConfig, RemoteFunction
from oracle.untrusted.protocol import type_name

__all__ = ["CALL_TIMEOUT", "Implementation", "ImplementationFailure", "LoadError", "NotImplementedForConfig",
           "call", "call_many", "check_result", "contract_names", "submit"]

#: seconds one call of an implementation may take before it counts as hung
CALL_TIMEOUT = client.CALL_TIMEOUT


def contract_names() -> list[str]:
    """Every function name of the contract: each op, its backward, and its optional forward-mode rule and double backward."""
    return [n for spec in SPECS.values() for n in (spec.name, spec.backward_name, spec.jvp_name, spec.double_backward_name)]


@dataclass
class Implementation:
    """A trusted object in this process with (some of) the contract's functions, looked up by name."""

    module: Any
    label: str

    @staticmethod
    def load(target: str, *, timeout: float | None = None, sandbox: bool = False,
             limits: dict | None = None) -> client.RemoteImplementation:
        """The implementation ``target`` (a dotted module name or a ``.py`` file), running in its own worker process.

        LoadError if it cannot be imported or implements none of the contract. Close it (``.close()`` or a
        ``with`` block) to end the worker; it is also ended when garbage-collected and at exit.
        """
        impl = client.RemoteImplementation(target, contract_names(), timeout=timeout, sandbox=sandbox, limits=limits)
        if not impl.provided():
            impl.close()
            raise LoadError(
                f"{target} implements none of the contract (expected functions such as conv2d, conv2d_backward; "
                f"see the README's contract)"
            )
        return impl

    def function(self, name: str) -> Callable | None:
        fn = getattr(self.module, name, None)
        return fn if callable(fn) else None

    def provided(self) -> list[str]:
        """The contract's function names this object defines."""
        return [n for n in contract_names() if self.function(n) is not None]

    def close(self) -> None:
        """Nothing to end: the object lives in this process (the same interface as a worker-backed one)."""


@contextlib.contextmanager
def _time_limit(seconds: float, what: str):
    """Raise ImplementationFailure('hang') if the block runs longer than ``seconds`` (main thread, POSIX)."""
    usable = seconds > 0 and hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise ImplementationFailure("hang", f"{what} did not return within {seconds:g} s (BPCHECK_CALL_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _copied(a):
    """A copy of an argument: an array, None, or a tuple of them (the directions of a double backward)."""
    if isinstance(a, tuple):
        return tuple(_copied(item) for item in a)
    return None if a is None else np.array(a, copy=True)


def call(fn: Callable, what: str, args: list, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
    """Call ``fn(*args, **kwargs)`` on copies; a mutated input or an exception is an ImplementationFailure.

    A ``RemoteFunction`` runs in its worker (the arrays cross by value, the worker checks them for mutation);
    a trusted in-process test double runs here, under a SIGALRM time limit.
    """
    if isinstance(fn, RemoteFunction):
        return fn.owner.call(fn.name, list(args), dict(kwargs), timeout)
    copies = [_copied(a) for a in args]
    originals = [None if a is None or isinstance(a, tuple) else np.array(a, copy=True) for a in args]
    try:
        with _time_limit(CALL_TIMEOUT if timeout is None else timeout, what):
            result = fn(*copies, **dict(kwargs))
    except NotImplementedError as exc:
        raise NotImplementedForConfig(str(exc) or f"{what} raised NotImplementedError") from None
    except ImplementationFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - the implementation's error is the finding
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
        raise ImplementationFailure("raised", f"{what} raised {type(exc).__name__}: {exc}\n{tb}") from None
    for position, (before, after) in enumerate(zip(originals, copies)):
        if before is not None and not np.array_equal(before, after, equal_nan=True):
            changed = int(np.sum(~((before == after) | (np.isnan(before) & np.isnan(after)))))
            raise ImplementationFailure(
                "mutated input", f"{what} modified its argument #{position} in place ({changed} elements changed)"
            )
    return result


def call_many(fn: Callable, what: str, args_list: list[list], kwargs: dict[str, Any], *, timeout: float | None = None) -> list:
    """``[call(fn, what, args, kwargs) for args in args_list]``, in one round trip to the worker for a ``RemoteFunction``."""
    if isinstance(fn, RemoteFunction):
        return fn.owner.call_many(fn.name, [list(args) for args in args_list], dict(kwargs), timeout)
    return [call(fn, what, args, kwargs, timeout=timeout) for args in args_list]


class Done(client.Outcomes):
    """The outcomes of calls already made in this process (a trusted test double), read like a ``Pending``."""

    def __init__(self, impl: Implementation, calls: list[tuple[str, list, dict[str, Any]]], timeout: float | None):
        super().__init__(len(calls))
        failure = None
        for name, args, kwargs in calls:
            if failure is None:
                try:
                    self.outcomes.append((call(impl.function(name), name, args, kwargs, timeout=timeout), None))
                    continue
                except (ImplementationFailure, NotImplementedForConfig) as exc:
                    failure = None if isinstance(exc, ImplementationFailure) and exc.kind == "mutated input" else exc
                    self.outcomes.append((None, exc))
                    continue
            self.outcomes.append((None, failure))  # not run: an earlier call raised


def submit(impl: Implementation | client.RemoteImplementation, calls: list[tuple[str, list, dict[str, Any]]], *,
           timeout: float | None = None) -> client.Pending | Done:
    """Start the calls ``[(name, args, kwargs), ...]`` of ``impl`` and return at once; ``.result(i)`` is call i's
    value, or raises what ``call`` raises.

    For an implementation in its worker, the calls go in one request and run while the judge goes on (the
    checks compute the oracle's answer meanwhile); a trusted object in this process runs them right away.
    """
    if isinstance(impl, client.RemoteImplementation):
        return impl.submit([(name, list(args), kwargs) for name, args, kwargs in calls], timeout)
    return Done(impl, calls, timeout)


def check_result(
    result: Any,
    what: str,
    expected: list[tuple[str, np.ndarray | None]],
    dtype: str,
) -> list[np.ndarray | None]:
    """Check the structure of a result against the oracle's: count, ndarray, shape, dtype, finiteness.

    ``expected`` lists ``(name, oracle array or None)``; a single expected
    output means the result is one array, several mean a tuple.
    """
    if len(expected) == 1:
        results = [result]
    else:
        if not isinstance(result, (tuple, list)) or len(result) != len(expected):
            got = f"{type_name(result)} of length {len(result)}" if isinstance(result, (tuple, list)) else type_name(result)
            names = ", ".join(n for n, _ in expected)
            raise ImplementationFailure(
                "wrong result", f"{what} must return a tuple of {len(expected)} ({names}), got {got}"
            )
        results = list(result)
    checked: list[np.ndarray | None] = []
    for (name, oracle), got in zip(expected, results):
        if oracle is None:
            if got is not None:
                raise ImplementationFailure("wrong result", f"{what}: {name} must be None (the argument was None)")
            checked.append(None)
            continue
        if not isinstance(got, np.ndarray):
            raise ImplementationFailure(
                "wrong result", f"{what}: {name} must be a numpy.ndarray, got {type_name(got)}"
            )
        if got.shape != oracle.shape:
            raise ImplementationFailure(
                "wrong shape", f"{what}: {name} has shape {got.shape}, expected {oracle.shape}"
            )
        if got.dtype != dtypes.storage(dtype):
            held = f", held as {dtypes.storage(dtype)}" if dtypes.carried(dtype) else ""
            raise ImplementationFailure(
                "wrong dtype", f"{what}: {name} has dtype {got.dtype}, expected {dtype} (the inputs' dtype{held})"
            )
        bad = ~np.isfinite(got) & np.isfinite(oracle)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ImplementationFailure(
                "non-finite",
                f"{what}: {name} has {int(bad.sum())} NaN/inf value(s) where the oracle is finite, "
                f"first at index {index}: got {got[index]}, expected {oracle[index]}",
            )
        checked.append(got)
    return checked
