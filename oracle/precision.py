"""What an imprecise verdict says: the stable formula, and whether the result matches a known unstable one.

A catalogue, per op and direction (``forward`` / ``backward``), of the
formulas that are mathematically right but lose digits, each with the stable
formula to use instead. ``hints(op, direction, arrays, config, got, index)``
recomputes each unstable formula of the op in the case's dtype and names the
one the implementation's result matches at the worst element; else it names
the stable formula. The judgement itself is ``oracle.tolerances``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from oracle import dtypes
from oracle.tolerances import UNIT_ROUNDOFF


@dataclass(frozen=True)
class Unstable:
    op: str
    direction: str
    formula: str
    stable: str
    compute: Callable | None = None
    """(arrays in the case's dtype, config) -> the unstable formula's result, for matching."""


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return loss
    total = loss.sum(dtype=loss.dtype)
    return np.asarray(total if reduction == "sum" else total / loss.dtype.type(max(loss.size, 1)), loss.dtype)


def _bce_log_one_minus(a, cfg):
    p, y = a["input"], a["target"]
    one = p.dtype.type(1)
    with np.errstate(all="ignore"):
        loss = -(y * np.maximum(np.log(p), p.dtype.type(-100)) + (one - y) * np.maximum(np.log(one - p), p.dtype.type(-100)))
    return _reduce(loss, cfg["reduction"])


def _bce_logits_log_one_plus(a, cfg):
    z, y = a["input"], a["target"]
    one = z.dtype.type(1)
    with np.errstate(all="ignore"):
        loss = (one - y) * z + np.log(one + np.exp(-z))
    return _reduce(loss, cfg["reduction"])


def _sigmoid_tanh(a, cfg):
    x = a["x"]
    half = x.dtype.type(0.5)
    return half + half * np.tanh(half * x)


def _tanh_sigmoid(a, cfg):
    x = a["x"]
    one = x.dtype.type(1)
    e = np.exp(-np.abs(2 * x))
    s = np.where(x >= 0, one / (one + e), e / (one + e))
    return 2 * s - one


def _one_pass_normalization(axes_of):
    """The normalization forward with the one-pass variance ``mean(x^2) - mean(x)^2``, in the case's dtype."""

    def compute(a, cfg):
        x = a["x"]
        axes, shaped = axes_of(x, cfg)
        dt = x.dtype.type
        m = dt(np.prod([x.shape[i] for i in axes]))
        mean = x.sum(axis=axes, keepdims=True) / m
        var = np.maximum((x * x).sum(axis=axes, keepdims=True) / m - mean * mean, dt(0))
        y = (x - mean) / np.sqrt(var + dt(cfg["eps"]))
        if a.get("weight") is not None:
            y = y * shaped(a["weight"])
        return y if a.get("bias") is None else y + shaped(a["bias"])

    return compute


def _batch_norm_axes(x, cfg):
    return (0, *range(2, x.ndim)), lambda p: p.reshape((1, -1) + (1,) * (x.ndim - 2))


def _layer_norm_axes(x, cfg):
    return tuple(range(x.ndim - len(cfg["normalized_shape"]), x.ndim)), lambda p: p


_TWO_PASS = ("the two-pass variance mean((x - mean)^2) (or Welford's update): E[x^2] - E[x]^2 cancels when "
             "|mean| >> std and loses the digits of mean(x^2) / var")

CATALOGUE = [
    Unstable("binary_cross_entropy", "forward", "-(y log p + (1 - y) log(1 - p))",
             "(y - 1) * log1p(-p) - y * log(p): log1p(-p) keeps the digits log(1 - p) loses for small p",
             _bce_log_one_minus),
    Unstable("binary_cross_entropy_with_logits", "forward", "(1 - y) z + log(1 + exp(-z))",
             "max(z, 0) - z * y + log1p(exp(-|z|)): log1p of a small exp keeps its digits, and exp never overflows",
             _bce_logits_log_one_plus),
    Unstable("sigmoid", "forward", "0.5 + 0.5 tanh(x / 2)",
             "1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for x < 0: right to u relative everywhere",
             _sigmoid_tanh),
    Unstable("tanh", "forward", "2 sigmoid(2x) - 1",
             "np.tanh, or expm1(2x) / (expm1(2x) + 2) (odd-symmetric): right to u relative near 0, where 2 sigmoid(2x) - 1 "
             "cancels terms of size 1",
             _tanh_sigmoid),
    Unstable("sigmoid", "backward", "g s (1 - s) with an s right to u absolute only",
             "g * s * (1 - s) with s from the stable sigmoid (exp(-|x|) / (1 + exp(-|x|)) on the small side)"),
    Unstable("binary_cross_entropy", "backward", "g (-y / p + (1 - y) / (1 - p))",
             "g * (p - y) / max(p * (1 - p), 1e-12): one subtraction instead of two large cancelling terms"),
    Unstable("binary_cross_entropy_with_logits", "backward", "g (sigmoid(z) - y) with a sigmoid right to u absolute only",
             "g * (sigmoid(z) - y) with the stable sigmoid (exp(-|z|) based)"),
    Unstable("batch_norm", "forward", "the one-pass variance mean(x^2) - mean(x)^2", _TWO_PASS,
             _one_pass_normalization(_batch_norm_axes)),
    Unstable("batch_norm", "backward", "inv_std and xhat from the one-pass variance mean(x^2) - mean(x)^2", _TWO_PASS),
    Unstable("layer_norm", "forward", "the one-pass variance mean(x^2) - mean(x)^2", _TWO_PASS,
             _one_pass_normalization(_layer_norm_axes)),
    Unstable("layer_norm", "backward", "inv_std and xhat from the one-pass variance mean(x^2) - mean(x)^2", _TWO_PASS),
]

#: for the sums: the generic advice
SUMS = ("a float32 sum loses about sqrt(n) u of its terms' size; accumulate pairwise (numpy's sum, einsum) or in "
        "float64, then cast")


def hints(op: str, direction: str, arrays: dict, config: dict, got: np.ndarray, index, dtype: str) -> list[str]:
    """Hints for an imprecise ``got`` at ``index``: the unstable formula it matches, or the stable one to use."""
    entries = [u for u in CATALOGUE if u.op == op and u.direction == direction]
    if not entries:
        return [SUMS] if dtype != "float64" else []
    out = []
    cast = {k: (None if v is None else np.asarray(v, dtype=dtypes.storage(dtype))) for k, v in arrays.items()}
    for entry in entries:
        if entry.compute is not None:
            try:
                unstable = np.asarray(entry.compute(cast, config), np.float64)
                at = float(np.asarray(unstable)[index]) if unstable.ndim else float(unstable)
                have = float(np.asarray(got, np.float64)[index]) if np.ndim(got) else float(got)
            except Exception:  # noqa: BLE001 - a hint, never a failure
                continue
            if at == have or (np.isfinite(at) and abs(at - have) <= 8 * UNIT_ROUNDOFF[dtype] * max(abs(at), abs(have))):
                out.append(f"the result matches the unstable formula {entry.formula}; use {entry.stable}")
                return out
    return out + [f"stable formula: {entries[0].stable}"]
