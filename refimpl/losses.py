"""Losses with their backward rules: binary cross-entropy (on probabilities and on logits),
cross-entropy over classes (on logits) and the mean squared error.

Semantics are those of ``torch.nn.functional.binary_cross_entropy`` and
``binary_cross_entropy_with_logits`` (no ``weight``/``pos_weight``), down to
torch's clamps, checked against ATen's CPU kernels (``aten/src/ATen/native/Loss.cpp``):

* forward on probabilities clamps each log at -100, so p = 0 or 1 gives a
  finite loss (100 per wrong element);
* backward on probabilities divides by ``max(p(1-p), EPSILON)`` with ATen's
  ``constexpr float EPSILON = 1e-12``: a *float* constant, so in float64 the
  clamp is ``float(np.float32(1e-12)) = 9.999999960041972e-13``, not 1e-12;
* ``'mean'`` divides by the number of elements.

``cross_entropy`` is ``torch.nn.functional.cross_entropy`` on (N, C) logits
and (N,) integer class indices (no ``weight``, ``ignore_index``,
``label_smoothing``); ``mse_loss`` is ``torch.nn.functional.mse_loss`` on
arrays of one shape (no broadcasting).

``grad_output`` is a 0-d array for ``'mean'``/``'sum'`` and has the per-element
loss's shape for ``'none'`` (the input's; (N,) for ``cross_entropy``). Pure NumPy; float32 stays float32; inputs are never modified.
"""

from __future__ import annotations

import numpy as np

from refimpl.activations import _sigmoid
from refimpl.arguments import check_array, check_class_target, check_grad_output, check_same_dtype, check_tangents, unpack_jvp
from refimpl.softmax import _log_softmax, _softmax

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


# ----------------------------------------------------------------------------- cross-entropy over classes


def _check_cross_entropy_args(input, target, reduction) -> None:
    check_array(input, "input", ndim=2)
    check_class_target(target, input.shape[0], input.shape[1])
    check_reduction(reduction)


def _rows(n: int) -> np.ndarray:
    return np.arange(n)


def cross_entropy(input: np.ndarray, target: np.ndarray, *, reduction: str = "mean") -> np.ndarray:
    """Cross-entropy of the logits ``input`` (N, C) against the class indices ``target`` (N,).

        loss_n = -log_softmax(input, dim=1)[n, target_n]
               = log sum_c exp(input[n, c] - m_n) - (input[n, target_n] - m_n),    m_n = max_c input[n, c]

    as torch does (``nll_loss(log_softmax(input, 1), target)``): the max shift
    keeps logits of +-1e4 and beyond finite and exact (no overflow, no NaN).
    ``reduction``: ``'mean'`` (sum / N, 0-d; NaN for N = 0, as torch), ``'sum'``
    (0-d) or ``'none'`` ((N,)). ``target`` is an integer array (any integer
    dtype; torch wants int64) of values in [0, C); not differentiated. A row of
    ``input`` holding NaN or +inf gives NaN.
    """
    _check_cross_entropy_args(input, target, reduction)
    n = input.shape[0]
    if input.size == 0:  # N = 0 (C = 0 with N > 0 has no valid target): no row to reduce
        return _reduce(np.zeros((0,), dtype=input.dtype), reduction)
    log_probabilities = _log_softmax(input, 1)
    return _reduce(-log_probabilities[_rows(n), target], reduction)


def cross_entropy_backward(
    grad_output: np.ndarray, input: np.ndarray, target: np.ndarray, *, reduction: str = "mean"
) -> np.ndarray:
    """Gradient of ``cross_entropy`` w.r.t. the logits ``input``.

        grad_input[n, c] = (softmax(input, dim=1)[n, c] - [c == target_n]) * g_n
        g_n = g / N for 'mean', g for 'sum', g[n] for 'none'

    Exact for any finite logits (each entry of the softmax is in [0, 1]).
    """
    _check_cross_entropy_args(input, target, reduction)
    n = input.shape[0]
    check_grad_output(grad_output, (n,) if reduction == "none" else (), input.dtype)
    if input.size == 0:
        return np.zeros_like(input)
    dt = input.dtype.type
    weight = grad_output.reshape(-1, 1) if reduction == "none" else grad_output.reshape(1, 1)
    if reduction == "mean":
        weight = weight / dt(n)
    grad = _softmax(input, 1) * weight
    grad[_rows(n), target] -= np.broadcast_to(weight[:, 0], (n,))
    return _as_result(grad, input.dtype)


# ----------------------------------------------------------------------------- mean squared error


def _check_mse_args(input, target, reduction) -> None:
    check_array(input, "input")
    check_array(target, "target")
    check_same_dtype(input=input, target=target)
    check_same_shape(input, "input", target, "target")
    check_reduction(reduction)


def mse_loss(input: np.ndarray, target: np.ndarray, *, reduction: str = "mean") -> np.ndarray:
    """Mean squared error between ``input`` and ``target`` (same shape, same dtype).

        loss = (input - target)^2     element-wise; 'mean' sums and divides by input.size, 'sum' sums

    ``'mean'`` of an empty input is NaN, as torch.
    """
    _check_mse_args(input, target, reduction)
    difference = input - target
    return _reduce(difference * difference, reduction)


def mse_loss_backward(
    grad_output: np.ndarray, input: np.ndarray, target: np.ndarray, *, reduction: str = "mean"
) -> np.ndarray:
    """Gradient of ``mse_loss`` w.r.t. ``input`` (``target`` is not differentiated).

        grad_input = norm * (input - target) * g,    norm = 2 / input.size for 'mean', 2 otherwise

    As ATen's ``mse_loss_backward`` (``norm`` computed in double, then in the input's dtype).
    """
    _check_mse_args(input, target, reduction)
    check_grad_output(grad_output, _grad_output_shape(input, reduction), input.dtype)
    norm = 2.0 / input.size if reduction == "mean" and input.size else 2.0
    return _as_result(input.dtype.type(norm) * (input - target) * grad_output, input.dtype)


# ----------------------------------------------------------------------------- forward mode (JVP)

LOSS_ARGS = ("input", "target")


def _loss_jvp_operands(primals, tangents, check, what):
    """``(input, target, d_input)`` of a checked loss JVP call: ``check(input, target)`` validates the
    primals; target is not differentiated (its tangent must be None); a None input tangent is zeros."""
    (input, target), (d_input, d_target) = unpack_jvp(primals, tangents, LOSS_ARGS, 2, what=what)
    check(input, target)
    check_tangents((input, target), (d_input, d_target), LOSS_ARGS, constant=("target",))
    return input, target, np.zeros_like(input) if d_input is None else d_input


def binary_cross_entropy_jvp(primals, tangents, *, reduction="mean"):
    """Forward mode of ``binary_cross_entropy``: ``(loss, dloss)``, as torch's forward AD states it
    (the backward's clamp, on the tangent; then the forward's reduction):

        dloss = reduce( dp * (p - y) / max((1 - p) * p, EPSILON) )        EPSILON = float32(1e-12)

    ``'mean'`` sums and divides by the number of elements. At p = 0 or 1 this is the backward's
    finite convention, not the derivative of the clamped forward (see the module docstring).
    ``primals = (input, target)``, ``tangents = (dp, None)``: target is not differentiated.
    """
    check = lambda p, y: _check_loss_args(p, y, reduction, probabilities=True)  # noqa: E731
    p, y, dp = _loss_jvp_operands(primals, tangents, check, "binary_cross_entropy_jvp")
    dt = p.dtype.type
    per_element = dp * (p - y) / np.maximum((dt(1) - p) * p, dt(EPSILON))
    return binary_cross_entropy(p, y, reduction=reduction), _reduce(_as_result(per_element, p.dtype), reduction)


def binary_cross_entropy_with_logits_jvp(primals, tangents, *, reduction="mean"):
    """Forward mode of ``binary_cross_entropy_with_logits``: ``(loss, dloss)``, exact for every z:

        dloss = reduce( (sigmoid(z) - y) * dz )        'mean' divides the sum by the number of elements

    ``primals = (input, target)``, ``tangents = (dz, None)``: target is not differentiated.
    """
    check = lambda z, y: _check_loss_args(z, y, reduction, probabilities=False)  # noqa: E731
    z, y, dz = _loss_jvp_operands(primals, tangents, check, "binary_cross_entropy_with_logits_jvp")
    per_element = (_sigmoid(z) - y) * dz
    return binary_cross_entropy_with_logits(z, y, reduction=reduction), _reduce(_as_result(per_element, z.dtype), reduction)


def cross_entropy_jvp(primals, tangents, *, reduction="mean"):
    """Forward mode of ``cross_entropy``: ``(loss, dloss)``, the linearization of
    ``loss_n = logsumexp(input[n]) - input[n, target_n]``:

        dloss_n = sum_c softmax(input, dim=1)[n, c] * dx[n, c] - dx[n, target_n]
        dloss   = reduce(dloss_n)        'mean' divides the sum by N

    ``primals = (input, target)``, ``tangents = (dx, None)``: the integer target has no tangent.
    """
    check = lambda x, t: _check_cross_entropy_args(x, t, reduction)  # noqa: E731
    x, target, dx = _loss_jvp_operands(primals, tangents, check, "cross_entropy_jvp")
    loss = cross_entropy(x, target, reduction=reduction)
    if x.size == 0:
        return loss, _reduce(np.zeros((0,), dtype=x.dtype), reduction)
    rows = _rows(x.shape[0])
    per_row = np.sum(_softmax(x, 1) * dx, axis=1) - dx[rows, target]
    return loss, _reduce(per_row, reduction)


def mse_loss_jvp(primals, tangents, *, reduction="mean"):
    """Forward mode of ``mse_loss``: ``(loss, dloss)``:

        dloss = reduce( 2 * (input - target) * dx )        'mean' divides the sum by input.size

    ``primals = (input, target)``, ``tangents = (dx, None)``: target is not differentiated.
    """
    check = lambda x, t: _check_mse_args(x, t, reduction)  # noqa: E731
    x, target, dx = _loss_jvp_operands(primals, tangents, check, "mse_loss_jvp")
    per_element = x.dtype.type(2) * (x - target) * dx
    return mse_loss(x, target, reduction=reduction), _reduce(_as_result(per_element, x.dtype), reduction)
