"""Explicit edge cases and known bugs from the field, run as ``@example``s before any drawn case.

Issue numbers are PyTorch's. Each is checked by every check of its op: against
torch *and* against finite differences and the adjoint identity, since torch
itself got some of them wrong.

Each op family module holds its ops' examples (``EXAMPLES``) and their
builders (``conv``, ``pool``, ``bce``); this module holds the builder the
families share.
"""

from __future__ import annotations

from oracle.case import Case


def elementwise(op, shape, values=None, seed=0) -> Case:
    return Case(op, {"x": shape, "grad_output": shape}, {}, seed=seed, values=values or {})
