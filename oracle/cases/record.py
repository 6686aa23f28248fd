"""The record of one op of the contract (``OpSpec``): every test, oracle call and report is generated from it.

Each op family module of ``oracle.cases`` holds its ops' records; this module
holds the class, the ``features`` rules the families share (``_differs``,
``_no``, ``_flag``) and ``positional``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from oracle.case import Case


#: checks of the functions the contract makes optional: check -> the ``OpSpec`` property naming the function it needs
OPTIONAL_FUNCTIONS = {"jvp": "jvp_name", "double_backward": "double_backward_name"}


@dataclass(frozen=True)
class OpSpec:
    """What the harness needs to know about one op.

    inputs          positional array arguments of the forward, in order
    differentiable  the inputs the backward returns gradients for, in order
    optional        inputs that may be ``None`` (bias)
    config          keyword-only configuration arguments
    linear_in       inputs the forward is linear in (the others fixed, optional ones ``None``):
                    the adjoint identity <F dx, dy> = <dx, F^T dy> applies there
    linearized_in   inputs the forward is piecewise linear in: the adjoint identity holds
                    for the linearization at the case's point (max-pool at a fixed arg-max)
    fd_values       the value recipe each input must use for finite differences to stay
                    away from the op's kinks (relu at 0, max-pool ties, BCE at 0 and 1)
    fan_in          the number of terms summed into the largest sum the rules compute
    features        the configuration features a case can use beyond the plain call, in order, as
                    ``(name, rule)`` with ``rule(case) -> bool`` (``groups > 1``, ``bias=None``, ...):
                    a case an implementation declines is reported by the features it has that
                    no checked case has (``oracle.coverage``)
    torch_untrusted a reason when torch is known to be wrong on a case (the torch checks then
                    skip it, the corpus leaves it out, finite differences and the adjoint decide);
                    no op needs it today: the strategies avoid the one such corner found, max-pool
                    windows made only of padding (pytorch #114216), which refimpl rejects
    """

    name: str
    inputs: tuple[str, ...]
    differentiable: tuple[str, ...]
    config: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    linear_in: tuple[str, ...] = ()
    linearized_in: tuple[str, ...] = ()
    fd_values: dict[str, str] = field(default_factory=dict)
    fan_in: Callable[[Case], int] = lambda case: 1
    features: tuple[tuple[str, Callable[[Case], bool]], ...] = ()
    torch_untrusted: Callable[[Case], str | None] = lambda case: None

    @property
    def backward_name(self) -> str:
        return f"{self.name}_backward"

    @property
    def jvp_name(self) -> str:
        """The forward-mode rule: ``NAME_jvp(primals, tangents, **config) -> (output, output_tangent)``."""
        return f"{self.name}_jvp"

    @property
    def double_backward_name(self) -> str:
        """The optional second-order function of the contract (``oracle.second_order``)."""
        return f"{self.name}_double_backward"

    def features_of(self, case: Case) -> tuple[str, ...]:
        """The names of the configuration features ``case`` uses, in ``features`` order."""
        return tuple(name for name, rule in self.features if rule(case))

    def cases(self, dtype: str | None = None):
        """The Hypothesis strategy that draws valid cases of this op."""
        from oracle.cases import CASES  # noqa: PLC0415 - assembled from the family modules, which import this one

        return CASES[self.name](dtype)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _differs(name: str, default) -> Callable[[Case], bool]:
    """The case's ``name`` is given and is not ``default`` (a tuple of any rank against ``default`` on every axis)."""

    def rule(case: Case) -> bool:
        value = case.config.get(name, default)
        if value is None:
            return False
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        return any(v != default for v in values)

    return rule


def _no(array: str) -> Callable[[Case], bool]:
    return lambda case: array in case.shapes and case.shapes[array] is None


def _flag(name: str, value) -> Callable[[Case], bool]:
    return lambda case: name in case.config and case.config[name] == value


def positional(spec: OpSpec, arrays: dict[str, np.ndarray | None]) -> list[np.ndarray | None]:
    """The forward's positional arguments, in order (an absent optional one as ``None``)."""
    return [arrays.get(name) for name in spec.inputs]
