"""The floating dtypes a case may be drawn in, and how the judge holds their values (plain NumPy, no torch).

``float64`` and ``float32`` are the default (``DTYPES``, what ``both`` means); ``float16`` and ``bfloat16`` are
checked on request (``HALF``). NumPy has ``float16``; it has no ``bfloat16``, so a bfloat16 array is held
*carried*: as a float32 array whose every value is a bfloat16 value (bfloat16 is float32 with the low 16 bits of
the significand zero, so the embedding is exact). It crosses to the worker that way, and the worker's torch and
JAX adapters (``oracle.untrusted.native``) make it bfloat16 there and bring bfloat16 results back as float32
(exact too); the judge compares them as bfloat16 values, with bfloat16's tolerances (``oracle.tolerances``).

Values are drawn in float64 by the recipes of ``oracle.values``, brought into the dtype's range
(``MAGNITUDE_LIMIT``) and rounded to the dtype (``round_to``): the oracle then computes in float64 on exactly
the values the implementation gets, so the inputs carry no rounding of their own.
"""

from __future__ import annotations

import numpy as np

#: the default dtypes (``--dtype both``)
DTYPES = ("float64", "float32")
#: the half-precision dtypes, checked on request only
HALF = ("float16", "bfloat16")
#: every dtype a case may have
ALL = DTYPES + HALF

#: dtype -> the NumPy dtype its arrays are held in by the judge and on the wire (bfloat16: float32, carried)
_STORAGE = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
            "bfloat16": np.dtype(np.float32)}

#: the smallest positive normal number of each dtype (bfloat16 has float32's exponent range)
TINY = {"float64": float(np.finfo(np.float64).tiny), "float32": float(np.finfo(np.float32).tiny),
        "float16": float(np.finfo(np.float16).tiny), "bfloat16": float(np.finfo(np.float32).tiny)}

#: the largest finite number of each dtype (bfloat16: (2 - 2^-7) 2^127)
MAX = {"float64": float(np.finfo(np.float64).max), "float32": float(np.finfo(np.float32).max),
       "float16": float(np.finfo(np.float16).max), "bfloat16": float((2 - 2.0**-7) * 2.0**127)}

#: the largest magnitude a drawn input keeps in each half dtype (``clip``): float16's largest finite value is 65504,
#: and the results of the drawn cases are sums of products of inputs, squares (mse_loss) and exponentials. With
#: inputs within 2^7 = 128 a square is at most 2^14, and a sum of up to 3 such squares, or of up to 500 terms of
#: size 128 (a loss over the drawn shapes' few dozen elements), stays below 65504; exponentials are taken of
#: differences (softmax) or of -|z| (the logits forms) by the standard formulas. The wide recipes (logits to
#: +-1e5, offsets of 1e3) lose their extremes in float16, not their shape: +-128 is far in every activation's
#: saturated tail (sigmoid(128) rounds to 1 in float16). bfloat16 has float32's range: nothing is clipped.
MAGNITUDE_LIMIT = {"float16": 128.0}


def check(dtype: str, argument: str = "dtype") -> str:
    """``dtype`` if it is a dtype name a case may have, else ValueError naming ``argument``."""
    if dtype not in ALL:
        raise ValueError(f"{argument} must be one of {', '.join(ALL)}, got {dtype!r}")
    return dtype


def storage(dtype: str) -> np.dtype:
    """The NumPy dtype the arrays of a ``dtype`` case are held in (``float32`` for bfloat16: carried)."""
    return _STORAGE[check(dtype)]


def carried(dtype: str) -> bool:
    """Whether ``dtype``'s arrays are held in another NumPy dtype (bfloat16, in float32)."""
    return storage(dtype).name != dtype


def is_half(dtype: str) -> bool:
    return check(dtype) in HALF


def round_to_bfloat16(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to the nearest bfloat16 value (ties to even), as float32 (exact); NaN stays NaN, overflow is inf.

    Through float32 first: a float64 value within half a float32 ulp of a bfloat16 tie may round the other way
    than a direct rounding would, but the result is a bfloat16 value either way, which is all a drawn input needs.
    The rounding of float32 bits ``b`` to their upper half is ``(b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        a32 = np.asarray(a, dtype=np.float32)
    bits = np.ascontiguousarray(a32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32).reshape(a32.shape)
    return np.where(np.isnan(a32), np.float32(np.nan), out).astype(np.float32)


def round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` rounded to ``dtype``, held in ``storage(dtype)``."""
    if check(dtype) == "bfloat16":
        return round_to_bfloat16(a)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(a, dtype=storage(dtype))


def clip(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` with magnitudes beyond ``MAGNITUDE_LIMIT[dtype]`` brought to it (signs, NaN and inf kept), in float64."""
    limit = MAGNITUDE_LIMIT.get(check(dtype))
    a = np.asarray(a, dtype=np.float64)
    if limit is None:
        return a
    finite = np.isfinite(a)
    return np.where(finite, np.clip(a, -limit, limit), a)


def representable(a: np.ndarray, dtype: str) -> bool:
    """Whether every value of ``a`` is a value of ``dtype`` (NaN counts as one)."""
    a64 = np.asarray(a, dtype=np.float64)
    back = np.asarray(round_to(a64, dtype), dtype=np.float64)
    return bool(np.all((back == a64) | (np.isnan(back) & np.isnan(a64))))


def in_range(expected: np.ndarray, dtype: str) -> np.ndarray:
    """The exact (float64) ``expected`` as ``dtype`` can hold it at its range: beyond the largest finite value
    (``MAX``, plus half an ulp: what rounds to infinity) an element is the infinity of its sign. Unchanged for
    float64 and float32 (their cases stay far from the range). A half-precision case where this makes an element
    infinite is skipped by the checks (``oracle.checks.beyond_half_range``): no value of the dtype is right there."""
    expected = np.asarray(expected, dtype=np.float64)
    if not is_half(dtype):
        return expected
    eps = 2.0**-10 if dtype == "float16" else 2.0**-7
    overflow = MAX[dtype] * (1 + eps / 4)  # MAX + half an ulp of MAX (ulp(MAX) = MAX eps / (2 - eps))
    with np.errstate(invalid="ignore"):
        beyond = np.isfinite(expected) & (np.abs(expected) >= overflow)
    return np.where(beyond, np.copysign(np.inf, expected), expected)
