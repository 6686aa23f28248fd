"""Recipes that fill an array of a given shape from a seeded generator.

Each recipe targets one corner of the rules: exact ties (max-pool's tie rule),
exact zeros (relu'(0)), guaranteed gaps (finite differences stay away from
kinks), probabilities at exactly 0 and 1 and logits at +-1e4 (BCE's edges),
constant slices (a normalization group of variance 0) and a large common offset
(the cancellation of a one-pass variance).

Most recipes fill an array of the case's floating dtype. An *index* recipe
(``INDEX_RECIPES``, e.g. ``"class_indices"``) always gives its own dtype
(int64) whatever the case's, and reads the case's other shapes (the number of
classes is the second side of ``input``): ``dtype_of`` says which dtype a
recipe gives, ``make`` takes the case's shapes for it.

In a half-precision case (float16, bfloat16: ``oracle.dtypes``) every recipe's float64 values are brought
within the dtype's range and rounded to it (``make``), so that they are values the implementation can take.

``GAP`` is the smallest distance a ``gapped`` array keeps between any two of its
values and from zero; finite differences use steps far below it (see
``oracle.tolerances``), so no kink is crossed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from oracle import dtypes

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


#: the common offset of an ``offset`` array: |mean| / std = 1e3, so a one-pass variance E[x^2] - E[x]^2 loses
#: 6 digits to cancellation (float32 keeps about 7), the two-pass one none
OFFSET = 1e3


def _offset(shape, rng):
    """Normal values (std 1) around a large common offset ``OFFSET``."""
    return OFFSET + rng.standard_normal(shape)


def _constant_slices(shape, rng, axis):
    """Normal values, with about half of the slices along ``axis`` (and at least one) each one constant value."""
    a = rng.standard_normal(shape)
    if a.size == 0:
        return a
    axis = min(axis, a.ndim - 1)
    n = shape[axis]
    chosen = rng.random(n) < 0.5
    chosen[rng.integers(n)] = True
    index = [slice(None)] * a.ndim
    for i in np.flatnonzero(chosen):
        index[axis] = i
        a[tuple(index)] = rng.standard_normal()
    return a


def _constant_channels(shape, rng):
    """``_constant_slices`` along axis 1, the channels of an (N, C, ...) array: batch_norm groups of variance 0."""
    return _constant_slices(shape, rng, 1)


def _constant_rows(shape, rng):
    """``_constant_slices`` along axis 0: every layer_norm group under a constant leading index has variance 0."""
    return _constant_slices(shape, rng, 0)


def _with_nan(shape, rng):
    """Normal values with a few NaNs (NaN propagation)."""
    a = rng.standard_normal(shape)
    a[rng.random(shape) < 0.15] = np.nan
    return a


def _class_indices(shape, rng, shapes):
    """Class indices in [0, C), C = ``shapes["input"][1]`` (cross_entropy's (N, C) logits): one per target element."""
    try:
        classes = shapes["input"][1]
    except (KeyError, IndexError, TypeError):
        raise ValueError(f"the 'class_indices' recipe needs an input of shape (N, C) among the case's shapes, got {shapes}") from None
    if classes < 1:
        raise ValueError(f"the 'class_indices' recipe needs at least one class, got input shape {shapes['input']}")
    return rng.integers(0, classes, size=shape)


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
    "offset": _offset,
    "constant_channels": _constant_channels,
    "constant_rows": _constant_rows,
}

#: index recipes: name -> (fill(shape, rng, shapes), the dtype they always give, whatever the case's)
INDEX_RECIPES: dict[str, tuple[Callable, np.dtype]] = {
    "class_indices": (_class_indices, np.dtype(np.int64)),
}

#: recipes whose arrays keep finite differences away from every kink of every op
FD_SAFE = frozenset({"gapped", "probabilities_safe", "binary", "soft", "logits"})


def dtype_of(recipe: str, dtype: np.dtype | str) -> np.dtype:
    """The NumPy dtype of an array filled by ``recipe`` in a case of ``dtype``: the case's (as held,
    ``oracle.dtypes.storage``: float32 for bfloat16), or an index recipe's own."""
    if recipe in INDEX_RECIPES:
        return INDEX_RECIPES[recipe][1]
    return dtypes.storage(dtype) if isinstance(dtype, str) else np.dtype(dtype)


def make(recipe: str, shape: tuple[int, ...], dtype: np.dtype | str, rng: np.random.Generator,
         shapes: dict[str, tuple[int, ...] | None] | None = None) -> np.ndarray:
    """An array of ``shape`` filled by ``recipe`` from ``rng``: of ``dtype``, or of an index recipe's own dtype
    (int64; those read ``shapes``, the case's shape of every array).

    ``dtype`` a name of ``oracle.dtypes.ALL`` (or a NumPy dtype): a half-precision one gets the recipe's float64
    values brought into its range (``dtypes.clip``) and rounded to it (``dtypes.round_to``), held in its storage
    dtype (float32 for bfloat16), so that every value is exactly one the implementation can take."""
    if recipe in INDEX_RECIPES:
        fill, own = INDEX_RECIPES[recipe]
        return np.array(fill(tuple(shape), rng, shapes or {}), dtype=own, order="C").reshape(tuple(shape))
    try:
        fill = RECIPES[recipe]
    except KeyError:
        known = ", ".join([*RECIPES, *INDEX_RECIPES])
        raise ValueError(f"unknown value recipe {recipe!r}; known: {known}") from None
    drawn = fill(tuple(shape), rng)
    if isinstance(dtype, str) and dtypes.is_half(dtype):
        held = dtypes.round_to(dtypes.clip(drawn, dtype), dtype)
        return np.array(held, dtype=dtypes.storage(dtype), order="C").reshape(tuple(shape))
    return np.array(drawn, dtype=dtypes.storage(dtype) if isinstance(dtype, str) else dtype, order="C").reshape(tuple(shape))
