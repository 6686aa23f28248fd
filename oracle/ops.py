"""One record per op of the contract. Every test, oracle call and report is generated from these.

Adding an op means adding one ``OpSpec`` here (and its strategy in
``oracle.strategies``); the property suite, ``bpcheck verify`` and the corpus
pick it up with no other change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from oracle.case import Case


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

    def features_of(self, case: Case) -> tuple[str, ...]:
        """The names of the configuration features ``case`` uses, in ``features`` order."""
        return tuple(name for name, rule in self.features if rule(case))

    def cases(self, dtype: str | None = None):
        """The Hypothesis strategy that draws valid cases of this op."""
        from oracle import strategies  # noqa: PLC0415 - hypothesis is only needed when drawing

        return strategies.CASES[self.name](dtype)


def _conv_fan_in(case: Case) -> int:
    n, c_in = case.shapes["x"][:2]
    c_out, cg, kh, kw = case.shapes["weight"]
    ho, wo = case.shapes["grad_output"][2:]
    og = c_out // case.config.get("groups", 1)
    return max(cg * kh * kw + 1, og * kh * kw, n * ho * wo)


def _window_fan_in(case: Case) -> int:
    kh, kw = case.config["kernel_size"]
    return kh * kw + 1


def _linear_fan_in(case: Case) -> int:
    x, w = case.shapes["x"], case.shapes["weight"]
    return max(x[-1] + 1, w[0], math.prod(x[:-1]))


def _reduction_fan_in(case: Case) -> int:
    return 4 + (math.prod(case.shapes["input"]) if case.config.get("reduction", "mean") != "none" else 0)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _differs(name: str, default) -> Callable[[Case], bool]:
    """The case's ``name`` is given and is not ``default`` (pairs compared as pairs)."""
    return lambda case: case.config.get(name, default) is not None and _pair(case.config.get(name, default)) != _pair(default)


def _no(array: str) -> Callable[[Case], bool]:
    return lambda case: array in case.shapes and case.shapes[array] is None


def _pool_stride(case: Case) -> bool:
    """An explicit stride that is not the kernel size (the default)."""
    stride = case.config.get("stride")
    return stride is not None and _pair(stride) != _pair(case.config["kernel_size"])


def _flag(name: str, value) -> Callable[[Case], bool]:
    return lambda case: name in case.config and case.config[name] == value


_REDUCTIONS = (("reduction='sum'", _flag("reduction", "sum")), ("reduction='none'", _flag("reduction", "none")))

SPECS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec(
            "conv2d",
            inputs=("x", "weight", "bias"),
            differentiable=("x", "weight", "bias"),
            config=("stride", "padding", "dilation", "groups"),
            optional=("bias",),
            linear_in=("x", "weight"),
            fan_in=_conv_fan_in,
            features=(
                ("groups", lambda case: case.config.get("groups", 1) > 1),
                ("dilation", _differs("dilation", 1)),
                ("stride", _differs("stride", 1)),
                ("padding", _differs("padding", 0)),
                ("bias=None", _no("bias")),
            ),
        ),
        OpSpec(
            "max_pool2d",
            inputs=("x",),
            differentiable=("x",),
            config=("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
            linearized_in=("x",),
            fd_values={"x": "gapped"},
            fan_in=_window_fan_in,
            features=(
                ("stride != kernel_size", _pool_stride),
                ("padding", _differs("padding", 0)),
                ("dilation", _differs("dilation", 1)),
                ("ceil_mode", _flag("ceil_mode", True)),
            ),
        ),
        OpSpec(
            "avg_pool2d",
            inputs=("x",),
            differentiable=("x",),
            config=("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
            linear_in=("x",),
            fan_in=_window_fan_in,
            features=(
                ("stride != kernel_size", _pool_stride),
                ("padding", _differs("padding", 0)),
                ("ceil_mode", _flag("ceil_mode", True)),
                ("count_include_pad=False", _flag("count_include_pad", False)),
                ("divisor_override", _differs("divisor_override", None)),
            ),
        ),
        OpSpec(
            "linear",
            inputs=("x", "weight", "bias"),
            differentiable=("x", "weight", "bias"),
            optional=("bias",),
            linear_in=("x", "weight"),
            fan_in=_linear_fan_in,
            features=(("bias=None", _no("bias")),),
        ),
        OpSpec("relu", inputs=("x",), differentiable=("x",), fd_values={"x": "gapped"}),
        OpSpec("sigmoid", inputs=("x",), differentiable=("x",), fd_values={"x": "logits"}, fan_in=lambda case: 4),
        OpSpec("flatten", inputs=("x",), differentiable=("x",), linear_in=("x",)),
        OpSpec(
            "binary_cross_entropy",
            inputs=("input", "target"),
            differentiable=("input",),
            config=("reduction",),
            fd_values={"input": "probabilities_safe"},
            fan_in=_reduction_fan_in,
            features=_REDUCTIONS,
        ),
        OpSpec(
            "binary_cross_entropy_with_logits",
            inputs=("input", "target"),
            differentiable=("input",),
            config=("reduction",),
            fd_values={"input": "logits"},
            fan_in=_reduction_fan_in,
            features=_REDUCTIONS,
        ),
    ]
}


def spec(name: str) -> OpSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; the contract has: {', '.join(SPECS)}") from None


def positional(spec: OpSpec, arrays: dict[str, np.ndarray | None]) -> list[np.ndarray | None]:
    """The forward's positional arguments, in order (an absent optional one as ``None``)."""
    return [arrays.get(name) for name in spec.inputs]
