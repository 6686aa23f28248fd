"""Recipes that fill an array of a given shape from a seeded generator.

Each recipe targets one corner of the rules: exact ties (max-pool's tie rule),
exact zeros (relu'(0)), guaranteed gaps (finite differences stay away from
kinks), probabilities at exactly 0 and 1 and logits at +-1e4 (BCE's edges).

``GAP`` is the smallest distance a ``gapped`` array keeps between any two of its
values and from zero; finite differences use steps far below it (see
``oracle.tolerances``), so no kink is crossed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

GAP = 0.05
#: the smallest distance from a ``probabilities_safe`` value to 0 or 1
PROBABILITY_MARGIN = 0.05


def _normal(shape, rng):
    return rng.standard_normal(shape)


def _ones(shape, rng):
    """All ones: the inputs of several field bug reports."""
    return np.ones(shape)


def _ties(shape, rng):
    """Small integers in [-2, 2]: many exact ties and exact zeros."""
    return rng.integers(-2, 3, size=shape).astype(np.float64)


def _zeros(shape, rng):
    """Normal values with about a third set to exactly 0."""
    a = rng.standard_normal(shape)
    a[rng.random(shape) < 0.33] = 0.0
    return a


def _gapped(shape, rng):
    """Distinct values, pairwise at least 2*GAP apart and at least GAP from 0 (a shuffled grid)."""
    n = int(np.prod(shape))
    grid = (np.arange(n) - n // 2 + 0.5) * (2 * GAP)
    return rng.permutation(grid).reshape(shape)


def _probabilities_safe(shape, rng):
    """Probabilities in [PROBABILITY_MARGIN, 1 - PROBABILITY_MARGIN]."""
    return rng.uniform(PROBABILITY_MARGIN, 1 - PROBABILITY_MARGIN, size=shape)


def _probabilities_edges(shape, rng):
    """Probabilities with exact 0s and 1s and values within 1e-8 of them, among ordinary ones."""
    a = rng.uniform(0.0, 1.0, size=shape)
    pick = rng.integers(0, 5, size=shape)
    a[pick == 0] = 0.0
    a[pick == 1] = 1.0
    a[pick == 2] = rng.choice([1e-8, 1 - 1e-8, 1e-300], size=int((pick == 2).sum()))
    return a


def _binary(shape, rng):
    return rng.integers(0, 2, size=shape).astype(np.float64)


def _soft(shape, rng):
    return rng.uniform(0.0, 1.0, size=shape)


def _logits(shape, rng):
    return 3.0 * rng.standard_normal(shape)


def _logits_wide(shape, rng):
    """Logits spread over +-1e4, with the extremes +-1e4 themselves and some beyond (+-1e5)."""
    a = rng.uniform(-1e4, 1e4, size=shape)
    pick = rng.integers(0, 6, size=shape)
    a[pick == 0] = 1e4
    a[pick == 1] = -1e4
    a[pick == 2] = rng.choice([-1e5, 1e5, -50.0, 50.0], size=int((pick == 2).sum()))
    return a


def _tails(shape, rng):
    """Magnitudes log-uniform over [1e-6, 50] with random signs, and a sixth of them at +-10, +-20 or +-40.

    Near 0, through the middle and far in the tails of the smooth activations: tanh saturates (rounds to
    +-1 beyond |x| ~ 19 in float64, ~ 9 in float32), gelu's exp(-x^2/2) underflows (|x| > ~38 in float64,
    ~ 14 in float32) and its 1 + erf(x/sqrt2) cancels to 0 (x < -8.4 in float64, -5.5 in float32).
    """
    a = np.exp(rng.uniform(np.log(1e-6), np.log(50.0), size=shape)) * rng.choice([-1.0, 1.0], size=shape)
    pick = rng.random(shape) < 1 / 6
    a[pick] = rng.choice([-40.0, -20.0, -10.0, 10.0, 20.0, 40.0], size=int(pick.sum()))
    return a


def _with_nan(shape, rng):
    """Normal values with a few NaNs (NaN propagation)."""
    a = rng.standard_normal(shape)
    a[rng.random(shape) < 0.15] = np.nan
    return a


RECIPES: dict[str, Callable] = {
    "normal": _normal,
    "ones": _ones,
    "ties": _ties,
    "zeros": _zeros,
    "gapped": _gapped,
    "probabilities_safe": _probabilities_safe,
    "probabilities_edges": _probabilities_edges,
    "binary": _binary,
    "soft": _soft,
    "logits": _logits,
    "logits_wide": _logits_wide,
    "tails": _tails,
    "nan": _with_nan,
}

#: recipes whose arrays keep finite differences away from every kink of every op
FD_SAFE = frozenset({"gapped", "probabilities_safe", "binary", "soft", "logits"})


def make(recipe: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """An array of ``shape`` and ``dtype`` filled by ``recipe`` from ``rng``."""
    try:
        fill = RECIPES[recipe]
    except KeyError:
        raise ValueError(f"unknown value recipe {recipe!r}; known: {', '.join(RECIPES)}") from None
    return np.array(fill(tuple(shape), rng), dtype=dtype, order="C").reshape(tuple(shape))
