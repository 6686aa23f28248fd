"""The implementation under test, and how to call it without trusting it.

An implementation is any module with (some of) the contract's functions:
``refimpl``, ``mypkg.ops`` or a plain file ``path/to/my_cnn.py``. Every call
goes through ``call``: inputs are copies (the caller's arrays, and so the
oracles' inputs, are never exposed), in-place modification is detected by
comparing the copies afterwards, a hang is cut off by a time limit, and every
way the result can be malformed (wrong count, shape or dtype, NaN or inf where
the oracle has none) becomes an ``ImplementationFailure`` with a clear message.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import numpy as np

from oracle.ops import SPECS

#: seconds one call of an implementation may take before it counts as hung
CALL_TIMEOUT = float(os.environ.get("BPCHECK_CALL_TIMEOUT", "20"))


class ImplementationFailure(Exception):
    """The implementation under test misbehaved in a call: raised, hung, mutated or returned garbage."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class NotImplementedForConfig(Exception):
    """The implementation raised NotImplementedError: this configuration is outside what it supports."""


class LoadError(Exception):
    """The module cannot be imported, or implements none of the contract."""


@dataclass
class Implementation:
    """A module under test, with lookup of the contract's functions by op."""

    module: ModuleType
    label: str

    @classmethod
    def load(cls, target: str) -> "Implementation":
        """Import ``target``: a dotted module name, or a path to a ``.py`` file."""
        path = Path(target)
        if target.endswith(".py") or path.is_file():
            if not path.is_file():
                raise LoadError(f"no such file: {target}")
            name = f"bpcheck_impl_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise LoadError(f"cannot load {target} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            sys.path.insert(0, str(path.resolve().parent))
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # noqa: BLE001 - any import-time failure is the user's to see
                raise LoadError(f"importing {target} failed: {type(exc).__name__}: {exc}") from exc
            finally:
                sys.path.pop(0)
        else:
            try:
                module = importlib.import_module(target)
            except Exception as exc:  # noqa: BLE001
                raise LoadError(f"cannot import {target!r}: {type(exc).__name__}: {exc}") from exc
        impl = cls(module, target)
        if not impl.provided():
            raise LoadError(
                f"{target} implements none of the contract (expected functions such as conv2d, conv2d_backward; "
                f"see the README's contract)"
            )
        return impl

    def function(self, name: str) -> Callable | None:
        fn = getattr(self.module, name, None)
        return fn if callable(fn) else None

    def provided(self) -> list[str]:
        """The contract's function names this module defines."""
        names = [n for spec in SPECS.values() for n in (spec.name, spec.backward_name)]
        return [n for n in names if self.function(n) is not None]


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


def call(fn: Callable, what: str, args: list, kwargs: dict[str, Any], *, timeout: float | None = None) -> Any:
    """Call untrusted ``fn(*args, **kwargs)`` on copies; a mutated input or an exception is an ImplementationFailure."""
    copies = [None if a is None else np.array(a, copy=True) for a in args]
    originals = [None if a is None else np.array(a, copy=True) for a in args]
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
            got = f"{type(result).__name__} of length {len(result)}" if isinstance(result, (tuple, list)) else type(result).__name__
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
                "wrong result", f"{what}: {name} must be a numpy.ndarray, got {type(got).__name__}"
            )
        if got.shape != oracle.shape:
            raise ImplementationFailure(
                "wrong shape", f"{what}: {name} has shape {got.shape}, expected {oracle.shape}"
            )
        if got.dtype != np.dtype(dtype):
            raise ImplementationFailure(
                "wrong dtype", f"{what}: {name} has dtype {got.dtype}, expected {dtype} (the inputs' dtype)"
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
