"""The result model: one Verdict per (op, check, case), rendered for pytest, the CLI table and JSON/JUnit.

A failing verdict carries the located worst error (array, index, expected, got,
absolute and relative error, allowed) and the case's reproduction, in a form
that can be pasted into a bug report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oracle.case import Case
from oracle.tolerances import Tolerance

PASS, FAIL, NOT_IMPLEMENTED, SKIPPED = "pass", "FAIL", "not implemented", "skipped"

CHECK_TITLES = {
    "forward": "forward vs torch",
    "backward": "backward vs torch autograd",
    "finite_differences": "backward vs finite differences",
    "adjoint": "adjoint identity <F dx, dy> = <dx, F^T dy>",
    "identities": "the derivation's identities",
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
}


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

    @property
    def abs_error(self) -> float:
        return abs(self.got - self.expected)

    @property
    def rel_error(self) -> float:
        return self.abs_error / abs(self.expected) if self.expected else float("inf")

    def describe(self) -> str:
        return (
            f"{self.array}: {self.count} of {self.size} element(s) out of tolerance; worst at {self.index}: "
            f"expected {self.expected:.16g}, got {self.got:.16g}, abs err {self.abs_error:.3g}, "
            f"rel err {self.rel_error:.3g} (allowed abs {self.allowed:.3g})"
        )

    def as_dict(self) -> dict:
        return {
            "array": self.array, "index": list(self.index) if isinstance(self.index, tuple) else self.index,
            "expected": self.expected, "got": self.got, "abs_error": self.abs_error, "rel_error": self.rel_error,
            "allowed": self.allowed, "count": self.count, "size": self.size,
        }


def locate(array: str, got: np.ndarray, expected: np.ndarray, tolerance: Tolerance) -> Mismatch | None:
    """The worst element of ``got`` against ``expected`` (NaN must match NaN), or None if all are within tolerance."""
    got64 = np.asarray(got, dtype=np.float64)
    exp64 = np.asarray(expected, dtype=np.float64)
    allowed = tolerance.allowed(np.where(np.isfinite(exp64), exp64, 0.0))
    same_nonfinite = (np.isnan(got64) & np.isnan(exp64)) | (np.isinf(exp64) & (got64 == exp64))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        excess = np.where(same_nonfinite, 0.0, np.abs(got64 - exp64) / allowed)
    excess = np.where(np.isnan(excess), np.inf, excess)  # NaN on one side only
    bad = excess > 1.0
    if not bad.any():
        return None
    flat = int(np.argmax(excess))
    index = tuple(int(i) for i in np.unravel_index(flat, excess.shape)) if excess.ndim else ()
    return Mismatch(array, index, float(exp64[index]), float(got64[index]), float(allowed[index]), int(bad.sum()), int(bad.size))


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

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def render(self) -> str:
        """The text a person reads: what failed, where, how far off, the reproduction and what to try next."""
        title = f"{self.op} {CHECK_TITLES.get(self.check, self.check)}: {self.status}"
        lines = [title]
        if self.message:
            lines += ["  " + line for line in self.message.splitlines()]
        if self.mismatch is not None:
            lines.append("  " + self.mismatch.describe())
        for hint in self.hints:
            lines.append(f"  hint: {hint}")
        if self.case is not None:
            lines += ["  " + line for line in self.case.reproduction().splitlines()]
        if self.failed and self.check in NEXT_STEPS:
            lines.append(f"  next: {NEXT_STEPS[self.check]}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "op": self.op, "check": self.check, "status": self.status, "message": self.message,
            "mismatch": None if self.mismatch is None else self.mismatch.as_dict(),
            "hints": list(self.hints), "case": None if self.case is None else repr(self.case),
        }
