"""Every tolerance and error bound of the harness, per dtype, with the reasoning. Nothing else in the code picks one.

Per element, from the magnitudes that enter it
----------------------------------------------
Each element of a result is a sum of terms (products, a bias, the terms of a
loss formula). The standard forward-error bound (Higham, *Accuracy and
Stability of Numerical Algorithms*, section 3.1: ``|fl(x.y) - x.y| <= gamma_n |x|.|y|``,
``gamma_n = n u / (1 - n u)``) bounds its rounding error by the *sum of the
magnitudes of its terms*, not by its value: an element that cancels to 1e-103
out of terms of size 236 may be off by ``u * 236``; an element whose terms are
all small must be right to their size, whatever its neighbours are. So each
element ``i`` gets its own **term scale** ``T[i]`` (``oracle.magnitudes``: for
the sums, the same op run on absolute values, ``conv(|x|, |w|) + |b|``,
``|x| @ |W|^T``, the backward rules on ``|grad_output|``; for elementwise
functions and losses, the terms of the standard formulas propagated by the
function's derivative), and

    allowed[i] = (rho(dtype) + rho(float64)) * T[i]  +  (n + 1) * tiny(dtype)  +  slack[i]
    rho(dtype) = SAFETY * u(dtype) * sqrt(n + 1)

* ``n`` is the op's *fan-in*: the number of terms summed into the largest sum
  the rules compute (``Cg*kH*kW`` for a conv output, ``N*Ho*Wo`` for its
  weight gradient, the element count for a 'mean' reduction...).
* ``SAFETY * sqrt(n + 1) >= n + 2`` for every ``n + 1 <= SAFETY**2 = 4096``,
  which covers every case the strategies draw: there ``rho`` is at least the
  worst-case ``gamma_{n+2}`` (n products, a bias, a division by a count) and
  the bound is rigorous for an implementation that sums the same terms in any
  order, pairwise or not. Beyond 4096 terms it is the probabilistic bound
  ``lambda sqrt(n) u`` with ``lambda = 64`` (Higham and Mary, SIAM J. Sci.
  Comput. 2019: rounding errors of a sum behave like a random walk; lambda = 64
  is exceeded with probability below exp(-2000)). For the elementwise
  functions the same constant covers the handful of roundings and the few ulps
  of each ``exp``/``log``/``log1p``/``tanh`` call of the formula.
* ``rho(float64)``: the oracle is not the truth at the last digit. torch's
  float64 answer carries its own rounding on the same terms, so a more
  accurate implementation (a logits-BCE gradient of -6.9e-104 where torch's
  float64 ``sigmoid(236) - 1`` rounds to 0) is within the bound.
* ``(n + 1) * tiny``: below the smallest normal number there is no relative
  precision left (gradual underflow, or flush-to-zero of each of the n+1
  operations): a subnormal where torch flushes to zero is not an error.
* ``slack``: see ``float32_slack``. Still needed: the magnitude model is the
  direct sum and the correctly-rounded elementary function; torch's float32
  kernels (vectorized exp/log approximations of a few ulps, the algorithms
  oneDNN picks for convolution) are not bound by it, and an implementation
  may be as far from the truth as torch's own float32 kernel is. It is measured
  per case and is zero in float64.

Where a term scale cannot be computed (an input refimpl rejects, a non-finite
magnitude), the element falls back to the largest finite term scale of the
array (or ``|expected|`` and its largest value), the old neighbour rule.

Three outcomes: pass, imprecise, FAIL
-------------------------------------
Beyond ``allowed`` the error is more than the rounding of the standard
formulas, but a right rule can still lose digits: ``-log(1 - p)`` instead of
``-log1p(-p)``, a formula that forms ``1 + exp(-z)``. Those lose, at one
element, at most a few roundings of the *naive* formula's terms ``Tn[i] >= T[i]``
(the 1 in ``1 - p``; ``oracle.magnitudes``). An element is ``imprecise`` when
its error is within

    bound[i] = allowed[i] + sqrt(u(dtype)) * Tn[i]

and FAIL beyond. ``sqrt(u)`` relative to the element's own term scale is the
classic line of gradient checking (a finite-difference gradient is right to
about ``sqrt(u)`` and no more, so no check can see a smaller difference as a
rule): a formula that cancels loses digits *of the terms' scale*, never more
than half of them here; a wrong rule is wrong by a whole term or factor, which
on the drawn cases (O(1) values, at most ~10^4 terms) is at least ``1e-4 T``,
far beyond ``sqrt(u) = 1.5e-8`` (float64) and, for the fan-ins the strategies
draw, beyond ``2.4e-4`` (float32). The bug zoo checks this: every mutant still
FAILs (tests/test_zoo.py).

Algorithms with normwise bounds only
------------------------------------
Direct summation in any order meets the per-element bound above. Other right
algorithms do not: a convolution by FFT, a summed-area table (cumulative sums)
for average pooling, Winograd or Strassen-like products spread each element's
rounding over the whole array, so their error bound is *normwise*: the
rounding of a transform of all ``m`` elements of the array, relative to its
largest terms, ``|err[i]| <= rho(dtype, m) max_j Tn[j]`` (the same
probabilistic ``lambda sqrt(m) u`` as above, for the ``m`` points the
transform mixes). An element that is exactly 0 (a window over padding only)
comes out as 1e-16 of its neighbours. Beyond ``allowed`` that is not a pass
(an element is still judged by its own terms: the same 1e-9 next to 1e6 from
a dropped bias is not a pass either), but it is not a wrong rule: it is
imprecise. So

    bound[i] = allowed[i] + max(sqrt(u(dtype)) * Tn[i], rho(dtype, m) * max_j Tn[j])

The normwise part is a rounding level (7e-14 of the largest terms in float64
for m = 100), so a wrong rule, off by a whole term, still FAILs (the bug zoo
checks every mutant); ``tests/test_counterparts.py`` checks that FFT
convolution and the summed-area average pool get no FAIL.

Finite differences
------------------
A central difference ``(phi(h) - phi(-h)) / 2h`` of ``phi(t) = <g, f(x + t v)>``
has truncation error ``h^2 |phi'''| / 6`` and noise error ``eps / h``, ``eps``
the noise of ``phi`` (rounding, or worse in a sloppy forward). For a forward
right to rounding, ``eps ~ u |phi|`` and ``h = FD_STEP = 1e-6`` (about
``u^(1/3)``) gives a relative accuracy ``FD_RTOL = 1e-7`` with ample margin.
A noisier forward must not make a right backward FAIL: ``eps`` is *measured*
along the direction (Moré and Wild, "Estimating computational noise", SIAM J.
Sci. Comput. 2011: the k-th differences of ``phi`` on a grid of spacing
``NOISE_SPACING`` are pure noise for a smooth ``phi``; ``noise_level``), the
step grows as ``h = FD_STEP * cbrt(eps / (u |phi|))`` (the balance of the two
errors), and the allowance grows by ``NOISE_SIGMAS * eps / h`` plus the
truncation measured by Richardson's comparison of the steps h and 2h.

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

#: the constant lambda of the sqrt(n) bound, see the module docstring (SAFETY**2 = 4096 terms are covered rigorously)
SAFETY = 64.0

#: finite-difference step for a float64 forward right to rounding (u^(1/3) ~ 5e-6, rounded; directions are unit-scale)
FD_STEP = 1e-6
#: relative accuracy of a float64 central difference at FD_STEP for unit-scale smooth functions
FD_RTOL = 1e-7
#: the largest step finite differences take for a noisy forward: 10 * FD_STEP * cbrt(1e6), far below values.GAP / 4
FD_MAX_STEP = 1e-3
#: spacing of the grid on which the forward's noise is measured (its k-th differences of the smooth part are h^k f^(k))
NOISE_SPACING = 1e-6
#: points of that grid (Moré and Wild use 7 or 8)
NOISE_POINTS = 8
#: the difference orders whose estimates are combined (their maximum: an overestimate only widens the allowance)
NOISE_ORDERS = (4, 5, 6)
#: the noise estimate is a standard deviation; the bound on one difference of two noisy values takes this many
NOISE_SIGMAS = 4.0
#: a forward whose noise is within this factor of one rounding of |phi| is "right to rounding": step FD_STEP, no widening
#: (8 = 2^3: below it the balanced step would be less than 2 * FD_STEP)
NOISE_QUIET = 8.0


def rho(dtype: str, fan_in: int) -> float:
    """The relative rounding bound of a sum of ``fan_in`` terms in ``dtype``, relative to the sum of their magnitudes."""
    return SAFETY * UNIT_ROUNDOFF[dtype] * math.sqrt(fan_in + 1)


def imprecise_rtol(dtype: str) -> float:
    """The width of the imprecise band relative to the naive term scale: sqrt(u) (see the module docstring)."""
    return math.sqrt(UNIT_ROUNDOFF[dtype])


@dataclass(frozen=True)
class Tolerance:
    """``allowed = rtol * scale + atol + slack`` elementwise; FAIL beyond ``allowed + band * naive_scale``.

    ``scale`` is the element's term scale (``None``: ``|expected|``); ``naive_scale`` the naive formula's
    (``None``: ``scale``); ``band`` 0 means there is no imprecise outcome (beyond ``allowed`` is FAIL).
    ``rtol`` is the implementation's own rounding bound, ``oracle_rtol`` the oracle's (float64) on the same terms.
    """

    rtol: float
    atol: float
    slack: np.ndarray | float = 0.0
    scale: np.ndarray | None = None
    naive_scale: np.ndarray | None = None
    band: float = 0.0
    oracle_rtol: float = 0.0
    dtype: str | None = None

    def term_scale(self, expected: np.ndarray) -> np.ndarray:
        return np.abs(expected) if self.scale is None else np.broadcast_to(self.scale, np.shape(expected))

    def allowed(self, expected: np.ndarray) -> np.ndarray:
        return (self.rtol + self.oracle_rtol) * self.term_scale(expected) + self.atol + self.slack

    def bound(self, expected: np.ndarray) -> np.ndarray:
        """The FAIL line: beyond ``allowed`` but within it is imprecise."""
        allowed = self.allowed(expected)
        if not self.band:
            return allowed
        naive = self.term_scale(expected) if self.naive_scale is None else np.broadcast_to(self.naive_scale, np.shape(expected))
        largest = float(naive.max()) if naive.size else 0.0  # see "Algorithms with normwise bounds only"
        normwise = SAFETY * UNIT_ROUNDOFF[self.dtype] * math.sqrt(naive.size + 1) * largest if self.dtype else 0.0
        return allowed + np.maximum(self.band * naive, normwise)


def float32_slack(reference_error: np.ndarray | None) -> np.ndarray | float:
    """Extra room, elementwise, for a float32 result: twice the error torch's own float32 kernel makes there.

    The magnitude model bounds the direct sum and correctly rounded elementary
    functions; torch's float32 kernels use other algorithms (approximations of
    exp/log of a few ulps, oneDNN's convolution algorithms). So a float32 result
    may be off by what torch's float32 kernel is off by on the same inputs
    (``|torch32 - torch64|``, measured per case), doubled, on top of the model.
    Non-finite differences (torch32 overflowing) grant nothing.
    """
    if reference_error is None:
        return 0.0
    err = np.abs(np.asarray(reference_error, dtype=np.float64))
    return 2.0 * np.where(np.isfinite(err), err, 0.0)


def _scale(expected: np.ndarray) -> float:
    finite = np.abs(expected[np.isfinite(expected)]) if expected.size else np.zeros(0)
    return float(finite.max()) if finite.size else 0.0


def _sanitized(scale: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Non-finite term scales replaced by the array's largest finite one (or |expected|'s): the neighbour rule."""
    scale = np.abs(np.asarray(scale, dtype=np.float64))
    finite = np.isfinite(scale)
    if finite.all():
        return scale
    fallback = max(float(scale[finite].max()) if finite.any() else 0.0, _scale(np.asarray(expected, np.float64)))
    return np.where(finite, scale, fallback)


def for_sum(
    dtype: str,
    fan_in: int,
    expected: np.ndarray,
    reference_error: np.ndarray | None = None,
    *,
    scale: np.ndarray | None = None,
    naive_scale: np.ndarray | None = None,
) -> Tolerance:
    """Tolerance for an array computed in ``dtype`` as sums of ``fan_in`` terms, compared to an exact ``expected``.

    With ``scale`` (the per-element term scale of ``oracle.magnitudes``): the per-element bound of the
    module docstring, with an imprecise band of ``sqrt(u) * naive_scale``. Without it (comparisons of two
    results of the implementation, the diagnosis): ``rtol * (|expected| + max|expected|)``, the neighbour
    rule, and no imprecise band.
    """
    expected = np.asarray(expected, dtype=np.float64)
    r = rho(dtype, fan_in)
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    slack = float32_slack(reference_error)
    if scale is None:
        atol = max(r * _scale(expected), tiny)
        return Tolerance(rtol=r, atol=atol, slack=slack)
    scale = _sanitized(np.broadcast_to(scale, expected.shape), expected)
    naive = scale if naive_scale is None else np.maximum(_sanitized(np.broadcast_to(naive_scale, expected.shape), expected), scale)
    return Tolerance(rtol=r, atol=(fan_in + 1) * tiny, slack=slack, scale=scale, naive_scale=naive,
                     band=imprecise_rtol(dtype), oracle_rtol=rho("float64", fan_in), dtype=dtype)


def for_finite_differences(
    dtype: str, fan_in: int, expected: np.ndarray, reference_error: np.ndarray | None = None, *, extra: np.ndarray | float = 0.0
) -> Tolerance:
    """Tolerance for a backward in ``dtype`` checked against float64 central differences.

    ``extra``: the finite differences' own measured error (noise / h and truncation, ``fd_error``).
    """
    base = for_sum(dtype, fan_in, expected, reference_error)
    slack = np.asarray(base.slack, dtype=np.float64) + np.asarray(extra, dtype=np.float64)
    return Tolerance(rtol=max(base.rtol, FD_RTOL), atol=max(base.atol, FD_RTOL * max(_scale(expected), 1.0)), slack=slack)


def for_adjoint(dtype: str, n_products: int, abs_sum: float) -> float:
    """Allowed |<F dx, dy> - <dx, F^T dy>| for inner products of ``n_products`` terms whose magnitudes sum to ``abs_sum``."""
    return 2 * SAFETY * UNIT_ROUNDOFF[dtype] * math.sqrt(n_products + 1) * max(abs_sum, np.finfo(np.float64).tiny)


# --------------------------------------------------------------------------- finite differences: noise and step


def noise_level(values: np.ndarray) -> float:
    """Moré and Wild's estimate of the noise (a standard deviation) of ``phi`` from its values on an even grid.

    For k-th differences ``D^k`` of the values, ``sigma_k^2 = gamma_k * mean((D^k)^2)``, ``gamma_k = (k!)^2 / (2k)!``:
    exact for independent noise of standard deviation sigma, and the smooth part contributes ``h^k phi^(k)``
    only, negligible at ``NOISE_SPACING`` for k >= 4. The maximum over ``NOISE_ORDERS`` (an overestimate
    only widens the allowance). Non-finite values: infinite noise.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        return math.inf
    estimates = []
    for k in NOISE_ORDERS:
        if k >= values.size:
            continue
        d = np.diff(values, n=k)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        estimates.append(math.sqrt(gamma * float(np.mean(d * d))))
    return max(estimates, default=0.0)


def fd_step(noise: float, magnitude: float) -> float:
    """The central-difference step for a ``phi`` of this noise and magnitude (see the module docstring)."""
    floor = UNIT_ROUNDOFF["float64"] * max(magnitude, np.finfo(np.float64).tiny)
    if not math.isfinite(noise) or noise <= NOISE_QUIET * floor:
        return FD_STEP
    return min(FD_MAX_STEP, FD_STEP * (noise / floor) ** (1.0 / 3.0))


def fd_error(noise: float, step: float, truncation: float = 0.0) -> float:
    """The error finite differences may make on their own: the noise magnified by 1/h, and the measured truncation."""
    if not math.isfinite(noise):
        return 0.0  # a non-finite forward is judged by the forward check, not widened here
    return NOISE_SIGMAS * noise / step + 2.0 * truncation
