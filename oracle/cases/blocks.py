"""The building blocks of the strategies that draw ``Case``s (``oracle.strategies`` re-exports the public ones).

Each one draws one thing and says in its docstring what: a dtype, a seed, an
``(h, w)`` pair, a value recipe, a loss reduction, an input length that fits at
least one window. ``Geometry`` says where the windows of a convolution or
pooling call fall, and ``_label_geometry`` records its corners as Hypothesis
events. Each op's own strategy lives with its record in its family module.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from hypothesis import event, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.extra.numpy import array_shapes

from oracle.case import DTYPES, Case
from oracle.dtypes import ALL as ALL_DTYPES
from oracle.values import RECIPES
from refimpl.arguments import window_count


#: largest side of an elementwise / loss / flatten array
SMALL_SIDE = 4


# --------------------------------------------------------------------------- building blocks


def reused(factory):
    """The strategy ``factory(*args)`` made once per distinct arguments and reused (as Hypothesis' own ``cacheable``).

    Strategies are immutable, and the op strategies call these factories inside every draw: a fresh object
    would be validated (and its properties computed) again at each draw, a large share of the drawing time.
    The draws themselves do not change.
    """
    return functools.lru_cache(maxsize=None)(factory)



@reused
def dtypes() -> st.SearchStrategy[str]:
    """A dtype name of the contract: ``"float64"`` or ``"float32"`` (shrinks to float64)."""
    return st.sampled_from(DTYPES)


@reused
def seeds() -> st.SearchStrategy[int]:
    """A seed for ``Case.arrays()``: an integer in ``[0, 2**32 - 1]``."""
    return st.integers(0, 2**32 - 1)


@reused
def pairs(min_value: int, max_value: int) -> st.SearchStrategy[tuple[int, int]]:
    """An ``(h, w)`` pair of Python ints, each drawn independently from ``[min_value, max_value]``."""
    return tuples(2, min_value, max_value)


@reused
def tuples(rank: int, min_value: int, max_value: int) -> st.SearchStrategy[tuple[int, ...]]:
    """A ``rank``-tuple of Python ints (one per spatial axis), each drawn independently from ``[min_value, max_value]``."""
    return st.tuples(*(st.integers(min_value, max_value) for _ in range(rank)))


@reused
def sometimes(strategy: st.SearchStrategy, one_in: int = 4) -> st.SearchStrategy:
    """``None`` most of the time; a value of ``strategy`` about once in ``one_in`` draws.

    Shrinks to ``None``.
    """

    if one_in < 2:
        raise ValueError(f"one_in must be at least 2, got {one_in!r}")

    @st.composite
    def draw_sometimes(draw):
        return draw(strategy) if draw(st.integers(0, one_in - 1)) == one_in - 1 else None

    return draw_sometimes()


def recipes(weights: dict[str, int]) -> st.SearchStrategy[str]:
    """A value recipe of ``oracle.values``, ``name`` drawn with relative weight ``weights[name]``.

    Shrinks to the first name (list ``"normal"`` first).
    """
    unknown = set(weights) - set(RECIPES)
    if unknown:
        raise ValueError(f"unknown value recipes {sorted(unknown)}; known: {', '.join(RECIPES)}")
    if not weights or min(weights.values()) < 1:
        raise ValueError(f"recipe weights must be a non-empty mapping to positive ints, got {weights!r}")
    return _weighted(tuple(weights.items()))


@reused
def _weighted(weights: tuple[tuple[str, int], ...]) -> st.SearchStrategy[str]:
    names = tuple(name for name, w in weights for _ in range(w))
    return st.integers(0, len(names) - 1).map(names.__getitem__)


@reused
def reductions() -> st.SearchStrategy[str]:
    """A loss reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shrinks to mean)."""
    return st.sampled_from(("mean", "sum", "none"))


def _dtype_strategy(dtype: str | None) -> st.SearchStrategy[str]:
    if dtype is None:
        return dtypes()
    if dtype not in ALL_DTYPES:  # float16 and bfloat16 only when asked for by name
        raise ValueError(f"dtype must be None or one of {ALL_DTYPES}, got {dtype!r}")
    return st.just(dtype)


def _label(text: str) -> None:
    """``hypothesis.event(text)`` when drawing inside a test (``find``/``example`` included), else nothing."""
    if currently_in_test_context():
        event(text)


def _values(**recipe_of: str) -> dict[str, str]:
    """The ``values`` field of a case: only the arrays that are not ``"normal"``."""
    return {name: recipe for name, recipe in recipe_of.items() if recipe != "normal"}


# --------------------------------------------------------------------------- window geometry


@dataclass(frozen=True)
class Geometry:
    """Where the windows of a convolution or pooling call fall, per spatial axis (``(h, w)`` in 2-D; any rank).

    ``stride`` is the effective stride; ``default_stride`` says the call leaves
    it to its default (pooling: ``stride=None``, meaning the kernel size).
    Indices are input coordinates: window ``i`` starts at ``i*stride - padding``
    and its tap ``j`` reads input index ``i*stride - padding + j*dilation``
    (outside ``[0, size)`` it reads padding).
    """

    input_hw: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False
    default_stride: bool = False

    def extent(self, axis: int) -> int:
        """Span of the dilated kernel along ``axis``: ``d*(k-1) + 1``."""
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def count(self, axis: int, ceil_mode: bool | None = None) -> int:
        """Number of windows along ``axis`` (torch's rule, ``refimpl.arguments.window_count``)."""
        ceil = self.ceil_mode if ceil_mode is None else ceil_mode
        return window_count(
            self.input_hw[axis], self.kernel[axis], self.stride[axis], self.padding[axis], self.dilation[axis], ceil
        )

    @property
    def rank(self) -> int:
        """The number of spatial axes."""
        return len(self.input_hw)

    @property
    def output_hw(self) -> tuple[int, ...]:
        """Output size per axis (``(H, W)`` in 2-D)."""
        return tuple(self.count(a) for a in range(self.rank))

    @property
    def stride_arg(self) -> tuple[int, int] | None:
        """The ``stride`` the call passes: ``None`` when left to its default."""
        return None if self.default_stride else self.stride

    def starts(self, axis: int) -> list[int]:
        """Input index of each window's first tap along ``axis`` (negative: in the left padding)."""
        return [i * self.stride[axis] - self.padding[axis] for i in range(self.count(axis))]

    def windows(self, axis: int) -> list[tuple[int, ...]]:
        """For each window along ``axis``, the input indices (padding left out) its taps read."""
        size, k, d = self.input_hw[axis], self.kernel[axis], self.dilation[axis]
        return [tuple(t for t in range(s, s + k * d, d) if 0 <= t < size) for s in self.starts(axis)]

    def every_window_reads_input(self) -> bool:
        """Every window, on both axes, has at least one tap on a real input element (not all padding)."""
        return all(len(w) > 0 for axis in range(self.rank) for w in self.windows(axis))

    def ceil_adds_window(self) -> bool:
        """``ceil_mode`` makes more windows than floor mode would on some axis."""
        return self.ceil_mode and any(self.count(a, True) > self.count(a, False) for a in range(self.rank))

    def overhangs(self) -> bool:
        """Some window reaches past the input and its right padding.

        Exactly the windows ``ceil_mode`` adds (every floor-mode window fits in
        the padded input); avg_pool2d clips their divisor there.
        """
        return any(
            s + self.extent(a) > self.input_hw[a] + self.padding[a] for a in range(self.rank) for s in self.starts(a)
        )

    def overlapping(self) -> bool:
        """Two windows read the same input element (their gradients add up there)."""
        for axis in range(self.rank):
            seen: set[int] = set()
            for w in self.windows(axis):
                if seen.intersection(w):
                    return True
                seen.update(w)
        return False

    def leftover(self, axis: int) -> int:
        """Rows (``axis`` 0) or columns left over after the last floor-mode window: ``(H + 2p - d(k-1) - 1) % s``."""
        span = self.input_hw[axis] + 2 * self.padding[axis] - self.extent(axis)
        return span % self.stride[axis]

    def unread(self, axis: int) -> list[int]:
        """Input indices along ``axis`` that no window reads (their input gradient is 0)."""
        read = {t for w in self.windows(axis) for t in w}
        return [t for t in range(self.input_hw[axis]) if t not in read]

    def kernel_wider_than_input(self, axis: int) -> bool:
        """The dilated kernel is longer than the unpadded input along ``axis`` (it fits only thanks to padding)."""
        return self.extent(axis) > self.input_hw[axis]

    def asymmetric(self) -> bool:
        """Some parameter differs between two axes (catches h/w mix-ups)."""
        fields = (self.input_hw, self.kernel, self.stride, self.padding, self.dilation)
        return any(len(set(f)) > 1 for f in fields)


def geometry_of(case: Case) -> Geometry:
    """The window geometry of a ``conv2d``, ``max_pool2d`` or ``avg_pool2d`` case."""
    config = case.config
    if case.op == "conv2d":
        kernel = tuple(case.shapes["weight"][2:])
    elif case.op in ("max_pool2d", "avg_pool2d"):
        kernel = tuple(config["kernel_size"])
    else:
        raise ValueError(f"op {case.op!r} has no windows")
    stride = config.get("stride")
    return Geometry(
        input_hw=tuple(case.shapes["x"][-2:]),
        kernel=kernel,
        stride=kernel if stride is None else tuple(stride),
        padding=tuple(config.get("padding", (0, 0))),
        dilation=tuple(config.get("dilation", (1, 1))),
        ceil_mode=bool(config.get("ceil_mode", False)),
        default_stride=stride is None,
    )


@reused
def spatial_sizes(kernel: int, padding: int, dilation: int, max_side: int) -> st.SearchStrategy[int]:
    """An input length along one axis that fits at least one window: ``size + 2p >= d(k-1) + 1``.

    From ``max(1, d(k-1) + 1 - 2p)`` (shrinks there: the fewest windows, often
    exactly one, and the kernel wider than the unpadded input whenever padding
    allows) up to ``max_side`` (or the minimum, if that is larger).
    """
    low = max(1, dilation * (kernel - 1) + 1 - 2 * padding)
    return st.integers(low, max(low, max_side))


@reused
@st.composite
def _input_hw(draw, kernel, padding, dilation, max_side) -> tuple[int, ...]:
    """An input size per axis (as many as ``kernel`` has), each from ``spatial_sizes``."""
    return tuple(draw(spatial_sizes(kernel[a], padding[a], dilation[a], max_side)) for a in range(len(kernel)))


#: the axes' names in the corners' labels, per spatial rank (2-D keeps the historical "rows"/"columns", "h/w")
_AXIS_NAMES = {1: ("positions",), 2: ("rows", "columns"), 3: ("planes", "rows", "columns")}
_AXIS_LETTERS = {1: ("l",), 2: ("h", "w"), 3: ("d", "h", "w")}


def _label_geometry(op: str, g: Geometry) -> None:
    """Record the corners of window geometry ``g`` as events of ``op``."""
    if any(s > 1 and d > 1 for s, d in zip(g.stride, g.dilation)):
        _label(f"{op}: stride>1 & dilation>1")
    if set(g.output_hw) == {1}:
        _label(f"{op}: output {'x'.join('1' * g.rank)}")
    elif 1 in g.output_hw:
        _label(f"{op}: output 1 on one axis")
    if any(g.kernel_wider_than_input(a) for a in range(g.rank)):
        _label(f"{op}: kernel wider than unpadded input")
    # rows/columns past the last window: floor mode leaves them, unless ceil_mode adds a window for them
    for axis, what in enumerate(_AXIS_NAMES[g.rank]):
        if g.leftover(axis) and g.count(axis) == g.count(axis, ceil_mode=False):
            _label(f"{op}: unused input {what}")
    if any(g.unread(a) for a in range(g.rank)):
        _label(f"{op}: some input never read")
    if any(g.padding):
        _label(f"{op}: padding")
    if g.asymmetric():
        _label(f"{op}: {'/'.join(_AXIS_LETTERS[g.rank])} differ")


@reused
def _small_shapes(min_dims: int, max_dims: int) -> st.SearchStrategy[tuple[int, ...]]:
    """A shape of ``min_dims``-``max_dims`` dimensions, each 1-``SMALL_SIDE``."""
    return array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=SMALL_SIDE)


def _huge_logits(z: np.ndarray) -> str | None:
    return "logits: |z| >= 1e4" if (np.abs(z) >= 1e4).any() else None
