"""The catalogue of classic backward-pass mistakes, one record per mistake.

``oracle.cases.mistake`` says what a mistake is (and what the shared rules of
the scaffolds are); each op family module of ``oracle.cases`` holds its ops'
scaffolds and catalogue entries. This module keeps the import path
``oracle.mistakes`` that ``oracle.zoo`` and ``oracle.diagnosis`` use.
"""

from oracle.cases import MISTAKES, SCAFFOLDS, for_op
from oracle.cases.activations import relu_scaffold, sigmoid_scaffold
from oracle.cases.convolution import conv2d_scaffold
from oracle.cases.dense import flatten_scaffold, linear_scaffold
from oracle.cases.losses import binary_cross_entropy_scaffold, binary_cross_entropy_with_logits_scaffold
from oracle.cases.mistake import Mistake, reference
from oracle.cases.pooling import avg_pool2d_scaffold, max_pool2d_scaffold

__all__ = [
    "MISTAKES",
    "SCAFFOLDS",
    "Mistake",
    "avg_pool2d_scaffold",
    "binary_cross_entropy_scaffold",
    "binary_cross_entropy_with_logits_scaffold",
    "conv2d_scaffold",
    "flatten_scaffold",
    "for_op",
    "linear_scaffold",
    "max_pool2d_scaffold",
    "reference",
    "relu_scaffold",
    "sigmoid_scaffold",
]
