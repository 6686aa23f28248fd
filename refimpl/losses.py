"""Binary cross-entropy on probabilities and on logits, with their backward rules.

Semantics are those of ``torch.nn.functional.binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` (no ``weight``/``pos_weight``), down to
torch's clamps, checked against ATen's CPU kernels (``aten/src/ATen/native/Loss.cpp``):

* forward on probabilities clamps each log at -100, so p = 0 or 1 gives a
  finite loss (100 per wrong element);
* backward on probabilities divides by ``max(p(1-p), EPSILON)`` with ATen's
  ``constexpr float EPSILON = 1e-12``: a *float* constant, so in float64 the
  clamp is ``float(np.float32(1e-12)) = 9.999999960041972e-13``, not 1e-12;
* ``'mean'`` divides by the number of elements.

``grad_output`` is a 0-d array for ``'mean'``/``'sum'`` and has the input's
shape for ``'none'``. Pure NumPy; float32 stays float32; inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from refimpl.activations import _sigmoid
from refimpl.arguments import check_array, check_grad_output, check_same_dtype

REDUCTIONS = ("mean", "sum", "none")

EPSILON = np.float32(1e-12)
"""ATen's clamp of ``p(1-p)`` in the BCE backward, a float32 constant (converted up for float64)."""

LOG_CLAMP = -100
"""ATen clamps each log of the BCE forward at -100."""


def check_reduction(reduction) -> str:
    """``reduction`` after checking it is one of ``'mean'``, ``'sum'``, ``'none'``."""
    if not isinstance(reduction, str):
        raise TypeError(f"reduction must be one of {REDUCTIONS} (a str), got {type(reduction).__name__} {reduction!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """A ValueError naming both arrays unless they have the same shape (no broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{b_name} must have the same shape as {a_name} (no broadcasting): {a_name} {a.shape}, {b_name} {b.shape}"
        )


def check_in_unit_interval(a: np.ndarray, name: str) -> None:
    """A ValueError naming ``a`` unless every element lies in [0, 1] (NaN fails)."""
    inside = (a >= 0) & (a <= 1)
    if not inside.all():
        bad = a[~inside]
        raise ValueError(
            f"all elements of {name} must be between 0 and 1 (torch raises too): "
            f"{bad.size} element(s) outside, e.g. {bad.flat[0]!r}"
        )


def _check_loss_args(input, target, reduction, *, probabilities: bool) -> np.dtype:
    check_array(input, "input")
    check_array(target, "target")
    dtype = check_same_dtype(input=input, target=target)
    check_same_shape(input, "input", target, "target")
    check_reduction(reduction)
    if probabilities:
        check_in_unit_interval(input, "input")
        check_in_unit_interval(target, "target")
    return dtype


def _as_result(a, dtype: np.dtype) -> np.ndarray:
    """``a`` as an ndarray of ``dtype``: on 0-d operands NumPy's arithmetic returns a scalar, the contract an ndarray."""
    return np.asarray(a, dtype=dtype)


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return _as_result(loss, loss.dtype)
    total = loss.sum(dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(total, dtype=loss.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty input: 0/0 = nan, as torch
        return np.asarray(total / loss.dtype.type(loss.size), dtype=loss.dtype)


def _grad_output_shape(input: np.ndarray, reduction: str) -> tuple[int, ...]:
    return input.shape if reduction == "none" else ()


def binary_cross_entropy(input: np.ndarray, target: np.ndarray, *, reduction: str = "mean") -> np.ndarray:
    """Binary cross-entropy between probabilities ``input`` (p) and ``target`` (y), both in [0, 1].

        loss = -( y * max(log p, -100) + (1 - y) * max(log(1 - p), -100) )

    evaluated as torch does: ``(y - 1) * max(log1p(-p), -100) - y * max(log p, -100)``.
    ``reduction``: ``'mean'`` (sum / number of elements, 0-d), ``'sum'`` (0-d)
    or ``'none'`` (input's shape). ``input`` outside [0, 1] (or NaN) is a
    ValueError, as is ``target`` outside [0, 1] (torch checks both).
    """
    _check_loss_args(input, target, reduction, probabilities=True)
    one = input.dtype.type(1)
    clamp = input.dtype.type(LOG_CLAMP)
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped to -100 below
        log_p = np.maximum(np.log(input), clamp)
        log_1mp = np.maximum(np.log1p(-input), clamp)
    loss = (target - one) * log_1mp - target * log_p
    return _reduce(loss, reduction)


def binary_cross_entropy_backward(
    grad_output: np.ndarray, input: np.ndarray, target: np.ndarray, *, reduction: str = "mean"
) -> np.ndarray:
    """Gradient of ``binary_cross_entropy`` w.r.t. ``input`` (p), exactly as ATen's kernel.

        grad_input = g * (p - y) / max((1 - p) * p, EPSILON)        EPSILON = float32(1e-12)
        grad_input /= input.size                                    for 'mean'

    At p = 0 or 1 the clamp makes it finite (about -+1e12 * g); where
    ``p(1-p) < EPSILON`` (e.g. p = sigmoid(-50)) the clamp also makes it far
    smaller than the true derivative (pytorch issue #103316): use the logits form.
    """
    _check_loss_args(input, target, reduction, probabilities=True)
    check_grad_output(grad_output, _grad_output_shape(input, reduction), input.dtype)
    dt = input.dtype.type
    denominator = np.maximum((dt(1) - input) * input, dt(EPSILON))
    grad = grad_output * (input - target) / denominator
    if reduction == "mean":
        grad = grad / dt(input.size)
    return _as_result(grad, input.dtype)


def _log_sigmoid(z: np.ndarray) -> np.ndarray:
    # log sigmoid(z) = min(z, 0) - log1p(exp(-|z|)): exp never overflows.
    return np.minimum(z, z.dtype.type(0)) - np.log1p(np.exp(-np.abs(z)))


def binary_cross_entropy_with_logits(input: np.ndarray, target: np.ndarray, *, reduction: str = "mean") -> np.ndarray:
    """Binary cross-entropy of ``sigmoid(input)`` against ``target``, computed stably from the logits z.

        loss = -( y * log sigmoid(z) + (1 - y) * log(1 - sigmoid(z)) )
             = max(z, 0) - z * y + log1p(exp(-|z|))

    evaluated as torch does: ``(1 - y) * z - log_sigmoid(z)`` with
    ``log_sigmoid(z) = min(z, 0) - log1p(exp(-|z|))``. Finite, exact to
    rounding and warning-free for any finite z (|z| = 1e4 and beyond); no
    -100 clamp. ``target`` is not range-checked (torch does not either).
    """
    _check_loss_args(input, target, reduction, probabilities=False)
    one = input.dtype.type(1)
    loss = (one - target) * input - _log_sigmoid(input)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits_backward(
    grad_output: np.ndarray, input: np.ndarray, target: np.ndarray, *, reduction: str = "mean"
) -> np.ndarray:
    """Gradient of ``binary_cross_entropy_with_logits`` w.r.t. the logits ``input`` (z).

        grad_input = g * (sigmoid(z) - y)
        grad_input /= input.size            for 'mean'

    Exact for every z: no clamp, unlike chaining the probability form through sigmoid.
    """
    _check_loss_args(input, target, reduction, probabilities=False)
    check_grad_output(grad_output, _grad_output_shape(input, reduction), input.dtype)
    grad = (_sigmoid(input) - target) * grad_output
    if reduction == "mean":
        grad = grad / input.dtype.type(input.size)
    return _as_result(grad, input.dtype)
