"""Explicit edge cases and known bugs from the field, run as ``@example``s before any drawn case.

Each op family module of ``oracle.cases`` holds its ops' examples and their
builder (``conv``, ``pool``, ``bce``; ``elementwise`` is shared, in
``oracle.cases.example``, with the notes on issue numbers). This module keeps
the import path ``oracle.examples``.
"""

from oracle.cases import EXAMPLES, examples_for
from oracle.cases.convolution import conv
from oracle.cases.example import elementwise
from oracle.cases.losses import bce
from oracle.cases.pooling import pool

__all__ = ["EXAMPLES", "bce", "conv", "elementwise", "examples_for", "pool"]
