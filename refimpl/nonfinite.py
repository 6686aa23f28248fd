"""NaN and inf through a bilinear rule, term by term, whatever zeros the algorithm inserts.

A backward rule such as conv2d's is bilinear: each output element is a sum of
products ``a[k] * b[l]`` over the pairs (k, l) its formula names, its *terms*.
IEEE arithmetic gives, for such a sum,

    out = NaN      if some term is NaN (a NaN factor, or inf * 0), or terms +inf and -inf meet
          +inf     if some term is +inf and none is NaN or -inf       (-inf likewise)
          the sum of the terms otherwise

An efficient algorithm (a GEMM over a stride-dilated gradient, a buffer with
a zero border) also multiplies ``a`` or ``b`` by zeros that are *not* terms:
harmless for finite values, but ``0 * NaN = NaN`` and ``0 * inf = NaN`` put
non-finite values where the formula has none. ``exact`` evaluates the rule
as the formula says, with the same algorithm:

    finite part   F = f(fin(a), fin(b))            fin(v) = v where finite, else 0
    term counts   C = f(ind_1(a), ind_2(b)) + ...  ind(v) = 1 where v has a property, else 0

An inserted zero of the algorithm is 0 in an indicator too, so ``C`` counts
terms only: NaN terms (a NaN with any real element, inf with a real 0), +inf
terms (+inf with a positive element, -inf with a negative one, and the
reverse) and -inf terms, each a sum of four evaluations of ``f`` on 0/1
arrays (a positive count is never rounded to 0). Thirteen evaluations in all,
so callers use it only when the plain evaluation may be wrong (see their
docstrings); on finite input they never call it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["exact"]


_PROPERTIES = {
    "real": lambda v: np.ones(v.shape, dtype=bool),
    "nan": np.isnan,
    "inf": np.isinf,
    "zero": lambda v: v == 0,
    "+inf": np.isposinf,
    "-inf": np.isneginf,
    "pos": lambda v: v > 0,  # +inf included; NaN is neither positive nor negative
    "neg": lambda v: v < 0,
}


def _indicator(v: np.ndarray, prop: str) -> np.ndarray:
    """1 where ``v`` has the property, else 0, in ``v``'s dtype (made when needed: at most a few at a time)."""
    return _PROPERTIES[prop](v).astype(v.dtype)


def exact(f: Callable[..., tuple], a: np.ndarray, *bs: np.ndarray) -> tuple[np.ndarray, ...]:
    """``f(a, *bs)`` with NaN and inf exactly as the terms of its formula give them.

    ``f`` returns a tuple of arrays, each bilinear in ``a`` and one of ``bs``
    (for conv2d: ``grad_x`` in (G, W), ``grad_weight`` in (G, X)). Per output
    element, with the counts of the module docstring:

        NaN   where nan_terms > 0 or (pos_inf_terms > 0 and neg_inf_terms > 0)
        +inf  where pos_inf_terms > 0 only,   -inf where neg_inf_terms > 0 only
        F     elsewhere  (F = f(fin(a), fin(b)): every term there is finite)

        nan_terms     = f(nan_a, real_b) + f(real_a, nan_b) + f(inf_a, zero_b) + f(zero_a, inf_b)
        pos_inf_terms = f(+inf_a, pos_b) + f(-inf_a, neg_b) + f(pos_a, +inf_b) + f(neg_a, -inf_b)
        neg_inf_terms = f(+inf_a, neg_b) + f(-inf_a, pos_b) + f(pos_a, -inf_b) + f(neg_a, +inf_b)
    """
    fin = lambda v: np.where(np.isfinite(v), v, v.dtype.type(0))  # noqa: E731
    result = [np.array(out, copy=True) for out in f(fin(a), *(fin(b) for b in bs))]

    def count(pairs):
        total = None
        for key_a, key_b in pairs:
            outs = f(_indicator(a, key_a), *(_indicator(b, key_b) for b in bs))
            total = list(outs) if total is None else [t + o for t, o in zip(total, outs)]
        return [t > 0 for t in total]

    nan = count([("nan", "real"), ("real", "nan"), ("inf", "zero"), ("zero", "inf")])
    pos = count([("+inf", "pos"), ("-inf", "neg"), ("pos", "+inf"), ("neg", "-inf")])
    neg = count([("+inf", "neg"), ("-inf", "pos"), ("pos", "-inf"), ("neg", "+inf")])
    for out, is_nan, is_pos, is_neg in zip(result, nan, pos, neg):
        out[is_pos] = np.inf
        out[is_neg] = -np.inf
        out[is_nan | (is_pos & is_neg)] = np.nan
    return tuple(result)
