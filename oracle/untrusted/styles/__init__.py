"""Course-style APIs, seen as the contract's functions: the adapters run in the worker, next to the student's code.

``bpcheck verify --style cs231n layers.py`` (the target ``cs231n:layers.py``)
imports the student's file in the worker and exposes the contract's ``NAME`` and
``NAME_backward`` built from the course's functions: each backward calls the
student's forward, keeps the cache it returns (opaque: never looked into), hands
it to the student's backward, and turns the result into the contract's (layouts,
weight layouts, result order, None for an absent bias). The judge sees only the
arrays that come back, like any implementation's.

A call the API cannot express (``constraints.reason``) raises
``NotImplementedError("not expressible in the <style> API: ...")``; the judge
classifies such cases itself from the same table and never sends them
(``oracle.course``), so this is the worker's own guard.

Styles: ``cs231n`` (``oracle.untrusted.styles.cs231n``), ``dls``
(``oracle.untrusted.styles.dls``), ``layers`` (layer objects, through a short
mapping file: ``oracle.untrusted.styles.layers``). This package imports nothing
of the judge.
"""

from __future__ import annotations

import types

from oracle.untrusted.styles.constraints import STYLES, reason

#: the marker of a call declined because the API cannot express it (the judge counts these apart)
NOT_EXPRESSIBLE = "not expressible in the"


def is_styled(target: str) -> bool:
    """Whether ``target`` is ``STYLE:MODULE`` for a known style."""
    return target.split(":", 1)[0] in STYLES and ":" in target


def style_of(target: str) -> str | None:
    return target.split(":", 1)[0] if is_styled(target) else None


def module_of(target: str) -> str:
    return target.split(":", 1)[1] if is_styled(target) else target


def expressible_or_decline(style: str, op: str, config: dict, shapes: dict) -> None:
    """Raise NotImplementedError naming why, if the call cannot be written in ``style``'s API."""
    why = reason(style, op, config, shapes)
    if why:
        raise NotImplementedError(f"{NOT_EXPRESSIBLE} {style} API: {why}")


def adapt(style: str, module) -> types.SimpleNamespace:
    """The contract's functions made from ``module``'s course functions in ``style`` (only those it can make)."""
    if style == "cs231n":
        from oracle.untrusted.styles import cs231n as adapter  # noqa: PLC0415
    elif style == "dls":
        from oracle.untrusted.styles import dls as adapter  # noqa: PLC0415
    elif style == "layers":
        from oracle.untrusted.styles import layers as adapter  # noqa: PLC0415
    else:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    return types.SimpleNamespace(**adapter.functions(module))
