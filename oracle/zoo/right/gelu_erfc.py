"""Counterpart gelu_erfc: the exact gelu through erfc, the tanh form through the sigmoid.

    approximate='none':  gelu(x) = 0.5 x erfc(-x / sqrt2)              (Phi(x) = 0.5 erfc(-x / sqrt2))
                         gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    approximate='tanh':  0.5 (1 + tanh(z)) = sigmoid(2z),  z = sqrt(2/pi) (x + 0.044715 x^3)
                         gelu(x) = x sigmoid(2z)
                         gelu'(x) = sigmoid(2z) + 2 x sigmoid(2z) sigmoid(-2z) sqrt(2/pi) (1 + 3 * 0.044715 x^2)

Right, and more accurate than torch's forms in the left tail: erfc keeps Phi's
relative accuracy where torch's ``1 + erf`` cancels to 0 (x < -8.4 in float64),
and ``sigmoid(2z) sigmoid(-2z)`` keeps ``(1 - t^2) / 4`` where ``1 - t^2`` rounds
to 0. 'none' is computed in float64 (``math.erfc``, the C library's) and rounded
once to x's dtype; 'tanh' in x's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.activations import _check_gelu_args
from refimpl.arguments import check_grad_output

_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_SQRT2 = math.sqrt(2.0)
_BETA = math.sqrt(2.0 / math.pi)
_KAPPA = 0.044715


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    one = z.dtype.type(1)
    return np.where(z >= 0, one / (one + e), e / (one + e))


def _cdf(x64):
    """Phi(x) = 0.5 erfc(-x / sqrt2), in float64."""
    return 0.5 * _erfc(-x64 / _SQRT2)


def _twice_z(x):
    """2 z = 2 sqrt(2/pi) (x + kappa x^3), in x's dtype."""
    dt = x.dtype.type
    return dt(2 * _BETA) * (x + dt(_KAPPA) * (x * x * x))


def gelu(x, *, approximate="none"):
    """``0.5 x erfc(-x / sqrt2)`` ('none'), ``x sigmoid(2z)`` ('tanh')."""
    approximate = _check_gelu_args(x, approximate)
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate == "tanh":
            out = x * _sigmoid(_twice_z(x))
        else:
            x64 = x.astype(np.float64)
            out = x64 * _cdf(x64)
    return np.asarray(out, dtype=x.dtype)


def gelu_backward(grad_output, x, *, approximate="none"):
    """``g (Phi(x) + x phi(x))`` ('none'), ``g (s + 2 x s sigmoid(-2z) b (1 + 3 kappa x^2))``, ``s = sigmoid(2z)`` ('tanh')."""
    approximate = _check_gelu_args(x, approximate)
    check_grad_output(grad_output, x.shape, x.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        if approximate == "tanh":
            dt = x.dtype.type
            two_z = _twice_z(x)
            s, s_minus = _sigmoid(two_z), _sigmoid(-two_z)
            derivative = s + dt(2) * x * s * s_minus * (dt(_BETA) * (dt(1) + dt(3 * _KAPPA) * (x * x)))
            grad = grad_output * derivative
        else:
            x64 = x.astype(np.float64)
            pdf = np.exp(-0.5 * x64 * x64) / math.sqrt(2 * math.pi)
            grad = grad_output.astype(np.float64) * (_cdf(x64) + x64 * pdf)
    return np.asarray(grad, dtype=x.dtype)


from oracle.zoo.right._counterpart import build  # noqa: E402

build(__name__, "gelu")
