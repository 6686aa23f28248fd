"""The adaptive pooling family: ``adaptive_avg_pool2d``.

Its record (``SPECS``), the strategy that draws its cases
(``adaptive_avg_pool2d_cases``), its edge examples (``EXAMPLES``), and its
classic backward mistakes (``adaptive_avg_pool2d_scaffold`` and the
``MISTAKES`` it catalogues).

torch's bins, per axis (H pooled to Ho rows): output row i averages input rows
``floor(i H / Ho) <= h < ceil((i + 1) H / Ho)``; they overlap when Ho does not
divide H and repeat rows when Ho > H.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _label, _values, recipes, reused, seeds
from oracle.cases.mistake import Mistake, _validated, mistakes
from oracle.cases.record import OpSpec
from refimpl.adaptive_pooling import _check as _checked_output_size


# --------------------------------------------------------------------------- geometry


def bins(size: int, out: int) -> list[tuple[int, int]]:
    """torch's bins along one axis: ``[(start, end)]``, ``start = floor(i size / out)``, ``end = ceil((i + 1) size / out)``."""
    return [((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out)]


def _axes(case: Case) -> list[tuple[int, int]]:
    """``[(H, Ho), (W, Wo)]`` of a case."""
    return list(zip(case.shapes["x"][-2:], case.config["output_size"]))


def overlapping(case: Case) -> bool:
    """Some input row or column lies in two bins (the output does not divide the input on that axis)."""
    return any(size % out != 0 and out < size for size, out in _axes(case))


def larger(case: Case) -> bool:
    """The output is larger than the input on some axis (bins repeat input rows or columns)."""
    return any(out > size for size, out in _axes(case))


def _fan_in(case: Case) -> int:
    """The largest sum: a bin's elements (forward) or the bins an input element lies in (backward), plus the division."""
    most = 1
    for size, out in _axes(case):
        spans = bins(size, out)
        per_bin = max(end - start for start, end in spans)
        per_element = max(sum(start <= h < end for start, end in spans) for h in range(size))
        most *= max(per_bin, per_element)
    return most + 1


# --------------------------------------------------------------------------- records


SPECS: list[OpSpec] = [
    OpSpec(
        "adaptive_avg_pool2d",
        inputs=("x",),
        differentiable=("x",),
        config=("output_size",),
        linear_in=("x",),
        fan_in=_fan_in,
        features=(("overlapping bins", overlapping), ("output larger than input", larger)),
    ),
]


# --------------------------------------------------------------------------- strategies


#: x of adaptive_avg_pool2d: the op is linear, values matter only for ties in the magnitudes
ADAPTIVE_RECIPES = {"normal": 3, "ties": 1}
#: the largest input side drawn
MAX_SIDE = 6


@reused
def _side_and_output() -> st.SearchStrategy[tuple[int, int]]:
    """``(size, out)`` along one axis: out drawn as any of 1-6, equal to the size, 1, or larger than the size."""

    @st.composite
    def draw_axis(draw):
        size = draw(st.integers(1, MAX_SIDE))
        kind = draw(st.sampled_from(("any", "equal", "one", "larger")))
        out = {"any": lambda: draw(st.integers(1, MAX_SIDE)), "equal": lambda: size, "one": lambda: 1,
               "larger": lambda: draw(st.integers(size + 1, size + 3))}[kind]()
        return size, out

    return draw_axis()


@st.composite
def _adaptive_cases(draw, dtype: st.SearchStrategy[str]):
    (h, ho), (w, wo) = draw(_side_and_output()), draw(_side_and_output())
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    case = Case(
        op="adaptive_avg_pool2d",
        shapes={"x": (n, c, h, w), "grad_output": (n, c, ho, wo)},
        config={"output_size": (ho, wo)},
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(x=draw(recipes(ADAPTIVE_RECIPES))),
    )
    for label, hit in (
        ("overlapping bins", overlapping(case)),
        ("output larger than input", larger(case)),
        ("output 1x1", (ho, wo) == (1, 1)),
        ("output equal to input", (ho, wo) == (h, w)),
        ("output divides input", h % ho == 0 and w % wo == 0 and (ho, wo) != (h, w)),
        ("h/w differ", (h, ho) != (w, wo)),
    ):
        if hit:
            _label(f"adaptive_avg_pool2d: {label}")
    _label(f"dtype: {case.dtype}")
    return case


def adaptive_avg_pool2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """An ``adaptive_avg_pool2d(x, output_size=(Ho, Wo))`` case.

    x is (N, C, H, W) with N, C in 1-2 and H, W in 1-6 (``"normal"`` or ``"ties"`` values); per axis the output
    size is drawn as any of 1-6, equal to the input's, 1, or 1-3 larger than the input's: so bins overlap (the
    output does not divide the input), repeat input rows (output larger), cover the whole input (1x1) or are the
    identity. torch requires H, W >= 1 and an output size >= 1: nothing else is left out.
    """
    return _adaptive_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"adaptive_avg_pool2d": adaptive_avg_pool2d_cases}


# --------------------------------------------------------------------------- examples


def adaptive(x_shape, output_size, values=None, seed=0) -> Case:
    g = tuple(x_shape[:-2]) + tuple(output_size)
    return Case("adaptive_avg_pool2d", {"x": x_shape, "grad_output": g}, {"output_size": tuple(output_size)},
                seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "adaptive_avg_pool2d": [
        adaptive((1, 1, 5, 7), (3, 4)),   # overlapping bins on both axes
        adaptive((2, 1, 2, 3), (5, 4)),   # output larger than input
        adaptive((1, 2, 4, 6), (1, 1)),   # global average
        adaptive((1, 1, 3, 4), (3, 4)),   # the identity
        adaptive((1, 1, 6, 4), (3, 2), values={"x": "ties"}),  # output divides input: avg_pool2d with k = s
    ],
}


# --------------------------------------------------------------------------- mistakes


def _mistaken_bins(size: int, out: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """The 0/1 bin matrix (out x size) and bin sizes: torch's bins, or with rule "floor" ``[floor(i size/out),
    floor((i+1) size/out))``: non-overlapping, and empty where out > size."""
    i = np.arange(out)
    start = (i * size) // out
    end = ((i + 1) * size) // out if rule == "floor" else -((-(i + 1) * size) // out)
    h = np.arange(size)
    return (h >= start[:, None]) & (h < end[:, None]), end - start


def adaptive_avg_pool2d_scaffold(grad_output, x, *, output_size, bins="right", divisor="right"):
    """adaptive_avg_pool2d_backward: every bin's ``G / divisor`` added to each of its elements.

    bins     "right" torch's ``[floor(i H/Ho), ceil((i+1) H/Ho))``; "floor" ``[floor(i H/Ho), floor((i+1) H/Ho))``
             (non-overlapping; an empty bin spreads nothing)
    divisor  "right" each bin's own size; "nominal" the mean bin size ``(H/Ho)(W/Wo)`` for every bin
    """
    _validated("adaptive_avg_pool2d", grad_output, [x], {"output_size": output_size})
    (h, w), (ho, wo) = x.shape[-2:], _checked_output_size(x, output_size)
    b_h, c_h = _mistaken_bins(h, ho, bins)
    b_w, c_w = _mistaken_bins(w, wo, bins)
    size = np.full((ho, wo), (h / ho) * (w / wo)) if divisor == "nominal" else np.outer(c_h, c_w).astype(np.float64)
    dt = x.dtype.type
    share = np.where(size > 0, grad_output / np.where(size > 0, size, 1).astype(x.dtype), dt(0))
    grad = np.einsum("ih,...ij,jw->...hw", b_h.astype(x.dtype), share, b_w.astype(x.dtype))
    return np.ascontiguousarray(grad, dtype=x.dtype)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"adaptive_avg_pool2d": adaptive_avg_pool2d_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    ("adaptive_floor_bins", "adaptive_avg_pool2d",
     "the bins computed by floor division [floor(i H/Ho), floor((i+1) H/Ho)): non-overlapping, wrong where the "
     "output does not divide the input (torch's end is ceil((i+1) H/Ho))",
     dict(bins="floor")),
    ("adaptive_nominal_divisor", "adaptive_avg_pool2d",
     "every bin divided by the nominal bin size (H/Ho)(W/Wo) instead of its own size",
     dict(divisor="nominal")),
])
