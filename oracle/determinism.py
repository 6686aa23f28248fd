"""Whether two identical calls of a backward gave the same gradients, and if not, by how much they differ.

``difference(first, second, names)`` compares the two results array by array, value for value: NaN equals NaN
(in any position both have it), 0 equals -0, and every other element must be the same number. A backward that
sums in a run-dependent order (atomics on a GPU, a thread pool's partial sums) differs by a few units in the
last place (ulps); one whose state leaks across calls (gradients accumulated, never reset) by much more. The
result is a description of the worst element, in absolute terms and in ulps of the arrays' own dtype,

    ulps = |a - b| / spacing(max(|a|, |b|))      (spacing(v): the gap from |v| to the next float of the dtype)

or None when the two results are identical. Only arrays cross into here (the worker made both calls).
"""

from __future__ import annotations

import numpy as np

#: the verdict's note starts with this (``Verdict.nondeterminism``)
NOT_DETERMINISTIC = "not deterministic"


def _arrays(result, n: int) -> list | None:
    """The backward's result as ``n`` entries (an array or None each), or None if it is not shaped so."""
    results = [result] if n == 1 else (list(result) if isinstance(result, (tuple, list)) and len(result) == n else None)
    if results is None or not all(r is None or isinstance(r, np.ndarray) for r in results):
        return None
    return results


def of_results(first, second, names: list[str], dtype: str | None = None) -> str | None:
    """``difference`` of two backward results as the backward returned them (one array, or a tuple of arrays and
    None, one per name). Results that are not shaped so are not compared: None (the checks already say what
    is wrong with such a result). ``dtype``: the case's, for arrays held in another (bfloat16 in float32)."""
    a, b = _arrays(first, len(names)), _arrays(second, len(names))
    return None if a is None or b is None else difference(a, b, names, dtype)


#: ulps of a dtype held in float32, in float32 ulps: bfloat16 has 16 bits fewer of significand
_HELD_ULPS = {"bfloat16": 2.0**16}


def difference(a: list, b: list, names: list[str], dtype: str | None = None) -> str | None:
    """How two lists of gradients (an array or None per name) from identical calls differ, or None if identical.

    ``dtype``: the dtype the arrays stand for, if they are held in another (bfloat16 values in float32): the ulps
    are then that dtype's."""
    worst = None  # (ulps, abs difference, name, index, count, size)
    for name, x, y in zip(names, a, b):
        if x is None or y is None:
            if (x is None) != (y is None):
                return f"{NOT_DETERMINISTIC}: {name} is None in one of two identical calls and not in the other"
            continue
        if x.shape != y.shape or x.dtype != y.dtype:
            return (f"{NOT_DETERMINISTIC}: two identical calls returned {name} as {x.dtype}{list(x.shape)} "
                    f"and {y.dtype}{list(y.shape)}")
        if np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
            continue
        found = _worst(x, y, _HELD_ULPS.get(dtype, 1.0))
        if found is not None and (worst is None or found[0] > worst[0]):
            worst = (*found[:1], found[1], name, *found[2:])
    if worst is None:
        return None
    ulps, gap, name, index, count, size = worst
    held = dtype if dtype in _HELD_ULPS else a[names.index(name)].dtype
    in_ulps = f" ({ulps:.3g} ulps of {held})" if np.isfinite(ulps) else ""
    return (f"{NOT_DETERMINISTIC}: two identical calls of the backward differ by up to {gap:.3g}{in_ulps} "
            f"at {name}{list(index)} ({count} of {size} element(s) differ)")


def _worst(x: np.ndarray, y: np.ndarray, ulp_scale: float = 1.0) -> tuple | None:
    """``(ulps, |x - y|, index, count, size)`` at the element of largest difference in ulps (NaN on one side only:
    infinite), or None if no element differs."""
    if x.dtype.kind not in "fc":
        differ = x != y
        x, y = x.astype(np.float64), y.astype(np.float64)
        spacing = np.ones_like(x)
    else:
        differ = ~((x == y) | (np.isnan(x) & np.isnan(y)))
        with np.errstate(all="ignore"):
            spacing = np.spacing(np.maximum(np.abs(x), np.abs(y))).astype(np.float64) * ulp_scale
    if not differ.any():
        return None
    with np.errstate(all="ignore"):
        gap = np.abs(x.astype(np.float64) - y.astype(np.float64))
        ulps = np.where(differ, gap / spacing, 0.0)
    ulps = np.where(differ & ~np.isfinite(ulps), np.inf, ulps)
    flat = int(np.argmax(ulps))
    index = tuple(int(i) for i in np.unravel_index(flat, x.shape)) if x.ndim else ()
    return float(ulps.flat[flat]), float(gap.flat[flat]), index, int(differ.sum()), int(x.size)
