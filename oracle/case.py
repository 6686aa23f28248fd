"""A Case: one call of one op of the contract, small enough to paste into a bug report.

A case is stored as its *recipe* (op, shapes, configuration, dtype, value kind,
seed), not as its arrays: the arrays are regenerated deterministically from the
recipe by ``Case.arrays()``. That keeps Hypothesis shrinking on the structure
(shapes, strides, ...) and makes every counterexample a one-liner that anyone
can rebuild with ``eval(repr(case))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from oracle import dtypes, values

#: the default dtypes; ``oracle.dtypes.HALF`` (float16, bfloat16) on request
DTYPES = dtypes.DTYPES


@dataclass(frozen=True)
class Case:
    """One drawn call: ``op(*inputs, **config)`` and an output gradient, all built from ``seed``.

    ``shapes`` maps each array argument (in the op's positional order, output
    gradient last as ``grad_output``) to its shape, or to ``None`` for an
    optional argument left out (``bias=None``). ``values`` names the recipe of
    ``oracle.values`` that fills each array (e.g. ``{"x": "ties"}``); arrays not
    named there are ``"normal"``. An index recipe (``"class_indices"``) gives
    int64 whatever ``dtype`` is (``dtype_of``): ``with_(dtype=...)`` keeps it int64.
    """

    op: str
    shapes: dict[str, tuple[int, ...] | None]
    config: dict[str, Any]
    dtype: str = "float64"
    seed: int = 0
    values: dict[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:  # dict fields: hash the repr, which is the identity of a case
        return hash(repr(self))

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray | None]:
        rng = np.random.default_rng(self.seed)
        out: dict[str, np.ndarray | None] = {}
        for name, shape in self.shapes.items():
            if shape is None:
                out[name] = None
            else:
                out[name] = values.make(self.values.get(name, "normal"), shape, self.dtype, rng, self.shapes)
        return out

    def dtype_of(self, name: str) -> np.dtype:
        """The NumPy dtype of the case's array ``name``: the case's ``dtype`` (as held: float32 for bfloat16,
        ``oracle.dtypes``), or int64 for class indices."""
        return values.dtype_of(self.values.get(name, "normal"), self.dtype)

    def arrays(self) -> dict[str, np.ndarray | None]:
        """Fresh copies of every array of the case (callers may hand them to untrusted code)."""
        return {k: (None if v is None else v.copy()) for k, v in self._arrays.items()}

    def with_(self, **changes) -> "Case":
        """A copy of the case with some fields replaced (``case.with_(dtype="float64")``)."""
        fields = dict(op=self.op, shapes=self.shapes, config=self.config, dtype=self.dtype, seed=self.seed, values=self.values)
        fields.update(changes)
        return Case(**fields)

    def reproduction(self) -> str:
        """Python lines that rebuild this exact call, for a bug report."""
        shapes = ", ".join(f"{k}={v}" for k, v in self.shapes.items())
        config = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        own = ", ".join(f"{k} {self.dtype_of(k)}" for k, v in self.shapes.items()
                        if v is not None and self.dtype_of(k) != dtypes.storage(self.dtype))
        return (
            f"op={self.op} dtype={self.dtype}{f' ({own})' if own else ''} config: {config or '(defaults)'}\n"
            f"shapes: {shapes}   values: {self.values or 'normal'}   seed={self.seed}\n"
            f"rebuild: from oracle.case import Case; case = {self!r}; arrays = case.arrays()"
        )
