"""What a classic backward-pass mistake is (``Mistake``), and what the op families' catalogues share.

Each ``Mistake`` carries a ``backward`` with the contract's ``<op>_backward``
signature that computes the gradients *with that one mistake*, built from
refimpl's named steps (``dilate``, ``pad``, ``crop``, ``flip``, ``correlate``,
``swap_filter_channels``) or, for pooling, from a plain loop over the windows
as a student writes it. Everything else is right, so a mistake differs from the
correct rule only where its own corner is reached (a stride > 1, an exact tie,
padding, ``p`` at exactly 0 ...).

Rules the mistakes share:

* **Shape- and dtype-correct.** A mistake returns arrays of exactly the shapes
  and dtypes of the correct rule, so the verifier must catch it by its *values*,
  never by a crash or a wrong shape. Where the mistake would naturally give a
  wrong shape (a filter transposed, a padded gradient not cropped), it is made
  to fit the way a student makes it fit: a ``reshape`` instead of a transpose, a
  top-left crop.
* **The same argument checking as refimpl.** Every mistaken rule validates its
  call with refimpl's checks first, so a mutant rejects exactly what refimpl
  rejects.

Each op family module of ``oracle.cases`` holds its ops' scaffolds (the
backward written so that each mistake is one switch) and catalogue entries;
``oracle.mistakes`` gathers them. Used by ``oracle.zoo`` (one importable implementation per mistake, to verify
the verifier) and ``oracle.diagnosis`` (which names the mistake an
implementation's wrong gradients match).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np


#: where refimpl's contract functions live, searched in order (the package first)
_REFIMPL_MODULES = (
    "refimpl", "refimpl.convolution", "refimpl.pooling", "refimpl.dense", "refimpl.activations", "refimpl.losses",
    "refimpl.softmax",
)


def reference(name: str) -> Callable | None:
    """refimpl's function ``name`` (``conv2d``, ``relu_backward`` ...), or None if refimpl has none yet."""
    for module_name in _REFIMPL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    return None


@dataclass(frozen=True)
class Mistake:
    """One classic mistake in the backward rule of one op.

    name         identifier, also the module name of its mutant (``oracle.zoo.<name>``)
    op           the op of the contract whose backward it breaks
    description  one line: what the mistaken rule computes instead of the right one
    backward     ``<op>_backward`` with the mistake: same signature, shapes and dtypes as refimpl's
    """

    name: str
    op: str
    description: str
    backward: Callable

    @property
    def module(self) -> str:
        """The mutant implementing this mistake: refimpl with only this backward replaced."""
        return f"oracle.zoo.{self.name}"


def _mistaken(op: str, scaffold: Callable, name: str, description: str, **knobs) -> Callable:
    """``<op>_backward`` computed by ``scaffold`` with the mistake switched on by ``knobs``."""

    @functools.wraps(scaffold)
    def backward(grad_output, *inputs, **config):
        return scaffold(grad_output, *inputs, **config, **knobs)

    backward.__name__ = backward.__qualname__ = f"{op}_backward"
    backward.__module__ = f"oracle.zoo.{name}"
    backward.__doc__ = f"{op}_backward with a classic mistake ({name}): {description}."
    correct = reference(f"{op}_backward")
    if correct is not None:
        backward.__signature__ = inspect.signature(correct)
    del backward.__wrapped__
    return backward


def _validated(op: str, grad_output, inputs, config) -> None:
    """Let refimpl's correct rule check the call (its result is discarded): the same errors for the same arguments."""
    correct = reference(f"{op}_backward")
    if correct is not None:
        correct(grad_output, *inputs, **config)


def _axes(per_axis: tuple[int, ...], mode: str) -> tuple[int, ...]:
    """A stride or dilation (one entry per spatial axis) as the mistaken rule uses it: ``right``, ``swapped``
    (the axes in reverse order: h/w in 2-D, d/w in 3-D), ``ignored`` (1 on every axis) or ``first_ignored``
    (1 on the first axis only: the depth of a 3-D call)."""
    if mode == "right":
        return per_axis
    if mode == "swapped":
        return per_axis[::-1]
    if mode == "ignored":
        return (1,) * len(per_axis)
    if mode == "first_ignored":
        return (1,) + per_axis[1:]
    raise ValueError(f"unknown axis mode {mode!r}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def mistakes(scaffolds: dict[str, Callable], catalogue: list[tuple[str, str, str, dict]]) -> list[Mistake]:
    """A family's catalogue ``(name, op, description, knobs)`` as ``Mistake``s: ``scaffolds[op]`` with ``knobs`` on."""
    return [
        Mistake(name, op, description, _mistaken(op, scaffolds[op], name, description, **knobs))
        for name, op, description, knobs in catalogue
    ]
