"""Every tolerance of the harness, per dtype, with the reasoning. Nothing else in the code picks one.

Comparing against an exact oracle
---------------------------------
The torch oracle computes in float64 from the case's inputs (a float32 input
is widened exactly), so its answer is within float64 rounding of the truth.
An implementation under test that sums ``n`` products per output element in a
dtype with unit roundoff ``u`` makes an error bounded by ``n * u * sum|terms|``
in the worst case and of order ``sqrt(n) * u * sum|terms|`` in practice
(rounding errors of a sum behave like a random walk). We do not know
``sum|terms|`` per element, so the scale used is the largest magnitude in the
expected array (errors of a cancelling element are those of its neighbours, not
of its own small value):

    allowed[i] = rtol * |expected[i]| + rtol * max|expected|
    rtol      = SAFETY * u * sqrt(n + 1)

``n`` is the op's *fan-in*: the number of terms summed into the largest sum the
rule computes (``Cg*kH*kW`` for a conv output, ``N*Ho*Wo`` for its weight
gradient, the element count for a 'mean' reduction...). ``SAFETY`` absorbs
constant factors (a product adds one rounding, a division another; pairwise
vs. sequential summation) and was checked against refimpl and torch on both
dtypes: the largest ratio error/allowed seen on the property suite is far below 1.

Finite differences
------------------
A central difference ``(f(x + h v) - f(x - h v)) / 2h`` has truncation error
``O(h^2 f''')`` and rounding error ``O(u |f| / h)``; the two balance at
``h ~ u^(1/3)``, giving a relative accuracy of about ``u^(2/3)``: 4e-11 in
float64. The forward is always evaluated in float64 for finite differences
(whatever the case's dtype), so the step is float64's, and the comparison of a
float32 backward is limited by the float32 backward itself.

Adjoint identity
----------------
``<F dx, dy>`` and ``<dx, F^T dy>`` are two sums of the same products in a
different order: both are within ``n_total * u`` (relative to the sum of the
absolute products) of the exact value, ``n_total`` the number of products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: unit roundoff per dtype
UNIT_ROUNDOFF = {"float64": float(np.finfo(np.float64).eps) / 2, "float32": float(np.finfo(np.float32).eps) / 2}

#: constant factor on top of the sqrt(n) random-walk estimate, see the module docstring
SAFETY = 64.0

#: finite-difference step for a float64 forward (u^(1/3) ~ 5e-6, rounded; directions are unit-scale)
FD_STEP = 1e-6
#: relative accuracy of a float64 central difference at FD_STEP for unit-scale smooth functions
FD_RTOL = 1e-7


@dataclass(frozen=True)
class Tolerance:
    """``allowed = rtol * |expected| + atol + slack`` elementwise (``slack``: see ``float32_slack``)."""

    rtol: float
    atol: float
    slack: np.ndarray | float = 0.0

    def allowed(self, expected: np.ndarray) -> np.ndarray:
        return self.rtol * np.abs(expected) + self.atol + self.slack


def float32_slack(reference_error: np.ndarray | None) -> np.ndarray | float:
    """Extra room, elementwise, for a float32 result: twice the error torch's own float32 kernel makes there.

    The sqrt(n) model covers rounding that accumulates in sums, not cancellation
    in an ill-conditioned formula: ``s (1 - s)`` for a sigmoid near 1 loses
    ``u / (1 - s)`` of its relative accuracy in any float32 implementation. So
    a float32 result may be off by what torch's float32 kernel is off by on the
    same inputs (``|torch32 - torch64|``, measured per case), doubled, on top of
    the model. Non-finite differences (torch32 overflowing) grant nothing.
    """
    if reference_error is None:
        return 0.0
    err = np.abs(np.asarray(reference_error, dtype=np.float64))
    return 2.0 * np.where(np.isfinite(err), err, 0.0)


def _scale(expected: np.ndarray) -> float:
    finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(0)
    return float(finite.max()) if finite.size else 0.0


def for_sum(dtype: str, fan_in: int, expected: np.ndarray, reference_error: np.ndarray | None = None) -> Tolerance:
    """Tolerance for an array computed in ``dtype`` as sums of ``fan_in`` terms, compared to an exact ``expected``."""
    rtol = SAFETY * UNIT_ROUNDOFF[dtype] * math.sqrt(fan_in + 1)
    # below the smallest normal number there is no relative precision left (gradual underflow):
    # a subnormal where torch flushes to zero, or the reverse, is not an error
    atol = max(rtol * _scale(expected), float(np.finfo(np.dtype(dtype)).tiny))
    return Tolerance(rtol=rtol, atol=atol, slack=float32_slack(reference_error))


def for_finite_differences(dtype: str, fan_in: int, expected: np.ndarray, reference_error: np.ndarray | None = None) -> Tolerance:
    """Tolerance for a backward in ``dtype`` checked against float64 central differences."""
    base = for_sum(dtype, fan_in, expected, reference_error)
    return Tolerance(rtol=max(base.rtol, FD_RTOL), atol=max(base.atol, FD_RTOL * max(_scale(expected), 1.0)), slack=base.slack)


def for_adjoint(dtype: str, n_products: int, abs_sum: float) -> float:
    """Allowed |<F dx, dy> - <dx, F^T dy>| for inner products of ``n_products`` terms whose magnitudes sum to ``abs_sum``."""
    return 2 * SAFETY * UNIT_ROUNDOFF[dtype] * math.sqrt(n_products + 1) * max(abs_sum, np.finfo(np.float64).tiny)
