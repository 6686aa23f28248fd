"""The result model: one Verdict per (op, check, case), rendered for pytest, the CLI table and JSON/JUnit.

A failing verdict carries the located worst error (array, index, expected, got,
absolute and relative error, allowed) and the case's reproduction, in a form
that can be pasted into a bug report.

Three outcomes of a comparison (``oracle.tolerances``): ``pass`` (within the
rounding of the standard formulas), ``imprecise`` (beyond it, but within the
band no wrong rule hides under: a right rule that loses digits; shown, exit 0
unless ``--strict``) and ``FAIL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oracle.case import Case
from oracle.tolerances import Tolerance

PASS, FAIL, NOT_IMPLEMENTED, SKIPPED = "pass", "FAIL", "not implemented", "skipped"
IMPRECISE = "imprecise"
#: a result none of whose drawn cases the run's course style can express (``oracle.course``): nothing checked
NOT_EXPRESSIBLE = "not expressible"

CHECK_TITLES = {
    "forward": "forward vs torch",
    "backward": "backward vs torch autograd",
    "finite_differences": "backward vs finite differences",
    "adjoint": "adjoint identity <F dx, dy> = <dx, F^T dy>",
    "identities": "the derivation's identities",
    "jvp": "forward mode (JVP) vs torch.func.jvp, finite differences and <J dx, dy> = <dx, J^T dy>",
    "double_backward": "double backward vs torch and vs differences of the backward",
}

NEXT_STEPS = {
    "forward": "rebuild the case (line above) and compare your forward with torch.nn.functional on it.",
    "backward": "rebuild the case and compare each gradient with oracle.torch_oracle.run(...) on it; "
    "if torch and finite differences disagree with you in the same place, the rule is wrong there.",
    "finite_differences": "your backward disagrees with the derivative of your own forward: if the forward passed, "
    "the backward rule is wrong; if it did not, fix the forward first.",
    "adjoint": "the backward is not the transpose of the forward: compare where dx and F^T dy meet on the rebuilt case "
    "(a missed flip, stride or padding offset shows here with no framework involved).",
    "identities": "the backward breaks one of the derivation's identities (message above): see README, 'The rules'.",
    "jvp": "the forward-mode rule (NAME_jvp) is wrong where the message says: against torch.func.jvp, against finite "
    "differences of your own forward, or against your own backward (<J dx, dy> = <dx, J^T dy>); if only the last "
    "fails, one of the two rules is wrong and the backward's rows say which.",
    "double_backward": "differentiating your backward gives the wrong second order: if the backward row passed, the "
    "backward is right but not differentiable as written (a detached or non-differentiable computation in it); "
    "rebuild the case and compare torch.autograd.grad(<your grads, v>, (g, *inputs)) with torch.nn.functional's.",
}

#: what to try next on an imprecise verdict (any check)
IMPRECISE_NEXT = ("the rule is right but loses digits at this element: look for a subtraction of nearly equal terms "
                  "(1 - p, 1 + exp(-z), a float32 sum) and use the stable form (log1p, expm1, the logits form, "
                  "pairwise or float64 accumulation); --strict (bpcheck verify) / --bpcheck-strict (pytest) make this a failure.")

#: what to try next on a verdict whose backward is not deterministic (``oracle.determinism``)
NONDETERMINISTIC_NEXT = ("the gradients are right, but two identical calls gave different ones: a sum in a run-dependent "
                         "order (atomics, a thread pool) or state kept across calls; make the reduction order fixed if "
                         "runs must be reproducible. --strict (bpcheck verify) / --bpcheck-strict (pytest) make this a failure.")


@dataclass(frozen=True)
class Mismatch:
    """Where an array is furthest out of tolerance."""

    array: str
    index: tuple[int, ...] | str
    expected: float
    got: float
    allowed: float
    count: int
    size: int
    imprecise: bool = False
    """No element is beyond the FAIL bound: every one out of tolerance is within the imprecise band."""
    bound: float | None = None
    """The FAIL bound at the worst element (None: no imprecise band, beyond ``allowed`` is FAIL)."""
    scale: float | None = None
    """The worst element's term scale (the magnitudes that enter it), if known."""

    @property
    def abs_error(self) -> float:
        return abs(self.got - self.expected)

    @property
    def rel_error(self) -> float:
        return self.abs_error / abs(self.expected) if self.expected else float("inf")

    @property
    def digits(self) -> float:
        """Correct significant digits of the worst element (relative to its value; 0 for none)."""
        rel = self.rel_error
        return max(0.0, -float(np.log10(rel))) if rel > 0 and np.isfinite(rel) else (0.0 if rel else 17.0)

    @property
    def digits_lost(self) -> float:
        """Digits lost beyond the rounding model at the worst element: log10(abs error / allowed)."""
        return float(np.log10(self.abs_error / self.allowed)) if self.allowed > 0 and self.abs_error > 0 else 0.0

    def describe(self) -> str:
        what = "beyond rounding (imprecise)" if self.imprecise else "out of tolerance"
        text = (
            f"{self.array}: {self.count} of {self.size} element(s) {what}; worst at {self.index}: "
            f"expected {self.expected:.16g}, got {self.got:.16g}, abs err {self.abs_error:.3g}, "
            f"rel err {self.rel_error:.3g} (allowed abs {self.allowed:.3g}"
        )
        if self.scale is not None:
            text += f" = rounding of terms of size {self.scale:.3g}"
        if self.bound is not None and np.isfinite(self.bound):
            text += f"; FAIL beyond {self.bound:.3g}"
        text += ")"
        if self.imprecise:
            text += f"; right to {self.digits:.0f} significant digits, {self.digits_lost:.1f} digits lost beyond rounding"
        return text

    def as_dict(self) -> dict:
        return {
            "array": self.array, "index": list(self.index) if isinstance(self.index, tuple) else self.index,
            "expected": self.expected, "got": self.got, "abs_error": self.abs_error, "rel_error": self.rel_error,
            "allowed": self.allowed, "count": self.count, "size": self.size,
            "imprecise": self.imprecise, "bound": self.bound, "scale": self.scale,
        }


def locate(array: str, got: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> Mismatch | None:
    """The worst element of ``got`` against ``expected`` (NaN must match NaN), or None if all are within tolerance.

    With an imprecise band (``tolerance.has_band``): if some element is beyond the FAIL bound, the worst of
    those (by error / bound); else the worst beyond ``allowed`` (by error / allowed), marked ``imprecise``.
    """
    got64 = np.asarray(got, dtype=np.float64)
    exp64 = np.asarray(expected, dtype=np.float64)
    finite_expected = np.where(np.isfinite(exp64), exp64, 0.0)
    allowed = np.broadcast_to(tolerance.allowed(finite_expected), exp64.shape)
    bound = np.broadcast_to(tolerance.bound(finite_expected), exp64.shape)
    same_nonfinite = (np.isnan(got64) & np.isnan(exp64)) | (np.isinf(exp64) & (got64 == exp64))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        error = np.where(same_nonfinite, 0.0, np.abs(got64 - exp64))
        excess = error / allowed
        fail_excess = error / bound
    excess = np.where(np.isnan(excess), np.inf, excess)  # NaN on one side only
    fail_excess = np.where(np.isnan(fail_excess), np.inf, fail_excess)
    bad = excess > 1.0
    if not bad.any():
        return None
    failing = fail_excess > 1.0
    imprecise = not failing.any()
    flat = int(np.argmax(excess if imprecise else fail_excess))
    index = tuple(int(i) for i in np.unravel_index(flat, excess.shape)) if excess.ndim else ()
    scale = None if tolerance.scale is None else float(np.broadcast_to(tolerance.scale, exp64.shape)[index])
    return Mismatch(array, index, float(exp64[index]), float(got64[index]), float(allowed[index]),
                    int((failing if not imprecise else bad).sum()), int(bad.size), imprecise=imprecise,
                    bound=float(bound[index]) if tolerance.has_band else None, scale=scale)


def status_of(mismatch: Mismatch | None) -> str:
    """PASS without a mismatch, IMPRECISE for one within the imprecise band, else FAIL."""
    if mismatch is None:
        return PASS
    return IMPRECISE if mismatch.imprecise else FAIL


@dataclass
class Verdict:
    """The outcome of one check of one op on one case."""

    op: str
    check: str
    status: str
    case: Case | None = None
    message: str = ""
    mismatch: Mismatch | None = None
    hints: list[str] = field(default_factory=list)
    nondeterminism: str | None = None
    """How two identical calls of the backward differed (``oracle.determinism.difference``), None if they did not
    or were not compared. Not a status: the values may pass or be imprecise as well."""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def imprecise(self) -> bool:
        return self.status == IMPRECISE

    def render(self) -> str:
        """The text a person reads: what failed, where, how far off, the reproduction and what to try next."""
        title = f"{self.op} {CHECK_TITLES.get(self.check, self.check)}: {self.status}"
        lines = [title]
        if self.message:
            lines += ["  " + line for line in self.message.splitlines()]
        if self.mismatch is not None:
            lines.append("  " + self.mismatch.describe())
        if self.nondeterminism:
            lines.append(f"  {self.nondeterminism}")
        for hint in self.hints:
            lines.append(f"  hint: {hint}")
        if self.case is not None:
            lines += ["  " + line for line in self.case.reproduction().splitlines()]
        if self.failed and self.check in NEXT_STEPS:
            lines.append(f"  next: {NEXT_STEPS[self.check]}")
        elif self.imprecise:
            lines.append(f"  next: {IMPRECISE_NEXT}")
        if self.nondeterminism and not self.failed:
            lines.append(f"  next: {NONDETERMINISTIC_NEXT}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "op": self.op, "check": self.check, "status": self.status, "message": self.message,
            "mismatch": None if self.mismatch is None else self.mismatch.as_dict(),
            "hints": list(self.hints), "case": None if self.case is None else repr(self.case),
            "nondeterminism": self.nondeterminism,
        }
