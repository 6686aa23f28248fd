"""What a case is: the op records, the strategies that draw their cases, the edge examples, the classic mistakes.

One module per op family holds everything the harness knows about its ops:
their records (``SPECS``), their Hypothesis strategies (``CASES``), their
explicit edge examples (``EXAMPLES``) and their mistake scaffolds with the
mistakes they catalogue (``SCAFFOLDS``, ``MISTAKES``). The machinery the
families share has modules of its own: ``record`` (``OpSpec`` and its feature
rules), ``blocks`` (the strategies' building blocks and window geometry),
``example`` (the shared example builder), ``mistake`` (``Mistake``, refimpl's
reference functions, the steps the scaffolds share). ``oracle.case`` and
``oracle.values`` (a case as a recipe, the value recipes) stay leaf modules
outside the package.

This module assembles the registries from ``FAMILIES``: adding an op family is
one module plus one line there. ``oracle.ops``, ``oracle.strategies``,
``oracle.examples`` and ``oracle.mistakes`` re-export them under their
historical import paths.
"""

from __future__ import annotations

from typing import Callable

from oracle.case import Case
from oracle.cases import (
    activations, adaptive_pooling, convolution, convolution_nd, dense, heads, losses, normalization, pooling, softmax,
    transposed,
)
from oracle.cases.mistake import Mistake
from oracle.cases.record import OpSpec

#: the op family modules
FAMILIES = (
    convolution, convolution_nd, transposed, pooling, adaptive_pooling, normalization, dense, activations, losses, softmax,
    heads,
)

#: the order the ops are listed in everywhere (reports, test ids, the corpus, the zoo): the contract's;
#: an op not named here comes after these, in ``FAMILIES`` order
ORDER = (
    "conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "sigmoid", "flatten",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "conv1d", "conv3d", "conv_transpose2d", "adaptive_avg_pool2d", "batch_norm", "layer_norm",
    "tanh", "leaky_relu", "gelu", "softmax", "log_softmax", "cross_entropy", "mse_loss",
)


def _rank(op: str) -> int:
    return ORDER.index(op) if op in ORDER else len(ORDER)


def _ordered(items) -> dict:
    """``{op: value}`` from ``(op, value)`` pairs given in family order, sorted (stably) by ``ORDER``."""
    return dict(sorted(items, key=lambda item: _rank(item[0])))


SPECS: dict[str, OpSpec] = _ordered((s.name, s) for family in FAMILIES for s in family.SPECS)
#: op name -> its ``*_cases(dtype=None)`` strategy
CASES: dict[str, Callable] = _ordered(item for family in FAMILIES for item in family.CASES.items())
#: op name -> its explicit examples
EXAMPLES: dict[str, list[Case]] = _ordered(item for family in FAMILIES for item in family.EXAMPLES.items())
#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS: dict[str, Callable] = _ordered(item for family in FAMILIES for item in family.SCAFFOLDS.items())

_CATALOGUE: list[Mistake] = sorted((m for family in FAMILIES for m in family.MISTAKES), key=lambda m: _rank(m.op))
MISTAKES: dict[str, Mistake] = {m.name: m for m in _CATALOGUE}
"""Every catalogued mistake, by name."""

assert len(SPECS) == sum(len(family.SPECS) for family in FAMILIES), "an op in two families"
assert len(MISTAKES) == len(_CATALOGUE), "duplicate mistake names"


def spec(name: str) -> OpSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; the contract has: {', '.join(SPECS)}") from None


def examples_for(op: str, dtype: str) -> list[Case]:
    """The op's explicit examples in ``dtype``."""
    return [case.with_(dtype=dtype) for case in EXAMPLES.get(op, [])]


def for_op(op: str) -> list[Mistake]:
    """The catalogued mistakes of ``op``, in catalogue order."""
    return [m for m in MISTAKES.values() if m.op == op]
