"""The term scale of every element of every result: the magnitudes that enter it (see ``oracle.tolerances``).

One rule per op, keyed by the op's name (``RULES``; adding an op is its record
in ``oracle.ops`` plus its rule here, and the assertion at the bottom says so).
A rule maps the case's arrays (float64 copies) and configuration to

    forward(a, cfg)  -> (T, Tn)                    the output's term scale and naive term scale
    backward(a, cfg) -> {input: (T, Tn) or None}   the same for each gradient

``T[i]`` is the sum of the magnitudes of the terms the standard formulas add up
into element ``i`` (so ``|result[i]| <= T[i]``, and a rounding of each term is
at most ``u T[i]``); ``Tn[i] >= T[i]`` is the same for the naive textbook
formula, which also forms ``1 - p`` or ``1 + exp(-z)``: the scale of the
imprecise band.

Sums (conv1d/2d/3d, conv_transpose2d, linear, avg_pool2d, adaptive_avg_pool2d,
flatten, relu, max_pool2d) are the op itself on absolute values, as Higham's
bound has it: ``conv(|x|, |w|) + |b|``, the backward rules on ``|grad_output|`` with ``|x|``, ``|w|``; max-pool routes by
the arg-max of ``x`` itself. They are computed by refimpl (pure NumPy, float64,
no torch: ``bpcheck replay`` needs none), whose rules the suite verifies; a
magnitude only has to be right within a small factor.

Elementwise functions and losses have their formulas written out below, each
with the standard formulas it covers: torch's, and TensorFlow's / JAX's where
they differ (an implementation may follow either).

Bilinear ops whose results a right algorithm may compute by a transform of
whole operands (convolutions by FFT) also have a normwise rule (``NORMWISE``):

    normwise(a, cfg) -> {result: (||a||_F ||b||_F, m)}   result: 'output' or an input's gradient

the Frobenius norms of the two operands each result correlates and the points
``m`` of the transform; ``oracle.tolerances`` ("Algorithms with normwise bounds
only") turns them into the normwise bound.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from oracle.ops import SPECS

#: ATen's clamp of p(1 - p) in the BCE backward (refimpl.losses.EPSILON), as float64
_EPSILON = float(np.float32(1e-12))
#: the unit roundoff of the least precise dtype checked (float32): for rules that must hold in every dtype
_WIDEST_ROUNDOFF = float(np.finfo(np.float32).eps) / 2
_LOG_CLAMP = -100.0


def _abs(a):
    return None if a is None else np.abs(a)


def _same(t):
    return (t, t)


def _reference():
    import refimpl  # noqa: PLC0415 - pure NumPy, loaded on first use

    return refimpl


class Rule:
    """An op's term scales: ``forward(arrays, config) -> (T, Tn)``, ``backward(arrays, config) -> {input: (T, Tn)}``."""

    def __init__(self, forward: Callable, backward: Callable):
        self.forward = forward
        self.backward = backward


# --------------------------------------------------------------------------- sums: the op on absolute values


def _conv_rule(op: str) -> Rule:
    """A convolution of any rank, or the transposed one, on absolute values. Every output element and every
    gradient element is a sum of products of one element of each operand (the transposed convolution's output
    is conv2d's grad_x rule, its grad_x conv2d's forward): ``op(|x|, |W|) + |b|`` and the backward rule on
    ``|G|``, ``|x|``, ``|W|`` add up exactly the terms' magnitudes."""

    def forward(a, cfg):
        return _same(getattr(_reference(), op)(_abs(a["x"]), _abs(a["weight"]), _abs(a["bias"]), **cfg))

    def backward(a, cfg):
        gx, gw, gb = getattr(_reference(), f"{op}_backward")(
            _abs(a["grad_output"]), _abs(a["x"]), _abs(a["weight"]), _abs(a["bias"]), **cfg
        )
        return {"x": _same(gx), "weight": _same(gw), "bias": None if gb is None else _same(gb)}

    return Rule(forward, backward)


def _linear_forward(a, cfg):
    return _same(_reference().linear(_abs(a["x"]), _abs(a["weight"]), _abs(a["bias"])))


def _linear_backward(a, cfg):
    gx, gw, gb = _reference().linear_backward(_abs(a["grad_output"]), _abs(a["x"]), _abs(a["weight"]), _abs(a["bias"]))
    return {"x": _same(gx), "weight": _same(gw), "bias": None if gb is None else _same(gb)}


def _avg_forward(a, cfg):
    return _same(_reference().avg_pool2d(_abs(a["x"]), **cfg))


def _avg_backward(a, cfg):
    return {"x": _same(_reference().avg_pool2d_backward(_abs(a["grad_output"]), a["x"], **cfg))}


def _adaptive_forward(a, cfg):
    return _same(_reference().adaptive_avg_pool2d(_abs(a["x"]), **cfg))


def _adaptive_backward(a, cfg):
    return {"x": _same(_reference().adaptive_avg_pool2d_backward(_abs(a["grad_output"]), a["x"], **cfg))}


def _max_forward(a, cfg):  # no arithmetic: the result is one of the inputs
    return _same(np.abs(_reference().max_pool2d(a["x"], **cfg)))


def _max_backward(a, cfg):  # the gradients routed by x's own arg-max, summed where windows share it
    return {"x": _same(_reference().max_pool2d_backward(_abs(a["grad_output"]), a["x"], **cfg))}


def _relu_forward(a, cfg):
    return _same(np.abs(a["x"]))


def _relu_backward(a, cfg):
    return {"x": _same(np.abs(a["grad_output"]))}


def _flatten_forward(a, cfg):
    x = a["x"]
    return _same(np.abs(x).reshape(x.shape[0], -1))


def _flatten_backward(a, cfg):
    return {"x": _same(np.abs(a["grad_output"]).reshape(a["x"].shape))}


def _norm(a) -> float:
    return float(np.sqrt(np.sum(np.square(a)))) if a is not None else 0.0


def _power_of_two(k: int) -> int:
    return 1 << max(int(k) - 1, 0).bit_length()


def _transform_points(size, cfg, kernel) -> int:
    """The points of the largest transform an FFT convolution without wrap-around takes over an input of
    ``size`` (per axis): the linear convolution's size ``size + 2p + d(k - 1)`` per axis, each rounded up to a
    power of two, multiplied over the axes."""
    m = 1
    for n, p, d, k in zip(size, cfg["padding"], cfg["dilation"], kernel):
        m *= _power_of_two(n + 2 * p + d * (k - 1))
    return m


def _conv_normwise(a, cfg):
    """A convolution of any rank. Output: ``(x, W)``; dX: ``(G, W)``; dW: ``(X, G)`` (zero padding, dilation and
    the stride's zeros add nothing to a norm). ``m``: ``_transform_points`` of x's spatial size (``Hp + d(kH - 1)``
    rows, likewise every other axis)."""
    x, w, g = a["x"], a["weight"], a.get("grad_output")
    m = _transform_points(x.shape[2:], cfg, w.shape[2:])
    nx, nw, ng = _norm(x), _norm(w), _norm(g)
    return {"output": (nx * nw, m), "x": (ng * nw, m), "weight": (nx * ng, m)}


def _transposed_normwise(a, cfg):
    """conv_transpose2d: the adjoint of conv2d on an input of the transposed output's size ``(Ho, Wo)``, so the same
    correlations with the roles exchanged. Output (conv2d's grad_x rule): ``(x, W)``; dX (conv2d's forward of G):
    ``(G, W)``; dW: ``(x, G)``. ``m``: ``_transform_points`` of ``(Ho, Wo)``, the adjoint conv2d's input, whose
    linear convolution with the dilated filter contains every one of these correlations."""
    x, w, g = a["x"], a["weight"], a.get("grad_output")
    kernel = w.shape[2:]
    out = [
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, s, p, d, k, op in zip(x.shape[2:], cfg["stride"], cfg["padding"], cfg["dilation"], kernel, cfg["output_padding"])
    ]
    m = _transform_points(out, cfg, kernel)
    nx, nw, ng = _norm(x), _norm(w), _norm(g)
    return {"output": (nx * nw, m), "x": (ng * nw, m), "weight": (nx * ng, m)}


# --------------------------------------------------------------------------- elementwise functions


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_forward(a, cfg):
    """``max(s, 1 - s)``: torch's ``1 / (1 + exp(-x))`` is right to ``u s``, but XLA's ``0.5 + 0.5 tanh(x / 2)``
    adds terms of size 0.5 and 0.5|tanh|, i.e. ``max(s, 1 - s)`` (as does any ``1 - sigmoid(-x)``)."""
    s = _sigmoid(a["x"])
    return _same(np.maximum(s, 1 - s))


def _sigmoid_backward(a, cfg):
    """``g s (1 - s)`` with ``s`` carrying ``u max(s, 1 - s)`` (above) propagated by ``d[s(1-s)]/ds = 1 - 2s``:
    ``|g| (s(1-s) + max(s, 1-s) |1 - 2s|)``. At saturation this is ``|g|``: torch's own ``g (1 - s) s`` is 0
    where ``s`` rounds to 1, although the derivative is not."""
    s = _sigmoid(a["x"])
    return {"x": _same(np.abs(a["grad_output"]) * (s * (1 - s) + np.maximum(s, 1 - s) * np.abs(1 - 2 * s)))}


def _tanh_forward(a, cfg):
    """``|t|``: torch's tanh is right to ``u |t|``. Naive ``1 + |t|``: ``2 sigmoid(2x) - 1`` or
    ``(e^2x - 1) / (e^2x + 1)`` add terms of size about 1 and cancel to ``t``, right to ``u`` absolute only."""
    t = np.abs(np.tanh(a["x"]))
    return t, 1 + t


def _tanh_backward(a, cfg):
    """torch: ``g (1 - t^2)``: terms ``1`` and ``t^2``, and ``t`` carrying ``u |t|`` propagated by ``d(t^2)/dt = 2t``:
    ``|g| (1 + 3 t^2)``. At saturation this is ``2|g|``: torch's own ``1 - t^2`` is 0 where ``t`` rounds to +-1,
    although the derivative ``4 e^(-2|x|)`` is not."""
    t = np.tanh(a["x"])
    return {"x": _same(np.abs(a["grad_output"]) * (1 + 3 * t * t))}


def _leaky_relu_forward(a, cfg):
    """``x`` or ``slope * x``: one product, ``|leaky_relu(x)|``."""
    x = a["x"]
    return _same(np.abs(np.where(x > 0, x, cfg["negative_slope"] * x)))


def _leaky_relu_backward(a, cfg):
    """``g`` or ``slope * g``: one product, ``|g|`` or ``|slope g|``."""
    g = np.abs(a["grad_output"])
    return {"x": _same(np.where(a["x"] > 0, g, abs(cfg["negative_slope"]) * g))}


_SQRT_2_OVER_PI = np.sqrt(2 / np.pi)
_KAPPA = 0.044715


def _gelu_parts(x, approximate):
    """``(P, t)``: the form's CDF factor, ``Phi(x)`` for 'none' (``t`` None) or ``0.5 (1 + t)`` for 'tanh' with
    ``t = tanh(sqrt(2/pi) (x + kappa x^3))``."""
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _KAPPA * x**3))
        return 0.5 * (1 + t), t
    from refimpl.erf import erf  # noqa: PLC0415 - pure NumPy, loaded on first use

    return 0.5 * (1 + erf(x / np.sqrt(2))), None


def _phi(x):
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def _gelu_forward(a, cfg):
    """'none', torch: ``x * 0.5 * (1 + erf(x / sqrt2))``: ``1 + erf`` has terms ``1`` and ``|erf|``, so ``Phi`` is
    right to ``u max(Phi, 1 - Phi)`` (absolute: ``-0.0`` where it rounds to 0, x < -8.4), and the rounding of
    ``x / sqrt2`` moves it by ``u |x| phi(x)``: ``|x| (max(Phi, 1 - Phi) + |x| phi(x))``. (``0.5 x erfc(-x/sqrt2)``
    has fewer terms: covered.)
    'tanh': ``0.5 x (1 + t)``, ``t = tanh(sqrt(2/pi) (x + kappa x^3))``: terms ``|x| max(P, 1 - P)``,
    ``P = 0.5 (1 + t)``, and the inner sum's terms ``sqrt(2/pi) (|x| + kappa |x|^3)`` propagated by
    ``0.5 |x| (1 - t^2)``: ``|x| (max(P, 1 - P) + (1 - t^2) sqrt(2/pi) (|x| + kappa |x|^3))``."""
    x = a["x"]
    p, t = _gelu_parts(x, cfg["approximate"])
    spread = np.maximum(p, 1 - p)
    if t is None:
        return _same(np.abs(x) * (spread + np.abs(x) * _phi(x)))
    return _same(np.abs(x) * (spread + (1 - t * t) * _SQRT_2_OVER_PI * (np.abs(x) + _KAPPA * np.abs(x) ** 3)))


def _gelu_backward(a, cfg):
    """'none', torch: ``g (Phi(x) + x phi(x))``: ``Phi`` right to ``u (max(Phi, 1 - Phi) + |x| phi)`` (above);
    ``x phi(x) = x exp(-x^2 / 2) / sqrt(2 pi)`` with ``x^2 / 2`` right to ``u x^2 / 2``, which ``exp`` turns into a
    relative error ``u x^2 / 2`` (the tail term, right to a few ulps only for |x| ~ 10): ``|g| (max(Phi, 1 - Phi)
    + |x| phi(x) (2 + x^2))``.
    'tanh', torch: ``g (0.5 (1 + t) + 0.5 x (1 - t^2) b (1 + 3 kappa x^2))``, ``b = sqrt(2/pi)``: terms
    ``0.5 (1 + |t|)`` and ``0.5 |x| (1 + t^2) b (1 + 3 kappa x^2)`` (``1 - t^2`` cancels at saturation), and ``t``
    carrying ``u (|t| + (1 - t^2) b (|x| + kappa |x|^3))`` propagated by ``|d/dt| <= 0.5 + |x t| b (1 + 3 kappa x^2)``."""
    x, g = a["x"], np.abs(a["grad_output"])
    p, t = _gelu_parts(x, cfg["approximate"])
    ax = np.abs(x)
    if t is None:
        return {"x": _same(g * (np.maximum(p, 1 - p) + ax * _phi(x) * (2 + x * x)))}
    slope = _SQRT_2_OVER_PI * (1 + 3 * _KAPPA * x * x)
    t_error = np.abs(t) + (1 - t * t) * _SQRT_2_OVER_PI * (ax + _KAPPA * ax**3)
    terms = 0.5 * (1 + np.abs(t)) + 0.5 * ax * (1 + t * t) * slope + (0.5 + ax * np.abs(t) * slope) * t_error
    return {"x": _same(g * terms)}


# --------------------------------------------------------------------------- losses


def _reduced(t: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return t
    total = np.sum(t)
    return np.asarray(total if reduction == "sum" else total / max(t.size, 1))


def _per_element(g: np.ndarray, t: np.ndarray, reduction: str) -> np.ndarray:
    """A gradient's scale: ``|g| t`` elementwise, divided by the count for 'mean' (g is 0-d unless 'none')."""
    scale = np.abs(g) * t
    return scale / max(t.size, 1) if reduction == "mean" else scale


def _bce_forward(a, cfg):
    """torch: ``(y - 1) max(log1p(-p), -100) - y max(log p, -100)``: terms ``|1-y||log1p(-p)| + |y||log p|``
    (each log right to an ulp). Naive: ``log(1 - p)`` rounds ``1 - p`` first, up to ``u`` after the log: ``+ 1``."""
    p, y = a["input"], a["target"]
    with np.errstate(divide="ignore"):
        l1 = np.maximum(np.log1p(-p), _LOG_CLAMP)
        l0 = np.maximum(np.log(p), _LOG_CLAMP)
    t = np.abs(1 - y) * np.abs(l1) + np.abs(y) * np.abs(l0)
    return _reduced(t, cfg["reduction"]), _reduced(t + 1, cfg["reduction"])


def _bce_backward(a, cfg):
    """torch: ``g (p - y) / max(p(1-p), eps)``; textbook: ``g (-y/p + (1-y)/(1-p))``, whose terms over the
    common (clamped) denominator are ``|y|(1-p) + |1-y| p``: ``|g| (|y|(1-p) + |1-y|p) / max(p(1-p), eps)``."""
    p, y, g = a["input"], a["target"], a["grad_output"]
    t = (np.abs(y) * (1 - p) + np.abs(1 - y) * p) / np.maximum(p * (1 - p), _EPSILON)
    return {"input": _same(_per_element(g, t, cfg["reduction"]))}


def _bce_logits_forward(a, cfg):
    """torch: ``(1 - y) z - min(z, 0) + log1p(exp(-|z|))``; TensorFlow: ``max(z, 0) - z y + log1p(exp(-|z|))``.
    Their terms together: ``|z| (1 + |y| + |1 - y|) + log1p(exp(-|z|))`` (at z = 236, y = 1 the value is 2e-103 out
    of terms of size 236). Naive: ``log(1 + exp(-z))`` rounds ``1 + exp(-z)`` first: ``+ 1``."""
    z, y = a["input"], a["target"]
    t = np.abs(z) * (1 + np.abs(y) + np.abs(1 - y)) + np.log1p(np.exp(-np.abs(z)))
    return _reduced(t, cfg["reduction"]), _reduced(t + 1, cfg["reduction"])


def _bce_logits_backward(a, cfg):
    """torch: ``g (sigmoid(z) - y)``; JAX (the gradient of its log-sigmoid form): ``g ((1-y) sigmoid(z) - y sigmoid(-z))``.
    Terms: ``|g| (s + |y| + |1-y| s + |y| (1-s))``, ``s = sigmoid(z)`` right to ``u s``. Naive: ``s`` from
    ``0.5 + 0.5 tanh(z/2)`` or ``1 - sigmoid(-z)`` is right to ``u`` only: ``+ |g|``."""
    z, y, g = a["input"], a["target"], a["grad_output"]
    s = _sigmoid(z)
    t = s + np.abs(y) + np.abs(1 - y) * s + np.abs(y) * (1 - s)
    reduction = cfg["reduction"]
    return {"input": (_per_element(g, t, reduction), _per_element(g, t + 1, reduction))}


# --------------------------------------------------------------------------- softmax and its losses


def _log_softmax_terms(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(s, e)`` along ``axis``: the softmax ``s`` and the log-softmax's term scale ``e = 1 + |x| + |m| + log sum``.

    ``log_softmax = x - m - log sum_j exp(x_j - m)`` adds the terms ``x``, ``m`` and ``log sum`` (``>= 0``, the
    maximum's own term is 1) in some order: ``x - m`` first (torch), ``x - (m + log sum)`` (a logsumexp), or
    without the shift; the 1 covers the log's own ulps and the sum's ``gamma_C`` (``log(sum (1 + d)) = log sum + d``).
    ``s = exp(log_softmax)`` carries that absolute error as a relative one: ``s e``.
    """
    m = np.max(x, axis=axis, keepdims=True)
    z = np.exp(x - m)
    total = np.sum(z, axis=axis, keepdims=True)
    return z / total, 1 + np.abs(x) + np.abs(m) + np.log(total)


def _softmax_forward(a, cfg):
    """``s = exp(x - m) / sum``: right to ``u s e`` (``_log_softmax_terms``), each exponent off by ``u e``."""
    s, e = _log_softmax_terms(a["x"], cfg["dim"])
    return _same(s * e)


def _softmax_backward(a, cfg):
    """``s (g - sum_j g_j s_j)`` (torch), or the Jacobian ``diag(s) - s s^T`` applied to ``g``: terms ``s_i |g_i|``
    and ``s_i sum_j |g_j| s_j``; each ``s`` off by ``u s e`` adds ``s_i e_i (|g_i| + sum_j |g_j| s_j)`` and
    ``s_i sum_j |g_j| s_j e_j``: ``s_i ((1 + e_i)(|g_i| + S) + sum_j |g_j| s_j e_j)``, ``S = sum_j |g_j| s_j``."""
    axis = cfg["dim"]
    s, e = _log_softmax_terms(a["x"], axis)
    g = np.abs(a["grad_output"])
    total = np.sum(g * s, axis=axis, keepdims=True)
    carried = np.sum(g * s * e, axis=axis, keepdims=True)
    return {"x": _same(s * ((1 + e) * (g + total) + carried))}


def _log_softmax_forward(a, cfg):
    """``x - m - log sum``: terms ``e = 1 + |x| + |m| + log sum`` (``_log_softmax_terms``)."""
    return _same(_log_softmax_terms(a["x"], cfg["dim"])[1])


def _log_softmax_backward(a, cfg):
    """``g - s sum_j g_j`` (torch; or ``g - exp(log_softmax) sum g``): terms ``|g_i| + s_i sum_j |g_j|``, and ``s``
    off by ``u s e``: ``|g_i| + s_i (1 + e_i) sum_j |g_j|``."""
    axis = cfg["dim"]
    s, e = _log_softmax_terms(a["x"], axis)
    g = np.abs(a["grad_output"])
    return {"x": _same(g + s * (1 + e) * np.sum(g, axis=axis, keepdims=True))}


def _picked(a: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``a[n, target_n]`` per row (the target's float64 copy holds exact small integers)."""
    return a[np.arange(a.shape[0]), target.astype(np.int64)]


def _cross_entropy_forward(a, cfg):
    """``loss_n = log sum_c exp(z_nc - m_n) + m_n - z_n,t``: the log-softmax's terms at the target,
    ``1 + |z_t| + |m| + log sum`` (``_log_softmax_terms``), summed over the rows for 'sum' and 'mean' (/ N)."""
    _, e = _log_softmax_terms(a["input"], 1)
    return _same(_reduced(_picked(e, a["target"]), cfg["reduction"]))


def _cross_entropy_backward(a, cfg):
    """``(softmax - onehot) w_n``, ``w_n = g / N`` ('mean'), ``g`` ('sum'), ``g_n`` ('none'): terms ``|w_n| (s + [c = t])``,
    ``s`` off by ``u s e``: ``|w_n| (s (1 + e) + [c = t])``; the same for the log-softmax backward of ``-w onehot``."""
    z, target = a["input"], a["target"]
    s, e = _log_softmax_terms(z, 1)
    onehot = np.zeros_like(z)
    onehot[np.arange(z.shape[0]), target.astype(np.int64)] = 1
    g = np.abs(a["grad_output"])
    reduction = cfg["reduction"]
    w = g.reshape(-1, 1) if reduction == "none" else g.reshape(1, 1) / (z.shape[0] if reduction == "mean" else 1)
    return {"input": _same(w * (s * (1 + e) + onehot))}


def _mse_forward(a, cfg):
    """``d^2``, ``d = x - y`` off by ``u (|x| + |y|)``: ``d^2 + 2 |d| (|x| + |y|)``, reduced."""
    x, y = a["input"], a["target"]
    d = np.abs(x - y)
    return _same(_reduced(d * d + 2 * d * (np.abs(x) + np.abs(y)), cfg["reduction"]))


def _mse_backward(a, cfg):
    """``2 (x - y) g`` (/ numel for 'mean'): terms ``2 |g| (|x| + |y|)`` (the subtraction's)."""
    x, y = a["input"], a["target"]
    return {"input": _same(_per_element(a["grad_output"], 2 * (np.abs(x) + np.abs(y)), cfg["reduction"]))}


# --------------------------------------------------------------------------- normalization


def normalization_terms(x: np.ndarray, axes: tuple[int, ...], eps: float) -> dict[str, np.ndarray]:
    """The standardization of ``x`` over ``axes`` (float64, two passes) with the error scales of its parts.

    ``xhat``, ``inv_std`` (``s``, kept as size-1 axes), and, elementwise:

    ``E = |xhat| + s (|x| + mean_A |x|)``: the term scale of xhat. The mean is a sum of m terms: rounded, it is off
    by up to ``gamma_m mean_A|x|``, which enters every ``x - mean`` and so every xhat as ``s mean_A|x|`` (the
    large-offset corner: 1e3 + N(0, 1) gives ``s mean|x| ~ 1e3``); the fused form ``x s - mean s`` (torch's
    kernels) rounds terms of size ``s |x|``. The variance is a sum of m squares of the computed ``x - mean``
    (positive terms; the mean's error enters it only to second order, ``(s dmean)^2``, below the first-order
    terms while ``s dmean < 1``): relative ``gamma_m``, so ``s`` is right to ``gamma_{m+4}`` and xhat to
    that times ``|xhat|``. Together ``|fl(xhat) - xhat| <= gamma_{m+5} E``.

    ``En = E + |xhat| q``, ``q = mean_A(x^2) s^2``: the same for a one-pass variance ``E[x^2] - E[x]^2``, whose
    terms are ``mean(x^2)``, not ``var``: right (the naive formula of the imprecise band), but it loses the digits
    of ``q`` (1e6 for the offset corner). That is a first-order bound, valid while ``gamma_m q < 1``: in float64
    (``1e-10 m`` at the offset corner) a one-pass variance is imprecise; in float32 it loses every digit of the
    variance there (it can come out 0, and ``s`` becomes ``1/sqrt(eps)``), and FAILs.
    """
    m = max(math.prod(x.shape[a] for a in axes), 1)
    mean = x.sum(axis=axes, keepdims=True) / m
    centred = x - mean
    var = np.square(centred).sum(axis=axes, keepdims=True) / m
    s = 1.0 / np.sqrt(var + eps)
    xhat = centred * s
    ax = np.abs(x)
    e = np.abs(xhat) + s * (ax + ax.sum(axis=axes, keepdims=True) / m)
    q = np.square(x).sum(axis=axes, keepdims=True) / m * s * s
    return {"xhat": xhat, "inv_std": s, "E": e, "En": e + np.abs(xhat) * q, "q": q, "m": m}


def _normalization_rule(groups: Callable):
    """The term-scale rule of a normalization op whose ``groups(x, cfg) -> (axes A, parameter axes P, gamma shape)``.

    Forward ``y = gamma xhat + beta``: ``|gamma| E + |beta|`` (``E``: ``normalization_terms``).

    Backward, with ``gy = G gamma`` and the sums over one group A:

        grad_x = s (gy - mean gy - xhat mean(gy xhat))
                 terms  s (|gy| + mean|gy| + E mean(|gy xhat|) + |xhat| mean(|gy| E))

    The first terms are the ones the compact formula adds (``s |gy|``, ``s mean|gy|``); the last product
    ``xhat_i k``, ``k = mean(gy xhat)``, carries the error of xhat itself: with ``|dxhat_j| <= gamma E_j``,
    ``(xhat_i + dxhat_i)(k + dk) - xhat_i k`` is ``dxhat_i k + xhat_i dk`` to first order, within
    ``gamma (E_i mean|gy xhat| + |xhat_i| mean(|gy| E))``, plus the second-order ``dxhat_i dk``, within
    ``gamma^2 E_i mean(|gy| E)``. The rule is the same for both dtypes, so that last term takes float32's
    ``gamma_{m+5}`` (an overestimate for float64 of a term ``gamma E`` times below the first order, ``1e-11`` at
    the offset corner); it matters only where ``gamma E`` is not small: constant rows in float32, where the
    variance is 0, ``s = 1 / sqrt(eps)`` and xhat is pure rounding. Bounding both factors by ``E`` at once,
    ``E mean(|gy| E)``, would be ``E / |xhat|`` times too wide (1000 at the offset corner, where
    ``E ~ s mean|x|``): wide enough for the imprecise band ``sqrt(u) T`` to take in a dropped mean term.
    The relative error of ``s``
    (``gamma_{m+4}``) multiplies the whole. Every other arrangement of the same rule (the chain through mean and
    variance term by term, torch's ``(G - mean G - (x - mean) k) s gamma`` with ``k = s^2 mean(G xhat)``: the
    rounded ``x - mean`` is ``E / s``, ``k`` carries ``mean(|G| E)``) adds the same terms. So each
    element is within ``gamma_{2m+8}`` of its term scale, and ``fan_in = m + 8`` with ``rho(n) >= (n + 2) u`` covers
    it (oracle.tolerances: ``2m+8 <= 64 sqrt(m+9)`` for every m the strategies draw, m <= 64).

        grad_gamma = sum_P G xhat    terms  sum_P |G| E;        grad_beta = sum_P G    terms  sum_P |G|

    The naive scales (the imprecise band) put ``En`` for ``E`` and multiply the ``s`` terms by ``1 + q``: a one-pass
    variance's error in ``s`` is ``gamma_m q`` relative.
    """

    def forward(a, cfg):
        axes, _, shaped = groups(a["x"], cfg)
        t = normalization_terms(a["x"], axes, cfg["eps"])
        gamma = 1.0 if a["weight"] is None else np.abs(shaped(a["weight"]))
        beta = 0.0 if a["bias"] is None else np.abs(shaped(a["bias"]))
        return gamma * t["E"] + beta, gamma * t["En"] + beta

    def backward(a, cfg):
        axes, params, shaped = groups(a["x"], cfg)
        t = normalization_terms(a["x"], axes, cfg["eps"])
        g = np.abs(a["grad_output"])
        gy = g if a["weight"] is None else g * np.abs(shaped(a["weight"]))
        s, m = t["inv_std"], t["m"]

        def mean(v):
            return v.sum(axis=axes, keepdims=True) / m

        xhat = np.abs(t["xhat"])
        second_order = (m + 5) * _WIDEST_ROUNDOFF

        def x_scale(e, widen):
            return s * ((gy + mean(gy)) * widen + e * mean(gy * xhat) + (xhat + second_order * e) * mean(gy * e))

        out = {"x": (x_scale(t["E"], 1.0), x_scale(t["En"], 1.0 + t["q"]))}
        out["weight"] = None if a["weight"] is None else ((g * t["E"]).sum(axis=params), (g * t["En"]).sum(axis=params))
        out["bias"] = None if a["bias"] is None else _same(g.sum(axis=params))
        return out

    return forward, backward


def _batch_norm_groups(x, cfg):
    """Every axis but 1; the (C,) parameters broadcast along axis 1."""
    axes = (0,) + tuple(range(2, x.ndim))
    return axes, axes, lambda p: p.reshape((1, -1) + (1,) * (x.ndim - 2))


def _layer_norm_groups(x, cfg):
    """The trailing ``len(normalized_shape)`` axes; the parameters (of that shape) summed over the leading ones."""
    lead = x.ndim - len(cfg["normalized_shape"])
    return tuple(range(lead, x.ndim)), tuple(range(lead)), lambda p: p


_batch_norm_forward, _batch_norm_backward = _normalization_rule(_batch_norm_groups)
_layer_norm_forward, _layer_norm_backward = _normalization_rule(_layer_norm_groups)


# --------------------------------------------------------------------------- the table


RULES: dict[str, Rule] = {
    "conv2d": _conv_rule("conv2d"),
    "conv1d": _conv_rule("conv1d"),
    "conv3d": _conv_rule("conv3d"),
    "conv_transpose2d": _conv_rule("conv_transpose2d"),
    "max_pool2d": Rule(_max_forward, _max_backward),
    "avg_pool2d": Rule(_avg_forward, _avg_backward),
    "linear": Rule(_linear_forward, _linear_backward),
    "relu": Rule(_relu_forward, _relu_backward),
    "sigmoid": Rule(_sigmoid_forward, _sigmoid_backward),
    "flatten": Rule(_flatten_forward, _flatten_backward),
    "binary_cross_entropy": Rule(_bce_forward, _bce_backward),
    "binary_cross_entropy_with_logits": Rule(_bce_logits_forward, _bce_logits_backward),
    "softmax": Rule(_softmax_forward, _softmax_backward),
    "log_softmax": Rule(_log_softmax_forward, _log_softmax_backward),
    "cross_entropy": Rule(_cross_entropy_forward, _cross_entropy_backward),
    "mse_loss": Rule(_mse_forward, _mse_backward),
    "tanh": Rule(_tanh_forward, _tanh_backward),
    "leaky_relu": Rule(_leaky_relu_forward, _leaky_relu_backward),
    "gelu": Rule(_gelu_forward, _gelu_backward),
    "adaptive_avg_pool2d": Rule(_adaptive_forward, _adaptive_backward),
    "batch_norm": Rule(_batch_norm_forward, _batch_norm_backward),
    "layer_norm": Rule(_layer_norm_forward, _layer_norm_backward),
}
assert set(RULES) == set(SPECS), f"every op needs a term-scale rule: missing {set(SPECS) - set(RULES)}"

#: ops whose results are correlations of two whole operands: op -> normwise rule (see the module docstring)
NORMWISE: dict[str, Callable] = {
    "conv2d": _conv_normwise, "conv1d": _conv_normwise, "conv3d": _conv_normwise, "conv_transpose2d": _transposed_normwise,
}
assert set(NORMWISE) <= set(SPECS)


def _float64(arrays: dict) -> dict:
    return {k: (None if v is None else np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}


def forward(op: str, arrays: dict, config: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """``(T, Tn)`` of the forward output, or None when the rule cannot run on these arrays (the neighbour rule then)."""
    try:
        with np.errstate(all="ignore"):
            t, tn = RULES[op].forward(_float64(arrays), dict(config))
        return np.asarray(t, np.float64), np.asarray(tn, np.float64)
    except (ValueError, TypeError, ArithmeticError):
        return None


def backward(op: str, arrays: dict, config: dict) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """``{input: (T, Tn) or None}`` of each gradient; ``{}`` when the rule cannot run on these arrays."""
    try:
        with np.errstate(all="ignore"):
            scales = RULES[op].backward(_float64(arrays), dict(config))
        return {k: None if v is None else (np.asarray(v[0], np.float64), np.asarray(v[1], np.float64)) for k, v in scales.items()}
    except (ValueError, TypeError, ArithmeticError):
        return {}


def normwise(op: str, arrays: dict, config: dict) -> dict[str, tuple[float, int]]:
    """``{result: (||a||_F ||b||_F, m)}`` for 'output' and each gradient of a bilinear op; ``{}`` for other ops
    or arrays the rule cannot run on."""
    rule = NORMWISE.get(op)
    if rule is None:
        return {}
    try:
        with np.errstate(all="ignore"):
            return {k: (float(v[0]), int(v[1])) for k, v in rule(_float64(arrays), dict(config)).items()}
    except (ValueError, TypeError, ArithmeticError, KeyError, AttributeError):
        return {}


# --------------------------------------------------------------------------- forward mode: the output tangent's terms
#
# ``jvp(a, t, cfg) -> (T, Tn)``: the term scale of each element of the output tangent ``J v``, ``a`` the case's
# arrays, ``t`` the tangent of each differentiable input (None: zero). Every JVP rule is linear in the tangent, and
# its element i adds up the terms ``J_ij v_j`` (and the rounding each ``J_ij`` carries): ``T_jvp = |J| |v|``. The
# backward rules above give ``|J|^T |g|``; the forward-mode scale is that matrix's other product, so each family
# takes it from the rule that already has it, no formula written twice:
#
# * multilinear ops (convolutions, linear, the average pools, flatten): the product rule, each term the forward
#   itself applied to one tangent, so each term's scale is the forward's rule on absolute values with that tangent
#   in place of its input: ``F(|dx|, |W|) + F(|x|, |dW|) + |db|``;
# * max-pool: the tangent routed by x's own arg-max (refimpl's ``max_pool2d_jvp`` on ``|dx|``);
# * elementwise functions and softmax, whose Jacobians are symmetric (diagonal; ``diag(s) - s s^T``): ``|J| |v|``
#   is ``|J|^T |v|``, the backward rule with ``grad_output = v``;
# * batch_norm / layer_norm: ``dy = gamma dxhat + dgamma xhat + dbeta``, and ``dxhat = P dx`` with the symmetric
#   ``P = s (I - 11^T / m - xhat xhat^T / m)``: the backward rule's x scale with ``grad_output = dx`` and no gamma,
#   times ``|gamma|``, plus ``|dgamma| E + |dbeta|`` (``E``, ``En``: ``normalization_terms``);
# * losses: the output element i depends on one row (cross_entropy 'none'), one element ('none') or all
#   ('sum', 'mean'), and its backward with ``grad_output = 1`` holds ``|J_ij|``'s terms per input element j:
#   ``T_i = sum_{j in i's elements} Tback(1)_j |v_j|``;
# * log_softmax (``J = I - 1 s^T`` is not symmetric): ``dx - sum_j s_j dx_j``, written out in ``_log_softmax_jvp``.


def _abs_tangents(t: dict) -> dict:
    return {k: _abs(v) for k, v in t.items()}


def _multilinear_jvp(op: str) -> Callable:
    """``sum_k F(|a| with input k -> |v_k|)`` over the inputs the forward is linear in (the other ones' magnitudes,
    optional ones None), plus ``F(0, |a|..., |v_b|)`` for an optional additive input (the bias): ``|db|`` broadcast."""
    spec = SPECS[op]
    rule = RULES[op]

    def jvp(a, t, cfg):
        base = {**a, **{name: None for name in spec.optional}}
        total = naive = 0.0
        for name in spec.linear_in:
            if t.get(name) is not None:
                scale, scale_n = rule.forward({**base, name: np.abs(t[name])}, cfg)
                total, naive = total + scale, naive + scale_n
        for name in spec.optional:
            if t.get(name) is not None:
                zero = {n: np.zeros_like(a[n]) for n in spec.linear_in[:1]}
                scale, scale_n = rule.forward({**base, **zero, name: np.abs(t[name])}, cfg)
                total, naive = total + scale, naive + scale_n
        return total, naive

    return jvp


def _symmetric_jvp(op: str) -> Callable:
    """An op of one input whose Jacobian is symmetric: the backward rule's scale with ``grad_output = dx``."""

    def jvp(a, t, cfg):
        return RULES[op].backward({**a, "grad_output": t["x"]}, cfg)["x"]

    return jvp


def _max_pool_jvp(a, t, cfg):
    """The tangent routed by x's own arg-max (first maximum on ties): ``|dx|`` at each window's arg-max."""
    return _same(_reference().max_pool2d_jvp((a["x"],), (np.abs(t["x"]),), **cfg)[1])


def _log_softmax_jvp(a, t, cfg):
    """``dx_i - sum_j s_j dx_j``: terms ``|dx_i| + sum_j s_j |dx_j|``, each ``s_j`` off by ``u s_j e_j``
    (``_log_softmax_terms``): ``|dx_i| + sum_j s_j (1 + e_j) |dx_j|``."""
    axis = cfg["dim"]
    s, e = _log_softmax_terms(a["x"], axis)
    dx = np.abs(t["x"])
    return _same(dx + np.sum(s * (1 + e) * dx, axis=axis, keepdims=True))


def _loss_jvp(op: str) -> Callable:
    """``T_i = sum_j Tback(grad_output = 1)_j |dinput_j|`` over the input elements output element i depends on."""

    def jvp(a, t, cfg):
        out_shape = () if cfg["reduction"] != "none" else (a["input"].shape[:1] if op == "cross_entropy" else a["input"].shape)
        scale, naive = RULES[op].backward({**a, "grad_output": np.ones(out_shape)}, cfg)["input"]
        d = np.abs(t["input"])
        if cfg["reduction"] != "none":
            return np.sum(scale * d), np.sum(naive * d)
        if op == "cross_entropy":
            return np.sum(scale * d, axis=1), np.sum(naive * d, axis=1)
        return scale * d, naive * d

    return jvp


def _normalization_jvp(op: str, groups: Callable) -> Callable:
    """``|gamma| Tback_x(grad_output = dx, no gamma) + |dgamma| E + |dbeta|`` (``Tn``: ``En`` and the naive x scale)."""

    def jvp(a, t, cfg):
        _, _, shaped = groups(a["x"], cfg)
        gamma = 1.0 if a["weight"] is None else np.abs(shaped(a["weight"]))
        total = naive = 0.0
        if t.get("x") is not None:
            scale, scale_n = RULES[op].backward({**a, "weight": None, "bias": None, "grad_output": t["x"]}, cfg)["x"]
            total, naive = gamma * scale, gamma * scale_n
        if t.get("weight") is not None or t.get("bias") is not None:
            axes, _, _ = groups(a["x"], cfg)
            terms = normalization_terms(a["x"], axes, cfg["eps"])
            if t.get("weight") is not None:
                dgamma = np.abs(shaped(t["weight"]))
                total, naive = total + dgamma * terms["E"], naive + dgamma * terms["En"]
            if t.get("bias") is not None:
                total, naive = total + np.abs(shaped(t["bias"])), naive + np.abs(shaped(t["bias"]))
        return np.broadcast_to(total, a["x"].shape), np.broadcast_to(naive, a["x"].shape)

    return jvp


JVP_RULES: dict[str, Callable] = {
    **{op: _multilinear_jvp(op) for op in ("conv2d", "conv1d", "conv3d", "conv_transpose2d", "linear", "avg_pool2d",
                                           "adaptive_avg_pool2d", "flatten")},
    "max_pool2d": _max_pool_jvp,
    **{op: _symmetric_jvp(op) for op in ("relu", "sigmoid", "tanh", "leaky_relu", "gelu", "softmax")},
    "log_softmax": _log_softmax_jvp,
    **{op: _loss_jvp(op) for op in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy",
                                    "mse_loss")},
    "batch_norm": _normalization_jvp("batch_norm", _batch_norm_groups),
    "layer_norm": _normalization_jvp("layer_norm", _layer_norm_groups),
}
assert set(JVP_RULES) == set(SPECS), f"every op needs a forward-mode term-scale rule: missing {set(SPECS) - set(JVP_RULES)}"


def jvp(op: str, arrays: dict, tangents: dict, config: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """``(T, Tn)`` of the output tangent for ``tangents`` (``{input: tangent or None}``), or None when the rule
    cannot run on these arrays (the neighbour rule then)."""
    try:
        with np.errstate(all="ignore"):
            t, tn = JVP_RULES[op](_float64(arrays), _float64(tangents), dict(config))
        return np.asarray(t, np.float64), np.asarray(tn, np.float64)
    except (ValueError, TypeError, ArithmeticError, KeyError):
        return None


def jvp_normwise(op: str, arrays: dict, tangents: dict, config: dict) -> tuple[float, int] | None:
    """The normwise rule of the output tangent of a bilinear op: ``(sum_k ||a_k||_F ||b_k||_F, m)`` over the product
    rule's terms (each input the forward is linear in replaced by its tangent), or None for other ops."""
    if op not in NORMWISE:
        return None
    total, points = 0.0, 0
    for name in SPECS[op].linear_in:
        if tangents.get(name) is not None:
            term = normwise(op, {**arrays, name: tangents[name]}, config).get("output")
            if term is None:
                return None
            total, points = total + term[0], max(points, term[1])
    return (total, points) if points else None
