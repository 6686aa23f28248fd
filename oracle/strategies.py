"""Hypothesis strategies that draw valid ``Case``s, one per op of the contract.

Every ``*_cases(dtype=None)`` strategy draws a :class:`~oracle.case.Case` that
PyTorch accepts as is: ``torch.nn.functional.<op>(*inputs, **case.config)``
runs and returns exactly ``case.shapes["grad_output"]``. Cases are built from
small public strategies (``pairs``, ``dtypes``, ``seeds``, ``conv_geometry``,
``pool_geometry`` ...) in the style of ``hypothesis.extra.numpy``: each one
draws one thing and says in its docstring what. Each op's strategy lives with its
record in its family module of ``oracle.cases`` (the building blocks in
``oracle.cases.blocks``); this module gathers the public ones.

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

from oracle.cases import CASES
from oracle.cases.activations import RELU_RECIPES, SIGMOID_RECIPES, relu_cases, sigmoid_cases
from oracle.cases.blocks import (
    SMALL_SIDE, Geometry, dtypes, geometry_of, pairs, recipes, reductions, seeds, sometimes, spatial_sizes,
)
from oracle.cases.convolution import CONV_MAX_SIDE, conv2d_cases, conv_channels, conv_geometry
from oracle.cases.dense import flatten_cases, linear_cases
from oracle.cases.losses import (
    BCE_LOGITS_RECIPES, BCE_RECIPES, TARGET_RECIPES, binary_cross_entropy_cases, binary_cross_entropy_with_logits_cases,
)
from oracle.cases.pooling import MAX_POOL_RECIPES, POOL_MAX_SIDE, avg_pool2d_cases, max_pool2d_cases, pool_geometry

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
