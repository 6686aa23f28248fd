"""Every distinct defect of a check, each with its own smallest case.

One check can hold two defects: a max-pool backward that crashes on some
shapes and returns wrong gradients on others. Hypothesis tells failures apart
by the exception's type and the place it was raised, and then shrinks each
one separately (``report_multiple_bugs``, its default). The property raises
the same line for every failing verdict, so each failure *identity* gets its
own exception class (``failure_class``), a subclass of ``CheckFailed`` and so
of AssertionError. The identity of a failing verdict (``identity``) is

    crash: IndexError                  the implementation raised (the exception's type)
    hang                               a call did not return in time
    wrong shape: grad_x, non-finite: grad_x, wrong dtype: output, mutated input, ...
    wrong grad_x                       a gradient (or the output) out of tolerance
    wrong grad_x (conv_unflipped_filter)   ... and the classic mistake it matches
    identity broken: <the identity>    one of the derivation's identities
    adjoint: x                         the adjoint identity for input x

so different exception types, different failing arrays and different named
mistakes are different defects; where the error sits and how big it is are not.

A case can match several catalogued mistakes (where they coincide), and a
defect outside the catalogue can match one by coincidence on some case, so
``Identities`` keeps the failures of a run apart without splitting a defect:
a failure joins an identity already seen of the same kind and array unless
both name mistakes and share none (a single catalogued mistake matches every
case it fails). So two named mistakes in one array are two defects; the
identity's mistakes narrow to those its named cases all matched.
"""

from __future__ import annotations

import re

from oracle.diagnosis import HINT

_MISTAKE = re.compile("^" + re.escape(HINT.split("'")[0]) + "'([^']+)'")
_RAISED = re.compile(r"raised ([A-Za-z_][\w.]*)")
_ARRAY = re.compile(r"\b(grad_\w+|output)\b")


class CheckFailed(AssertionError):
    """A check failed; the subclass (``failure_class``) names the failure's identity, the message is the verdict."""

    identity = "failure"


_CLASSES: dict[str, type[CheckFailed]] = {}


def failure_class(identity: str) -> type[CheckFailed]:
    """The exception class of ``identity`` (the same class every time: Hypothesis tells failures apart by it)."""
    cls = _CLASSES.get(identity)
    if cls is None:
        cls = type(f"CheckFailed[{identity}]", (CheckFailed,), {"identity": identity, "__module__": __name__})
        _CLASSES[identity] = cls
    return cls


def identity(verdict) -> str:
    """The identity of a failing verdict on its own (module docstring)."""
    base, mistakes = classify(verdict)
    return label(base, mistakes)


def label(base: str, mistakes) -> str:
    return f"{base} ({' or '.join(mistakes)})" if mistakes else base


def classify(verdict) -> tuple[str, tuple[str, ...]]:
    """``(kind of failure and array, the catalogued mistakes the case matches)`` of a failing verdict."""
    message = verdict.message or ""
    first = message.splitlines()[0] if message else ""
    kind, _, rest = first.partition(": ")
    mismatch = verdict.mismatch
    if mismatch is not None:
        array = str(mismatch.array)
        if verdict.check == "identities":
            base = f"identity broken: {array}"
        elif array.startswith("<d") and "F^T" in array:
            base = f"adjoint: {array[2:].split(',')[0]}"
        else:
            found = _ARRAY.search(array)
            base = f"wrong {found.group(1) if found else array}"
    elif kind == "raised":
        found = _RAISED.search(rest)
        base = f"crash: {found.group(1).rsplit('.', 1)[-1] if found else 'exception'}"
    elif kind in ("hang", "mutated input"):
        base = kind
    elif kind in ("wrong shape", "wrong dtype", "wrong result", "non-finite"):
        found = _ARRAY.search(rest)
        base = f"{kind}: {found.group(1)}" if found else kind
    else:
        base = (first[:60] + "…") if len(first) > 60 else (first or "failure")
    mistakes = tuple(dict.fromkeys(m.group(1) for m in map(_MISTAKE.match, verdict.hints) if m))
    return base, mistakes


class Identities:
    """The distinct failures of one run (module docstring): identity -> (kind and array, mistakes in common)."""

    def __init__(self) -> None:
        self.groups: dict[str, tuple[str, tuple[str, ...]]] = {}

    def of(self, verdict) -> str:
        """The identity of a failing verdict: an existing one it belongs to, else a new one."""
        base, mistakes = classify(verdict)
        for name, (known_base, known) in self.groups.items():
            if known_base != base:
                continue
            if not known or not mistakes:  # no named mistake on one side: no evidence of another defect
                return name
            common = tuple(m for m in known if m in mistakes)
            if common:
                self.groups[name] = (base, common)
                return name
        name = label(base, mistakes)
        while name in self.groups:
            name += "'"
        self.groups[name] = (base, mistakes)
        return name

    def label(self, name: str) -> str:
        """What to call identity ``name`` now: its kind and array, and the mistakes every one of its cases matched."""
        base, mistakes = self.groups.get(name, (name, ()))
        return label(base, mistakes)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in _leaves(e)]
    return [error]


def only_failures(error: BaseException) -> bool:
    """Whether ``error`` is a ``CheckFailed`` or a group of nothing else (not a crash of the harness, Flaky, ...)."""
    return all(isinstance(e, CheckFailed) for e in _leaves(error))


def group(errors: list[BaseException]) -> BaseExceptionGroup:
    """One group of the failures of several rounds (nested groups flattened)."""
    leaves = [leaf for e in errors for leaf in _leaves(e)]
    return BaseExceptionGroup(f"{len(leaves)} distinct failures", leaves)


def regroup(group: BaseExceptionGroup, title: str) -> BaseExceptionGroup:
    """Hypothesis's group of distinct failures, with a message naming each defect (``title``: op, check, dtype)."""
    found = _leaves(group)
    if not all(isinstance(e, CheckFailed) for e in found):
        return group
    names = "; ".join(exc.identity for exc in found)
    regrouped = ExceptionGroup(
        f"{title}: {len(found)} distinct defects, each shrunk to its own smallest case: {names}", list(found))
    regrouped.__traceback__ = group.__traceback__
    return regrouped
