"""What the course adapters share: finding the student's functions, the contract's argument forms."""

from __future__ import annotations

import numpy as np


def found(module, *names: str):
    """The student's functions ``names`` if the module defines every one of them as a callable, else None."""
    fns = [getattr(module, name, None) for name in names]
    return fns if all(callable(f) for f in fns) else None


def pair(value, default=None) -> tuple[int, int]:
    if value is None:
        value = default
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def shapes_of(**arrays) -> dict:
    return {name: None if a is None else tuple(np.shape(a)) for name, a in arrays.items()}


def as_array(value, dtype) -> np.ndarray:
    """A loss the course returns as a Python float, as the 0-d array the contract returns; anything else unchanged."""
    if isinstance(value, (float, int, np.floating)) and not isinstance(value, bool):
        return np.asarray(value, dtype=dtype)
    return value


def two(result, what: str):
    """``(out, cache)`` from a course forward; TypeError saying what came back otherwise."""
    if not isinstance(result, tuple) or len(result) != 2:
        got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
        raise TypeError(f"{what} must return (out, cache), got {got}")
    return result


def several(result, n: int, what: str, names: str):
    if not isinstance(result, (tuple, list)) or len(result) != n:
        got = f"a {type(result).__name__} of {len(result)}" if isinstance(result, (tuple, list)) else type(result).__name__
        raise TypeError(f"{what} must return ({names}), got {got}")
    return tuple(result)
