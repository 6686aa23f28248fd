"""Hypothesis strategies that draw valid ``Case``s, one per op of the contract.

Every ``*_cases(dtype=None)`` strategy draws a :class:`~oracle.case.Case` that
PyTorch accepts as is: ``torch.nn.functional.<op>(*inputs, **case.config)``
runs and returns exactly ``case.shapes["grad_output"]``. Cases are built from
small public strategies (``pairs``, ``dtypes``, ``seeds``, ``conv_geometry``,
``pool_geometry`` ...) in the style of ``hypothesis.extra.numpy``: each one
draws one thing and says in its docstring what.

Conventions of a drawn case:

* ``kernel_size``, ``stride``, ``padding``, ``dilation`` are ``(h, w)`` tuples
  of Python ints (a pooling ``stride`` may be ``None``: the default, = kernel);
  ``groups`` and ``divisor_override`` are Python ints (or ``None``), flags are
  Python bools.
* ``shapes`` lists the arrays in the op's positional order, ``grad_output``
  last with the forward's output shape; an absent bias is ``None``.
* ``values`` names a recipe of ``oracle.values`` only for arrays that are not
  ``"normal"``.

The corners the rules are most likely to get wrong are drawn on purpose and
labelled with :func:`hypothesis.event` (see them with
``pytest --hypothesis-show-statistics``): strided and dilated convolutions,
groups, 1x1 outputs, kernels wider than the unpadded input, input rows no
window reads, windows that ``ceil_mode`` adds, overlapping pooling windows,
ties for a window's maximum, probabilities at exactly 0 and 1, huge logits.

Shrinking goes towards the plainest case: float64, no padding, stride and
dilation 1, one group, the smallest input, ``"normal"`` values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import event, strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.extra.numpy import array_shapes

from oracle.case import DTYPES, Case
from oracle.values import RECIPES
from refimpl.arguments import window_count

__all__ = [
    "CASES",
    "Geometry",
    "avg_pool2d_cases",
    "binary_cross_entropy_cases",
    "binary_cross_entropy_with_logits_cases",
    "conv2d_cases",
    "conv_channels",
    "conv_geometry",
    "dtypes",
    "flatten_cases",
    "geometry_of",
    "linear_cases",
    "max_pool2d_cases",
    "pairs",
    "pool_geometry",
    "recipes",
    "reductions",
    "relu_cases",
    "seeds",
    "sigmoid_cases",
    "sometimes",
    "spatial_sizes",
]

#: largest input side a convolution case draws (a larger one only when the dilated kernel needs it)
CONV_MAX_SIDE = 16
#: largest input side a pooling case draws (a larger one only when the dilated kernel needs it)
POOL_MAX_SIDE = 12
#: largest side of an elementwise / loss / flatten array
SMALL_SIDE = 4


# --------------------------------------------------------------------------- building blocks


def dtypes() -> st.SearchStrategy[str]:
    """A dtype name of the contract: ``"float64"`` or ``"float32"`` (shrinks to float64)."""
    return st.sampled_from(DTYPES)


def seeds() -> st.SearchStrategy[int]:
    """A seed for ``Case.arrays()``: an integer in ``[0, 2**32 - 1]``."""
    return st.integers(0, 2**32 - 1)


def pairs(min_value: int, max_value: int) -> st.SearchStrategy[tuple[int, int]]:
    """An ``(h, w)`` pair of Python ints, each drawn independently from ``[min_value, max_value]``."""
    return st.tuples(st.integers(min_value, max_value), st.integers(min_value, max_value))


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
    names = [name for name, w in weights.items() for _ in range(w)]
    return st.integers(0, len(names) - 1).map(names.__getitem__)


def reductions() -> st.SearchStrategy[str]:
    """A loss reduction: ``"mean"``, ``"sum"`` or ``"none"`` (shrinks to mean)."""
    return st.sampled_from(("mean", "sum", "none"))


def _dtype_strategy(dtype: str | None) -> st.SearchStrategy[str]:
    if dtype is None:
        return dtypes()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be None or one of {DTYPES}, got {dtype!r}")
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
    """Where the windows of a convolution or pooling call fall, per axis ``(h, w)``.

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
    def output_hw(self) -> tuple[int, int]:
        """Output ``(H, W)``."""
        return (self.count(0), self.count(1))

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
        return all(len(w) > 0 for axis in (0, 1) for w in self.windows(axis))

    def ceil_adds_window(self) -> bool:
        """``ceil_mode`` makes more windows than floor mode would on some axis."""
        return self.ceil_mode and any(self.count(a, True) > self.count(a, False) for a in (0, 1))

    def overhangs(self) -> bool:
        """Some window reaches past the input and its right padding.

        Exactly the windows ``ceil_mode`` adds (every floor-mode window fits in
        the padded input); avg_pool2d clips their divisor there.
        """
        return any(
            s + self.extent(a) > self.input_hw[a] + self.padding[a] for a in (0, 1) for s in self.starts(a)
        )

    def overlapping(self) -> bool:
        """Two windows read the same input element (their gradients add up there)."""
        for axis in (0, 1):
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
        """Some parameter differs between the two axes (catches h/w mix-ups)."""
        fields = (self.input_hw, self.kernel, self.stride, self.padding, self.dilation)
        return any(f[0] != f[1] for f in fields)


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


def spatial_sizes(kernel: int, padding: int, dilation: int, max_side: int) -> st.SearchStrategy[int]:
    """An input length along one axis that fits at least one window: ``size + 2p >= d(k-1) + 1``.

    From ``max(1, d(k-1) + 1 - 2p)`` (shrinks there: the fewest windows, often
    exactly one, and the kernel wider than the unpadded input whenever padding
    allows) up to ``max_side`` (or the minimum, if that is larger).
    """
    low = max(1, dilation * (kernel - 1) + 1 - 2 * padding)
    return st.integers(low, max(low, max_side))


@st.composite
def _input_hw(draw, kernel, padding, dilation, max_side) -> tuple[int, int]:
    return tuple(draw(spatial_sizes(kernel[a], padding[a], dilation[a], max_side)) for a in (0, 1))


@st.composite
def conv_geometry(draw, max_side: int = CONV_MAX_SIDE) -> Geometry:
    """The window geometry of a ``conv2d`` call, each axis drawn independently.

    kernel 1-5, stride 1-4, padding 0-3, dilation 1-3, and an input length
    (``spatial_sizes``) with at least one output position. Output lengths of
    exactly 1, dilated kernels wider than the unpadded input and strides that
    leave rows unread at the end all come up often.
    """
    kernel = draw(pairs(1, 5))
    stride = draw(pairs(1, 4))
    padding = draw(pairs(0, 3))
    dilation = draw(pairs(1, 3))
    input_hw = draw(_input_hw(kernel, padding, dilation, max_side))
    return Geometry(input_hw, kernel, stride, padding, dilation)


def pool_geometry(kind: str, max_side: int = POOL_MAX_SIDE) -> st.SearchStrategy[Geometry]:
    """The window geometry of a ``max_pool2d`` (``kind="max"``) or ``avg_pool2d`` (``kind="avg"``) call.

    Per axis: kernel 1-4; stride 1-4 or left to its default (the kernel);
    padding 0 to ``kernel // 2`` (torch rejects more, also when dilated: it
    checks the undilated kernel); dilation 1-3 for max pooling (avg_pool2d has
    none); ``ceil_mode`` on or off; an input length with at least one window.
    Never a window that reads padding only (see below).
    """
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    # A window made of padding only is left out on purpose:
    # * max_pool2d: torch returns -inf there (the max of nothing) and routes no
    #   gradient, although every argument passes its checks - pytorch/pytorch#114216.
    #   With dilation such a window happens even with pad <= kernel // 2: the taps
    #   can straddle a short input (input length 2, pad 1, kernel 2, dilation 3
    #   reads indices -1 and 2).
    # * avg_pool2d with count_include_pad=False: the divisor is the number of
    #   real elements, 0 for such a window, and torch divides by zero (NaN) -
    #   the bug of pytorch/pytorch#36977, fixed by #41368 by dropping the last
    #   ceil-mode window when it starts in the right padding. Without dilation,
    #   pad <= kernel // 2 plus that rule already exclude it, so for avg this
    #   filter is a guard that never rejects (tests/test_strategies.py checks).
    return _any_pool_geometry(kind, max_side).filter(Geometry.every_window_reads_input)


@st.composite
def _any_pool_geometry(draw, kind: str, max_side: int) -> Geometry:
    kernel = draw(pairs(1, 4))
    default_stride = draw(st.booleans())
    stride = kernel if default_stride else draw(pairs(1, 4))
    dilation = draw(pairs(1, 3)) if kind == "max" else (1, 1)
    if not default_stride and draw(st.booleans()):
        # overlapping windows on one axis (stride < kernel, at least two windows): where the backward must add.
        # Small inputs shrink to a single window per axis, so without this branch overlap is rare.
        axis = draw(st.integers(0, 1))
        k = draw(st.integers(2, 4))
        kernel = tuple(k if a == axis else kernel[a] for a in (0, 1))
        stride = tuple(draw(st.integers(1, k - 1)) if a == axis else stride[a] for a in (0, 1))
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        span = dilation[axis] * (kernel[axis] - 1) + 1 - 2 * padding[axis] + stride[axis]
        other = draw(spatial_sizes(kernel[1 - axis], padding[1 - axis], dilation[1 - axis], max_side))
        along = draw(st.integers(max(1, span), max(span, max_side)))
        input_hw = (along, other) if axis == 0 else (other, along)
    else:
        padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
        input_hw = draw(_input_hw(kernel, padding, dilation, max_side))
    ceil_mode = draw(st.booleans())
    return Geometry(input_hw, kernel, stride, padding, dilation, ceil_mode, default_stride)


def _label_geometry(op: str, g: Geometry) -> None:
    """Record the corners of window geometry ``g`` as events of ``op``."""
    if any(s > 1 and d > 1 for s, d in zip(g.stride, g.dilation)):
        _label(f"{op}: stride>1 & dilation>1")
    if g.output_hw == (1, 1):
        _label(f"{op}: output 1x1")
    elif 1 in g.output_hw:
        _label(f"{op}: output 1 on one axis")
    if any(g.kernel_wider_than_input(a) for a in (0, 1)):
        _label(f"{op}: kernel wider than unpadded input")
    # rows/columns past the last window: floor mode leaves them, unless ceil_mode adds a window for them
    for axis, what in ((0, "rows"), (1, "columns")):
        if g.leftover(axis) and g.count(axis) == g.count(axis, ceil_mode=False):
            _label(f"{op}: unused input {what}")
    if g.unread(0) or g.unread(1):
        _label(f"{op}: some input never read")
    if any(g.padding):
        _label(f"{op}: padding")
    if g.asymmetric():
        _label(f"{op}: h/w differ")


def _label_pool_geometry(op: str, g: Geometry) -> None:
    _label_geometry(op, g)
    if g.ceil_adds_window():
        _label("pool: ceil_mode adds a window")
    if g.overlapping():
        _label("pool: overlapping windows")
    if g.default_stride:
        _label("pool: default stride")


# --------------------------------------------------------------------------- conv2d


@st.composite
def conv_channels(draw, max_groups: int = 4, max_per_group: int = 3) -> tuple[int, int, int]:
    """``(groups, in_channels, out_channels)``: groups 1-``max_groups``, each group 1-``max_per_group`` channels in and out."""
    groups = draw(st.integers(1, max_groups))
    cg = draw(st.integers(1, max_per_group))
    og = draw(st.integers(1, max_per_group))
    return groups, groups * cg, groups * og


@st.composite
def _conv2d_cases(draw, dtype: st.SearchStrategy[str]):
    g = draw(conv_geometry())
    groups, c_in, c_out = draw(conv_channels())
    n = draw(st.integers(1, 4))
    has_bias = draw(st.booleans())
    case = Case(
        op="conv2d",
        shapes={
            "x": (n, c_in, *g.input_hw),
            "weight": (c_out, c_in // groups, *g.kernel),
            "bias": (c_out,) if has_bias else None,
            "grad_output": (n, c_out, *g.output_hw),
        },
        config={"stride": g.stride, "padding": g.padding, "dilation": g.dilation, "groups": groups},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    _label_geometry("conv2d", g)
    if groups > 1:
        _label("conv2d: groups>1")
        if c_in == groups:
            _label("conv2d: depthwise")
    if not has_bias:
        _label("conv2d: no bias")
    _label(f"dtype: {case.dtype}")
    return case


def conv2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``conv2d(x, weight, bias, stride=, padding=, dilation=, groups=)`` case.

    Geometry from ``conv_geometry``; batch 1-4; channels from ``conv_channels``
    (``weight`` is ``(C_out, C_in // groups, kh, kw)``); bias ``(C_out,)`` or
    ``None``; all values ``"normal"``. ``dtype`` None draws it.
    """
    return _conv2d_cases(_dtype_strategy(dtype))


# --------------------------------------------------------------------------- pooling


def _pool_batch() -> st.SearchStrategy[tuple[int, int]]:
    """(N, C) of a pooling input: 1-3 each."""
    return st.tuples(st.integers(1, 3), st.integers(1, 3))


def _max_has_tie(x: np.ndarray, g: Geometry) -> bool:
    """Some window's maximum is attained at two or more of its input elements."""
    if np.isnan(x).any():
        return False
    rows, cols = g.windows(0), g.windows(1)
    for r in rows:
        if len(r) * max(map(len, cols)) < 2:
            continue
        for c in cols:
            block = x[:, :, list(r)][:, :, :, list(c)].reshape(x.shape[0], x.shape[1], -1)
            if block.shape[-1] > 1 and ((block == block.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).any():
                return True
    return False


#: x of max_pool2d: ties often (the tie rule), NaN rarely
MAX_POOL_RECIPES = {"normal": 3, "ties": 5, "gapped": 2, "nan": 1}


@st.composite
def _max_pool2d_cases(draw, dtype: st.SearchStrategy[str]):
    g = draw(pool_geometry("max"))
    n, c = draw(_pool_batch())
    recipe = draw(recipes(MAX_POOL_RECIPES))
    case = Case(
        op="max_pool2d",
        shapes={"x": (n, c, *g.input_hw), "grad_output": (n, c, *g.output_hw)},
        config={
            "kernel_size": g.kernel,
            "stride": g.stride_arg,
            "padding": g.padding,
            "dilation": g.dilation,
            "ceil_mode": g.ceil_mode,
        },
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(x=recipe),
    )
    _label_pool_geometry("max_pool2d", g)
    if recipe == "nan":
        _label("max_pool2d: nan")
    elif _max_has_tie(case.arrays()["x"], g):
        _label("max_pool2d: ties")
    _label(f"dtype: {case.dtype}")
    return case


def max_pool2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``max_pool2d(x, kernel_size=, stride=, padding=, dilation=, ceil_mode=)`` case.

    Geometry from ``pool_geometry("max")`` (no all-padding window); x is
    ``(N, C, H, W)`` with N, C 1-3, filled ``"ties"`` often, ``"normal"`` or
    ``"gapped"`` otherwise and rarely ``"nan"``. ``dtype`` None draws it.
    """
    return _max_pool2d_cases(_dtype_strategy(dtype))


@st.composite
def _avg_pool2d_cases(draw, dtype: st.SearchStrategy[str]):
    g = draw(pool_geometry("avg"))
    n, c = draw(_pool_batch())
    count_include_pad = draw(st.booleans())
    divisor_override = draw(sometimes(st.integers(1, 5)))
    case = Case(
        op="avg_pool2d",
        shapes={"x": (n, c, *g.input_hw), "grad_output": (n, c, *g.output_hw)},
        config={
            "kernel_size": g.kernel,
            "stride": g.stride_arg,
            "padding": g.padding,
            "ceil_mode": g.ceil_mode,
            "count_include_pad": count_include_pad,
            "divisor_override": divisor_override,
        },
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    _label_pool_geometry("avg_pool2d", g)
    if divisor_override is not None:
        _label("avg_pool2d: divisor_override")
    elif any(g.padding):
        _label(f"avg_pool2d: padding {'counted in' if count_include_pad else 'left out of'} the divisor")
    if g.overhangs() and count_include_pad and divisor_override is None:
        _label("avg_pool2d: ceil window past the padding, divisor clipped")
    _label(f"dtype: {case.dtype}")
    return case


def avg_pool2d_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """An ``avg_pool2d(x, kernel_size=, stride=, padding=, ceil_mode=, count_include_pad=, divisor_override=)`` case.

    Geometry from ``pool_geometry("avg")``; x ``(N, C, H, W)`` with N, C 1-3,
    ``"normal"`` values; ``count_include_pad`` either way; ``divisor_override``
    ``None`` mostly, else 1-5. ``dtype`` None draws it.
    """
    return _avg_pool2d_cases(_dtype_strategy(dtype))


# --------------------------------------------------------------------------- linear


@st.composite
def _linear_cases(draw, dtype: st.SearchStrategy[str]):
    n = draw(st.integers(1, 5))
    d_in = draw(st.integers(1, 6))
    d_out = draw(st.integers(1, 6))
    has_bias = draw(st.booleans())
    case = Case(
        op="linear",
        shapes={
            "x": (n, d_in),
            "weight": (d_out, d_in),
            "bias": (d_out,) if has_bias else None,
            "grad_output": (n, d_out),
        },
        config={},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    if not has_bias:
        _label("linear: no bias")
    if 1 in (n, d_in, d_out):
        _label("linear: a dimension of 1")
    _label(f"dtype: {case.dtype}")
    return case


def linear_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``linear(x, weight, bias)`` case: x ``(N, in)``, weight ``(out, in)``, bias ``(out,)`` or ``None``; N 1-5, in/out 1-6."""
    return _linear_cases(_dtype_strategy(dtype))


# --------------------------------------------------------------------------- elementwise and flatten


def _small_shapes(min_dims: int, max_dims: int) -> st.SearchStrategy[tuple[int, ...]]:
    """A shape of ``min_dims``-``max_dims`` dimensions, each 1-``SMALL_SIDE``."""
    return array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=SMALL_SIDE)


#: x of relu: exact zeros (relu'(0)) and ties are the corners
RELU_RECIPES = {"normal": 2, "zeros": 2, "ties": 1, "gapped": 1}
#: x of sigmoid: saturation needs big logits
SIGMOID_RECIPES = {"normal": 1, "logits": 1, "logits_wide": 1}


def _elementwise_cases(op: str, weights: dict[str, int], corner: Callable[[np.ndarray], str | None]):
    @st.composite
    def draw_case(draw, dtype: st.SearchStrategy[str]):
        shape = draw(_small_shapes(1, 4))
        recipe = draw(recipes(weights))
        case = Case(
            op=op,
            shapes={"x": shape, "grad_output": shape},
            config={},
            dtype=draw(dtype),
            seed=draw(seeds()),
            values=_values(x=recipe),
        )
        label = corner(case.arrays()["x"])
        if label:
            _label(label)
        _label(f"{op}: {len(shape)}-d")
        _label(f"dtype: {case.dtype}")
        return case

    return draw_case


def _huge_logits(z: np.ndarray) -> str | None:
    return "logits: |z| >= 1e4" if (np.abs(z) >= 1e4).any() else None


_relu_cases = _elementwise_cases("relu", RELU_RECIPES, lambda x: "relu: exact zeros" if (x == 0).any() else None)
_sigmoid_cases = _elementwise_cases("sigmoid", SIGMOID_RECIPES, _huge_logits)


def relu_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``relu(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"zeros"``, ``"ties"`` or ``"gapped"``."""
    return _relu_cases(_dtype_strategy(dtype))


def sigmoid_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``sigmoid(x)`` case: x of 1-4 dimensions (sides 1-4), ``"normal"``, ``"logits"`` or ``"logits_wide"``."""
    return _sigmoid_cases(_dtype_strategy(dtype))


@st.composite
def _flatten_cases(draw, dtype: st.SearchStrategy[str]):
    shape = draw(_small_shapes(2, 4))
    case = Case(
        op="flatten",
        shapes={"x": shape, "grad_output": (shape[0], math.prod(shape[1:]))},
        config={},
        dtype=draw(dtype),
        seed=draw(seeds()),
    )
    _label(f"flatten: {len(shape)}-d")
    _label(f"dtype: {case.dtype}")
    return case


def flatten_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``flatten(x)`` case (``torch.flatten(x, 1)``): x of 2-4 dimensions (sides 1-4), grad_output ``(N, prod(rest))``."""
    return _flatten_cases(_dtype_strategy(dtype))


# --------------------------------------------------------------------------- losses


TARGET_RECIPES = {"binary": 1, "soft": 1}
BCE_RECIPES = {"probabilities_safe": 1, "probabilities_edges": 1}
BCE_LOGITS_RECIPES = {"logits": 1, "logits_wide": 1}


def _loss_cases(op: str, input_weights: dict[str, int]):
    @st.composite
    def draw_case(draw, dtype: st.SearchStrategy[str]):
        shape = draw(_small_shapes(1, 3))
        reduction = draw(reductions())
        input_recipe = draw(recipes(input_weights))
        target_recipe = draw(recipes(TARGET_RECIPES))
        case = Case(
            op=op,
            shapes={"input": shape, "target": shape, "grad_output": shape if reduction == "none" else ()},
            config={"reduction": reduction},
            dtype=draw(dtype),
            seed=draw(seeds()),
            values=_values(input=input_recipe, target=target_recipe),
        )
        arrays = case.arrays()
        p, t = arrays["input"], arrays["target"]
        if op == "binary_cross_entropy":
            edge = (p == 0) | (p == 1)
            if edge.any():
                _label("bce: p at 0 or 1")
                if (edge & (p != t)).any():
                    _label("bce: p at 0 or 1, target disagrees")
        else:
            label = _huge_logits(p)
            if label:
                _label(label)
        _label(f"{op}: reduction={reduction}, target {target_recipe}")
        _label(f"dtype: {case.dtype}")
        return case

    return draw_case


_bce_cases = _loss_cases("binary_cross_entropy", BCE_RECIPES)
_bce_logits_cases = _loss_cases("binary_cross_entropy_with_logits", BCE_LOGITS_RECIPES)


def binary_cross_entropy_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``binary_cross_entropy(input, target, reduction=)`` case.

    input and target share a shape of 1-3 dimensions (sides 1-4); input
    ``"probabilities_safe"`` or ``"probabilities_edges"`` (exact 0s and 1s),
    target ``"binary"`` or ``"soft"``; reduction mean/sum (grad_output ``()``)
    or none (grad_output of input's shape). ``dtype`` None draws it.
    """
    return _bce_cases(_dtype_strategy(dtype))


def binary_cross_entropy_with_logits_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``binary_cross_entropy_with_logits(input, target, reduction=)`` case.

    As ``binary_cross_entropy_cases``, with input ``"logits"`` or
    ``"logits_wide"`` (+-1e4 and beyond).
    """
    return _bce_logits_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES: dict[str, Callable[..., st.SearchStrategy[Case]]] = {
    "conv2d": conv2d_cases,
    "max_pool2d": max_pool2d_cases,
    "avg_pool2d": avg_pool2d_cases,
    "linear": linear_cases,
    "relu": relu_cases,
    "sigmoid": sigmoid_cases,
    "flatten": flatten_cases,
    "binary_cross_entropy": binary_cross_entropy_cases,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits_cases,
}
