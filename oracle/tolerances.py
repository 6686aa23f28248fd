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
formulas, but a right rule can still lose digits, in two ways.

* A known naive formula (``oracle.precision``): ``-log(1 - p)`` instead of
  ``-log1p(-p)``, a formula that forms ``1 + exp(-z)``, a one-pass variance
  ``E[x^2] - E[x]^2``. It is a sum of other terms, the *naive* term scale
  ``Tn[i] >= T[i]`` (the 1 in ``1 - p``; ``mean(x^2)`` rather than the variance;
  ``oracle.magnitudes``), and it rounds like any sum of its terms: within
  ``rho(dtype, n) Tn[i]``, the same bound as ``allowed`` on its own terms.
* Any other right arrangement that loses up to half the digits of the
  element's own term scale: ``sqrt(u) T[i]`` is the classic line of gradient
  checking (a finite-difference gradient is right to about ``sqrt(u)`` and no
  more, so no check can see a smaller difference as a rule).

An element is ``imprecise`` when its error is within

    bound[i] = allowed[i] + max(sqrt(u(dtype)) T[i], rho(dtype, n) Tn[i])

and FAIL beyond. A wrong rule is wrong by a whole term or factor, which on the
drawn cases (O(1) values, at most ~10^4 terms) is at least ``1e-4 T``, far
beyond ``sqrt(u) = 1.5e-8`` (float64) and, for the fan-ins the strategies
draw, beyond ``2.4e-4`` (float32). The naive formula's own rounding is not
widened to ``sqrt(u) Tn``: where ``Tn`` is far above ``T`` (a one-pass variance
at values ``1000 + N(0, 1)``: ``Tn / T ~ 10^6``) that would be a band of
``10^-2 T``, wide enough for a wrong mean term. The bug zoo checks this: every
mutant still FAILs (tests/test_zoo.py), and its report counts the cases where
a wrong rule is only imprecise.

Algorithms with normwise bounds only
------------------------------------
Direct summation in any order meets the per-element bound above. Other right
algorithms do not: a convolution by FFT, a summed-area table (cumulative sums)
for average pooling, Winograd or Strassen-like products spread each element's
rounding over the whole array, so their error bound is *normwise*. An element
that is exactly 0 (a window over padding only) comes out as rounding noise of
its neighbours' size. Beyond ``allowed`` that is not a pass (an element is
still judged by its own terms: the same 1e-9 next to 1e6 from a dropped bias is
not a pass either), but it is not a wrong rule: it is imprecise. So

    bound[i] = allowed[i] + max(sqrt(u(dtype)) * Tn[i], N)

with ``N`` the normwise bound of the result, the larger of two:

* ``rho(dtype, m) * max_j Tn[j]``, ``m`` the result's size: a transform that
  mixes the result's own terms (the cumulative sums of a summed-area table,
  the same probabilistic ``lambda sqrt(m) u`` as above for the ``m`` points).
* For a bilinear op whose every result is a correlation of two operands ``a``
  and ``b`` (conv2d: ``(x, W)`` for the output, ``(G, W)`` for dX, ``(X, G)``
  for dW; ``oracle.magnitudes.normwise`` gives ``||a||_F ||b||_F`` and ``m``):
  ``normwise_bound = rho(dtype, m ceil(log2 m) + n) * ||a||_F ||b||_F``, ``m`` the
  points of the transform (the linear convolution's size, each dimension rounded
  up to a power of two: the largest transform an FFT convolution without
  wrap-around takes), ``n`` the fan-in. This is the FFT convolution's bound:
  it computes ``F^-1(sum_c F a_c . conj(F b_c))`` for every shift, also the
  ones the result discards (stride) or that meet padding only, so the result's
  own terms (0 there) do not bound it. Per element ``i``, with Higham's
  normwise bound of the FFT (*Accuracy and Stability*, Theorem 24.2:
  ``||fl(F a) - F a||_2 <= t eta ||F a||_2``, ``t = log2 m``, ``eta ~ 6.7 u``
  for twiddle factors right to ``u``):
  - the forward transforms are exact transforms of ``a_c + da_c`` with
    ``||da_c||_2 <= t eta ||a_c||_2`` (``F / sqrt(m)`` is unitary); element
    ``i`` of the correlation of ``da_c`` with ``b_c`` is one inner product:
    at most ``t eta ||a_c||_2 ||b_c||_2`` (Cauchy-Schwarz); likewise for ``b_c``;
  - the products and the sum over the ``Cg <= n`` channels perturb each
    spectral value by ``(sqrt2 gamma_2 + gamma_Cg) sum_c |A_c| |B_c|``; the
    inverse transform averages them: at most ``(2.9 u + gamma_Cg) sum_c
    ||a_c||_2 ||b_c||_2`` at any element (Parseval, ``||F a||_2 = sqrt(m) ||a||_2``);
  - the inverse transform adds ``t eta ||z||_2 <= t eta sqrt(m) ||a||_F ||b||_F``
    (each ``|z_i| <= ||a||_F ||b||_F``), a bound on every element;
  - ``sum_c ||a_c||_2 ||b_c||_2 <= ||a||_F ||b||_F`` (Cauchy-Schwarz), over
    channels, groups and the batch.
  Together ``|err_i| <= (t eta (2 + sqrt(m)) + 2.9 u + gamma_Cg) ||a||_F ||b||_F``,
  and ``64 sqrt(m t + n + 1) u`` covers that for ``t <= 20`` (``m`` up to 10^6)
  and ``Cg <= n <= 2000``: rigorous for radix-2 FFTs there; mixed radices and
  Bluestein's algorithm have bounds of the same form with a few times ``eta``,
  within the margin (``64 / (6.7 sqrt(t))``, 3 at ``t = 10``); beyond that it
  is the probabilistic bound again (errors of the ``t`` stages add like a
  random walk, ``sqrt(t)`` rather than ``t``).

``N`` is a rounding level (``7.2e-13 ||a||_F ||b||_F`` in float64, ``3.9e-4`` in
float32, for a 16 x 16 image and a 3 x 3 filter: m = 32 x 32), so a wrong rule,
off by a whole term, still FAILs (the bug zoo checks every mutant, in float64); ``tests/test_counterparts.py`` checks that FFT
convolution and the summed-area average pool get no FAIL.

Every check judges each element this way. The backward against finite
differences widens by ``N`` only (its pass line is already ``FD_RTOL``), along
a direction ``v`` by ``N ||v||_1`` (``|sum_i err_i v_i| <= max_i |err_i| ||v||_1``).
Comparisons of two results of the implementation (the identities "stride-s
backward = stride-1 backward of the dilated G") allow both sides their
rounding: ``rho(dtype)`` for each, the band twice.

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

Second order (``oracle.second_order``)
--------------------------------------
The double backward ``r = d<v, B(g, x)>/d(g, x)`` (``B`` the first-order
backward, ``v`` a direction per gradient) is the backward of a backward: each
of its sums is the product rule applied to a first-order sum, ``d(sum_k a_k b_k)
= sum_k (da_k b_k + a_k db_k)``, so it has at most twice the terms, plus the
inner product with ``v``: fan-in ``n2 = 2 n + 1`` (``second_order_fan_in``).
Its term scales have no per-op rule (``oracle.magnitudes`` covers the first
order); they are *measured* per case from the reference itself: torch's
double backward in float32 and in float64 differ by torch's float32 rounding
``e32``, at most ``rho(float32, n2) T2`` at each element, so ``T2 >= e32 / u32``
(an overestimate by up to the factor ``SAFETY sqrt(n2 + 1)``), and
``T2 >= |r|`` always. Each element is then judged against the largest of these
over the result, the neighbour rule (``for_second_order``):

    T2 = max_j max(|r_j|, e32_j / u(float32))
    allowed = (rho(dtype, n2) + rho(float64, n2)) T2 + (n2 + 1) tiny + slack,  slack = 2 e32 in float32

and FAIL beyond ``allowed + sqrt(u(dtype)) T2`` (the imprecise band). An
element's rounding is bounded by its own terms, never more than the largest
terms of the result: ``T2`` is an underestimate only if the result cancels at
its largest element *and* torch's float32 kernel rounds every element far
better than its bound; a first-order rule off by a whole term moves ``r`` by
a whole term of its largest elements, beyond ``sqrt(u) T2``. A backward cut
from the graph gives ``r = 0`` where the reference is of size ``T2``.

Against central differences of the implementation's own float64 backward along
a direction ``w`` (``phi(t) = <v, B(g + t w_g, x + t w_x)>``), as for the first
order ("Finite differences", above: the same step, noise measurement and
Richardson truncation), with one more term: ``B``'s rounding. A backward right
to rounding is "quiet" when its measured noise is within ``NOISE_QUIET u M``,
``M = sum |v| T_B`` (``T_B`` its term scales), so each difference errs by at
most ``NOISE_SIGMAS max(noise, NOISE_QUIET u M) / h`` (``fd_second_order_error``):
at ``h = 1e-6``, ``3.5e-9 M``, against a second order of the size of ``M``
for the smooth ops (and exact differences for the bilinear ones, linear in each
input).

Adjoint identity
----------------
``<F dx, dy>`` and ``<dx, F^T dy>`` are two sums of the same products in a
different order: both are within ``n_total * u`` (relative to the sum of the
absolute products) of the exact value, ``n_total`` the number of products: a
pass within ``for_adjoint``. Each element of ``F dx`` and of ``F^T dy`` is a
result like any other, with its per-element FAIL line ``bound[i]`` (above, from
its term scales and normwise bound); the inner products add each element's
error times ``|dy_i|`` (resp. ``|dx_j|``). So the identity is imprecise within

    for_adjoint + sum_i (bound - allowed)[F dx]_i |dy_i| + sum_j (bound - allowed)[F^T dy]_j |dx_j|

and FAILs beyond (``adjoint_band``): an FFT convolution's normwise rounding
of ``F dx`` where ``dy`` is large is imprecise, a wrong transpose (off by whole
terms) is a FAIL.

Forward mode (JVP)
------------------
A forward-mode rule ``NAME_jvp`` returns the output and its tangent ``J v``, ``v`` the tangents of the
differentiable inputs. The output is the forward's and is judged as the forward is. The tangent is linear in
``v``: each element is a sum of the terms ``J_ij v_j`` over the inputs (the product rule of a bilinear op:
``conv(dx, W) + conv(x, dW) + db``), each ``J_ij`` carrying the rounding of the derivative it is computed from.
So it is judged exactly as a backward element is, with

* its term scale ``T_jvp = |J| |v|`` (``oracle.magnitudes.jvp``: the magnitudes rule applied to
  ``(|x|, |dx|, |W|, |dW|)``: ``conv(|dx|, |W|) + conv(|x|, |dW|) + |db|``; the backward rule with the tangent as
  grad_output where the Jacobian is symmetric), and its naive scale for the imprecise band;
* its fan-in ``jvp_fan_in(n, k) = k (n + 1)``: ``k`` tangents, each contributing a sum of at most the forward's
  ``n`` terms, then added together (``k - 1`` additions, covered by the ``+ 1`` per term);
* the normwise bound of a correlation for each of the ``k`` terms (an FFT-based forward applied to a tangent),
  ``rho(dtype, m log2 m + n) sum_k ||a_k||_F ||b_k||_F``: the bound above, for a sum of ``k`` such results.

Against finite differences of the implementation's own forward (float64), elementwise: the output at
``x +- h v`` (every differentiable input moved along its tangent at once), ``(f(x + h v) - f(x - h v)) / 2h``
against the tangent along the displacement really made (``((x + h v) - (x - h v)) / 2h``, passed as the JVP's
tangent). The noise is measured per output element (``noise_levels``: Moré and Wild on each element's values
along ``v``), the step is the largest any element needs (``fd_step``), and each element's allowance widens by
its own ``fd_error``: the tolerance is ``for_finite_differences`` element by element.

The forward-reverse identity ``<J v, w> = <v, J^T w>`` between the implementation's JVP and its backward is the
adjoint identity of a linear map (``J`` at the case's point): ``for_adjoint`` on the products of both sides and
the term scales of both results, ``adjoint_band`` for the imprecise band. It holds for every op, linear or not.

Half precision: float16 and bfloat16 (on request)
-------------------------------------------------
``u(float16) = 2^-11``, ``u(bfloat16) = 2^-8``. The bound above, ``SAFETY u sqrt(n + 1) T``, is the rounding
of a sum carried out *in the dtype*; in half precision it says nothing (bfloat16, n = 100: ``2.5 T``, more
than a wrong rule is off by), and no half-precision kernel worth checking sums that way. What is relied on
instead is how torch computes half precision on the CPU (and cuBLAS / cuDNN / oneDNN by default): the inputs
are read as they are, every sum and elementary function is evaluated in float32 (ATen's ``opmath_type`` of
``Half`` and ``BFloat16`` is ``float``: ``at::vec`` converts each vector of half values to float32, reduces
and converts back; oneDNN's bf16/f16 convolutions and matmuls accumulate in f32), and a value is rounded to the
half dtype only where it is *stored*: the result, and in a composite the tensors between its nodes (a softmax
output saved for the backward, the gradient cross_entropy's nll_loss hands to log_softmax). Measured here (torch
2.13, CPU): linear (300 terms), conv2d (144 terms), a sum of 3000 values, softmax and avg_pool2d in float16 and in
bfloat16 are bit for bit the float32 result of the same inputs rounded once to the dtype. So, per element,

    rho(half, n) = HALF_ROUNDINGS u(half) + rho(float32, n)

``HALF_ROUNDINGS = 8`` roundings to the half dtype, each a relative ``u(half)`` of a value whose terms are
among the element's (the result: ``|r| <= T``; a stored intermediate enters the element through the same
derivative the term scale propagates it by), plus the float32 sum of the same ``n`` terms. The inputs add
nothing: they are drawn, rounded to the dtype and given to the oracle as those exact values
(``oracle.values.make``). The underflow allowance is ``HALF_ROUNDINGS tiny(half) + (n + 1) tiny(float32)``
(a stored value flushed or made subnormal, each float32 operation). The room torch needs is measured as in
float32: ``float32_slack``, twice ``|torch_half - torch64|`` on the case's own inputs, so torch's half kernels
(those that do keep an accumulator in half, if any) pass by construction, and so does any implementation
within twice their error.

What that decides:

* a right rule computed in float32 (or float64) and rounded once to the dtype is within ``u |r| + rho(float32, n) T``:
  a pass; a rule that also keeps its intermediates in half, a pass for up to 8 of them;
* a rule that *accumulates in the half dtype* errs like a random walk, ``~ sqrt(n) u T`` (Higham and Mary), up to
  ``n u T``: within the imprecise band ``sqrt(u) T`` for ``n <= 1/u`` (256 terms in bfloat16, 2048 in float16)
  on the random-walk estimate: imprecise, not FAIL; beyond, or unlucky, a FAIL (an error as large as a term
  of the result is not a rounding any check can tell from a wrong rule);
* a wrong rule is off by a whole term (``>= 1e-4 T`` on the drawn O(1) values, and on the small cases
  Hypothesis shrinks to, a large part of ``T``): beyond ``(8 u + sqrt(u)) T`` = ``0.094 T`` in bfloat16 and
  ``0.026 T`` in float16 (plus torch's own error), so on the smallest failing cases it FAILs:
  ``examples/native/conv2d_function_buggy.py`` (grad_x without the stride) and ``conv2d_function_jvp_buggy.py``
  (a wrong sign) are caught in bfloat16 and float16, and ``functional_float32.py`` (every op in float32, rounded
  once: right, and different from torch's half kernels in the last bits) passes (``tests/test_half_precision.py``).

Results beyond the dtype's range: drawn inputs are kept within ``oracle.dtypes.MAGNITUDE_LIMIT`` (float16: 128)
so that sums, squares and losses of the drawn sizes stay in range. A case whose exact output or gradient still
overflows the dtype (BCE's ``1/1e-12`` gradient at p = 0 in float16: no value of the dtype is right there, and
torch's own rules give inf or NaN depending on the path), or where torch's own half-precision kernel gives
NaN/inf where the exact value is finite (an intermediate of the standard formulas out of range: batch_norm's
``1/sqrt(eps)`` of a constant channel), is skipped with that reason (``oracle.checks.beyond_half_range``).

The checks in half precision: forward, backward and the JVP against torch (float64 truth, torch's half result
as its room), the adjoint identity and the derivation's identities (both sides the implementation's, each
with the rounding above), and finite differences: as in float32, the half-precision backward against central
differences of the implementation's forward *evaluated in float64* (differences in half precision would be
meaningless: a step of ``u^(1/3) = 0.16`` in bfloat16). The second order is not checked in half precision
(``oracle.second_order``: its term scales are measured from torch's float32 double backward and its
differences from the float64 backward; the row is skipped with that reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from oracle import dtypes

#: unit roundoff per dtype (float16: 2^-11, a 10-bit fraction; bfloat16: 2^-8, a 7-bit fraction)
UNIT_ROUNDOFF = {"float64": float(np.finfo(np.float64).eps) / 2, "float32": float(np.finfo(np.float32).eps) / 2,
                 "float16": 2.0**-11, "bfloat16": 2.0**-8}

#: the roundings to a half dtype allowed per element: the result's, and the stored intermediates' of the standard
#: formulas (see "Half precision"); every sum in float32
HALF_ROUNDINGS = 8
#: the dtypes whose sums are modelled as float32 accumulations with HALF_ROUNDINGS roundings to the dtype
HALF_DTYPES = ("float16", "bfloat16")

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
    """The relative rounding bound of a sum of ``fan_in`` terms in ``dtype``, relative to the sum of their magnitudes.

    ``SAFETY u sqrt(n + 1)`` (the module docstring); for a half dtype the float32 accumulation model,
    ``HALF_ROUNDINGS u + rho(float32, n)`` ("Half precision").
    """
    if dtype not in UNIT_ROUNDOFF:
        raise ValueError(f"dtype must be one of {', '.join(UNIT_ROUNDOFF)}, got {dtype!r}")
    if dtype in HALF_DTYPES:
        return HALF_ROUNDINGS * UNIT_ROUNDOFF[dtype] + rho("float32", fan_in)
    return SAFETY * UNIT_ROUNDOFF[dtype] * math.sqrt(fan_in + 1)


def underflow(dtype: str, fan_in: int) -> float:
    """The absolute allowance below the smallest normal number: ``(n + 1) tiny(dtype)``; for a half dtype
    ``HALF_ROUNDINGS tiny(half) + (n + 1) tiny(float32)`` (its sums are float32's; see "Half precision")."""
    if dtype in HALF_DTYPES:
        return HALF_ROUNDINGS * dtypes.TINY[dtype] + (fan_in + 1) * dtypes.TINY["float32"]
    return (fan_in + 1) * dtypes.TINY[dtype]


def imprecise_rtol(dtype: str) -> float:
    """The width of the imprecise band relative to the element's term scale: sqrt(u) (see the module docstring)."""
    return math.sqrt(UNIT_ROUNDOFF[dtype])


@dataclass(frozen=True)
class Tolerance:
    """``allowed = rtol * scale + atol + slack``; FAIL beyond ``allowed + sides * max(band * scale, rtol * naive_scale, N)``.

    ``scale`` is the element's term scale (``None``: ``|expected|``); ``naive_scale`` the naive formula's
    (``None``: ``scale``), which rounds within ``rtol`` of it; ``band`` the imprecise band relative to ``scale``;
    ``N`` the normwise bound: the larger of
    ``normwise`` (absolute, from ``normwise_bound``) and, where there is a ``band``, ``rho(dtype, size) max naive``.
    No band and no ``normwise``: there is no imprecise outcome (beyond ``allowed`` is FAIL).
    ``rtol`` is the implementation's own rounding bound, ``oracle_rtol`` the oracle's (float64) on the same terms;
    ``sides`` 2 when both results compared are the implementation's (``for_pair``).
    """

    rtol: float
    atol: float
    slack: np.ndarray | float = 0.0
    scale: np.ndarray | None = None
    naive_scale: np.ndarray | None = None
    band: float = 0.0
    oracle_rtol: float = 0.0
    dtype: str | None = None
    normwise: float = 0.0
    sides: int = 1

    @property
    def has_band(self) -> bool:
        """Whether there is an imprecise outcome between ``allowed`` and ``bound``."""
        return bool(self.band) or bool(self.normwise)

    def term_scale(self, expected: np.ndarray) -> np.ndarray:
        return np.abs(expected) if self.scale is None else np.broadcast_to(self.scale, np.shape(expected))

    def allowed(self, expected: np.ndarray) -> np.ndarray:
        return (self.rtol + self.oracle_rtol) * self.term_scale(expected) + self.atol + self.slack

    def bound(self, expected: np.ndarray) -> np.ndarray:
        """The FAIL line: beyond ``allowed`` but within it is imprecise."""
        allowed = self.allowed(expected)
        if not self.has_band:
            return allowed
        naive = self.term_scale(expected) if self.naive_scale is None else np.broadcast_to(self.naive_scale, np.shape(expected))
        normwise = self.normwise  # see "Algorithms with normwise bounds only"
        if self.band and self.dtype and naive.size:
            normwise = max(normwise, rho(self.dtype, naive.size) * float(naive.max()))
        band = np.maximum(self.band * self.term_scale(expected), self.rtol * naive) if self.band else 0.0
        return allowed + self.sides * np.maximum(band, normwise)


def normwise_bound(dtype: str, fan_in: int, normwise: tuple[float, int] | None) -> float:
    """``rho(dtype, m ceil(log2 m) + n) ||a||_F ||b||_F`` for ``normwise = (||a||_F ||b||_F, m)``, 0 for None.

    The per-element error bound of an FFT-based (normwise) algorithm for a correlation of ``a`` and ``b``
    over a transform of ``m`` points, ``n = fan_in``: see "Algorithms with normwise bounds only".
    """
    if normwise is None:
        return 0.0
    scale, points = normwise
    rounds = points * math.ceil(math.log2(max(points, 1))) + fan_in
    return rho(dtype, rounds) * scale if math.isfinite(scale) else 0.0


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
    normwise: tuple[float, int] | None = None,
) -> Tolerance:
    """Tolerance for an array computed in ``dtype`` as sums of ``fan_in`` terms, compared to an exact ``expected``.

    With ``scale`` (the per-element term scale of ``oracle.magnitudes``): the per-element bound of the
    module docstring, with an imprecise band of ``max(sqrt(u) scale, rho naive_scale)`` and the normwise bound
    (``normwise``: ``(||a||_F ||b||_F, m)`` from ``oracle.magnitudes.normwise``, or None). Without it
    (the diagnosis): ``rtol * (|expected| + max|expected|)``, the neighbour rule, and no imprecise band.
    """
    expected = np.asarray(expected, dtype=np.float64)
    r = rho(dtype, fan_in)
    tiny = dtypes.TINY[dtype]
    slack = float32_slack(reference_error)
    if scale is None:
        atol = max(r * _scale(expected), tiny)
        return Tolerance(rtol=r, atol=atol, slack=slack)
    scale = _sanitized(np.broadcast_to(scale, expected.shape), expected)
    naive = scale if naive_scale is None else np.maximum(_sanitized(np.broadcast_to(naive_scale, expected.shape), expected), scale)
    return Tolerance(rtol=r, atol=underflow(dtype, fan_in), slack=slack, scale=scale, naive_scale=naive,
                     band=imprecise_rtol(dtype), oracle_rtol=rho("float64", fan_in), dtype=dtype,
                     normwise=normwise_bound(dtype, fan_in, normwise))


def for_pair(
    dtype: str, fan_in: int, expected: np.ndarray, *, scale: np.ndarray, naive_scale: np.ndarray | None = None,
    normwise: tuple[float, int] | None = None,
) -> Tolerance:
    """``for_sum`` for two results that are both the implementation's, in ``dtype``: each side its own rounding.

    ``rho(dtype)`` for each side instead of the oracle's ``rho(float64)``; the imprecise band twice.
    """
    one = for_sum(dtype, fan_in, expected, scale=scale, naive_scale=naive_scale, normwise=normwise)
    return replace(one, oracle_rtol=one.rtol, atol=2 * one.atol, sides=2)


def for_finite_differences(
    dtype: str, fan_in: int, expected: np.ndarray, reference_error: np.ndarray | None = None, *,
    extra: np.ndarray | float = 0.0, normwise: float = 0.0, scale: np.ndarray | float | None = None,
) -> Tolerance:
    """Tolerance for a backward in ``dtype`` checked against float64 central differences.

    ``extra``: the finite differences' own measured error (noise / h and truncation, ``fd_error``).
    ``normwise``: the backward's normwise bound (``normwise_bound``, times ``||v||_1`` along a direction v):
    beyond ``allowed`` but within it is imprecise.
    ``scale``: the backward's term scale (``oracle.magnitudes``; along a direction v, ``sum T |v|``), if known:
    its own rounding, ``rho(dtype) T``, is allowed on top. An element that cancels out of large terms (batch_norm's
    grad_x with two values per channel is ``O(eps)`` out of terms of size ``inv_std |G|``) is off by that much in
    float32 however right the rule, and central differences in float64 do not round it away.
    """
    base = for_sum(dtype, fan_in, expected, reference_error)
    slack = np.asarray(base.slack, dtype=np.float64) + np.asarray(extra, dtype=np.float64)
    if scale is not None:
        slack = slack + base.rtol * _sanitized(np.broadcast_to(scale, np.shape(expected)), expected)
    return Tolerance(rtol=max(base.rtol, FD_RTOL), atol=max(base.atol, FD_RTOL * max(_scale(expected), 1.0)), slack=slack,
                     normwise=normwise)


def for_adjoint(dtype: str, n_products: int, abs_sum: float) -> float:
    """Allowed |<F dx, dy> - <dx, F^T dy>| for inner products of ``n_products`` terms whose magnitudes sum to ``abs_sum``:
    ``2 rho(dtype, n_products) abs_sum`` (``2 SAFETY u sqrt(n + 1)``; for a half dtype its float32-accumulation ``rho``)."""
    return 2 * rho(dtype, n_products) * max(abs_sum, np.finfo(np.float64).tiny)


def adjoint_band(sides: list[tuple[Tolerance, np.ndarray, np.ndarray]]) -> float:
    """The imprecise band of the adjoint identity: ``sum_i (bound - allowed)_i |w_i|`` over each side.

    ``sides``: ``(tolerance of a result, the result, the vector it is paired with)`` for ``F dx`` (with ``dy``)
    and ``F^T dy`` (with ``dx``); see "Adjoint identity".
    """
    total = 0.0
    for tolerance, result, weight in sides:
        result = np.asarray(result, np.float64)
        finite = np.where(np.isfinite(result), result, 0.0)
        band = tolerance.bound(finite) - tolerance.allowed(finite)
        total += float(np.sum(band * np.abs(np.asarray(weight, np.float64))))
    return total


def second_order_fan_in(fan_in: int) -> int:
    """The fan-in of the double backward: the product rule doubles each first-order sum, plus the inner product
    with ``v`` (see "Second order")."""
    return 2 * fan_in + 1


def for_second_order(dtype: str, fan_in: int, expected: np.ndarray, reference_error: np.ndarray | None) -> Tolerance:
    """Tolerance for a double backward in ``dtype`` against the float64 reference ``expected``.

    ``fan_in``: the first-order fan-in; ``reference_error``: torch's float32 double backward minus its float64 one
    on the same case (always measured: it estimates the term scales, and is the float32 slack). See "Second order".
    """
    expected = np.asarray(expected, dtype=np.float64)
    n = second_order_fan_in(fan_in)
    terms = np.abs(np.where(np.isfinite(expected), expected, 0.0))
    slack = 0.0
    if reference_error is not None:
        error = np.abs(np.asarray(reference_error, dtype=np.float64))
        error = np.where(np.isfinite(error), error, 0.0)
        terms = np.maximum(terms, error / UNIT_ROUNDOFF["float32"])
        slack = float32_slack(reference_error) if dtype != "float64" else 0.0
    scale = np.full(expected.shape, float(terms.max()) if terms.size else 0.0)
    return Tolerance(rtol=rho(dtype, n), atol=underflow(dtype, n), slack=slack, scale=scale,
                     band=imprecise_rtol(dtype), oracle_rtol=rho("float64", n), dtype=dtype)


def fd_second_order_error(noise: float, magnitude: float, step: float, truncation: float = 0.0) -> float:
    """What central differences of a backward may err by on their own: its noise (at least the quiet level
    ``NOISE_QUIET u magnitude`` of a backward right to rounding) magnified by 1/h, and the measured truncation."""
    floor = NOISE_QUIET * UNIT_ROUNDOFF["float64"] * magnitude
    return fd_error(max(noise, floor) if math.isfinite(noise) else noise, step, truncation)


# --------------------------------------------------------------------------- finite differences: noise and step


def noise_level(values: np.ndarray) -> float:
    """Moré and Wild's estimate of the noise (a standard deviation) of ``phi`` from its values on an even grid.

    For k-th differences ``D^k`` of the values, ``sigma_k^2 = gamma_k * mean((D^k)^2)``, ``gamma_k = (k!)^2 / (2k)!``:
    exact for independent noise of standard deviation sigma, and the smooth part contributes ``h^k phi^(k)``
    only, negligible at ``NOISE_SPACING`` for k >= 4. The maximum over ``NOISE_ORDERS`` (an overestimate
    only widens the allowance). Non-finite values: infinite noise.
    """
    return float(noise_levels(np.asarray(values, dtype=np.float64).reshape(-1, 1))[0])


def noise_levels(values: np.ndarray) -> np.ndarray:
    """``noise_level`` of each element at once: ``values`` has the grid's points along axis 0, the elements after it."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(values.shape[0], -1)
    out = np.full(flat.shape[1], math.inf)
    finite = np.all(np.isfinite(flat), axis=0)
    series = flat[:, finite]
    best = np.zeros(series.shape[1])
    for k in NOISE_ORDERS:
        if k >= series.shape[0]:
            continue
        d = np.diff(series, n=k, axis=0)
        gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
        best = np.maximum(best, np.sqrt(gamma * np.mean(d * d, axis=0)))
    out[finite] = best
    return out.reshape(values.shape[1:])


def jvp_fan_in(fan_in: int, tangents: int) -> int:
    """The fan-in of an output tangent element: ``tangents`` sums of ``fan_in`` terms each, added (see "Forward mode")."""
    return max(tangents, 1) * (fan_in + 1)


def fd_step(noise: float, magnitude: float) -> float:
    """The central-difference step for a ``phi`` of this noise and magnitude (see the module docstring)."""
    floor = max(UNIT_ROUNDOFF["float64"] * magnitude, np.finfo(np.float64).tiny)  # no underflow to 0 for a 0 magnitude
    if not math.isfinite(noise) or noise <= NOISE_QUIET * floor:
        return FD_STEP
    return min(FD_MAX_STEP, FD_STEP * (noise / floor) ** (1.0 / 3.0))


def fd_error(noise: float, step: float, truncation: float = 0.0) -> float:
    """The error finite differences may make on their own: the noise magnified by 1/h, and the measured truncation."""
    if not math.isfinite(noise):
        return 0.0  # a non-finite forward is judged by the forward check, not widened here
    return NOISE_SIGMAS * noise / step + 2.0 * truncation


# --------------------------------------------------------------------------- a whole network's gradient (bpcheck demo)

#: the largest deviation of a whole network's float64 gradient from torch autograd's, per tensor, relative to the
#: largest term scale of that tensor (see ``chain_rounding``): sqrt(u), the line of the imprecise band ("Three
#: outcomes" above), 1.05e-8: far above the chain's rounding (~1e-11 for the demo's LeNet), far below a wrong rule
NETWORK_GRADIENT_BOUND = math.sqrt(UNIT_ROUNDOFF["float64"])


def chain_rounding(fan_ins: list[int], amplification: float = 1.0) -> float:
    """The rounding bound of a chain of backward rules in float64, relative to the gradients' term scales.

    A backward rule is linear in its ``grad_output`` g: ``grad_input = J^T g``. Its term
    scale is ``|J|^T |g|`` (``oracle.magnitudes``: the rule on magnitudes), and float64
    makes it err by at most ``rho(n) |J|^T |g|`` on its own (``rho``, fan-in ``n``) plus
    ``|J|^T |e|`` for an error ``e`` already in g. Run the whole backward on magnitudes,
    ``M_k = |J_k|^T M_{k+1}`` from ``M = |dL/dlogits|`` (``|g_k| <= M_k`` all along), and by
    induction the error of every gradient is within ``sum_k rho(n_k) M`` of its exact value;
    torch's float64 autograd sums the same terms, so the two differ by at most twice that.
    The Jacobians are also evaluated at two slightly different forward passes: a relative
    perturbation of each of them of the forward's rounding (``rho`` of the forward's fan-in,
    no more than the backward's), magnified by ``amplification``: 1 for linear maps, routes
    and masks (ReLU, max-pool: the same in both, except within rounding of a kink or a tie,
    of probability ~1e-13 per element on continuous data); for batch_norm the ratio of its
    input's term scale to its standard deviation (a perturbation ``d`` of ``x`` moves ``xhat``
    by ``d inv_std``). So

        |ours - torch| <= (2 + amplification) * sum_k rho(float64, n_k) * M

    ``NETWORK_GRADIENT_BOUND`` (sqrt(u)) sits far above this (the demo's tests check it
    on their networks' fan-ins) and far below a wrong rule, which is off by a whole term:
    ``>= 1e-4`` of the term scale on O(1) values (see "Three outcomes" above; the demo's
    tests run wrong rules through it).
    """
    if not fan_ins or min(fan_ins) < 1:
        raise ValueError(f"fan_ins must be a non-empty list of positive fan-ins, got {fan_ins!r}")
    if not (math.isfinite(amplification) and amplification >= 1):
        raise ValueError(f"amplification must be a finite number >= 1, got {amplification!r}")
    return (2 + amplification) * sum(rho("float64", n) for n in fan_ins)
