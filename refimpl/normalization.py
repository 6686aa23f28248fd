"""Batch and layer normalization, forward and backward, as ``torch.nn.functional``'s.

Both rules standardize ``x`` over a set of axes ``A`` and then apply a per-element
affine map; they differ only in which axes are normalized and where the affine
parameters broadcast:

    batch_norm  x (N, C, *spatial)   A = every axis but 1 (the batch and the spatial axes)
                                     gamma, beta (C,) broadcast along axis 1
    layer_norm  x (*lead, *S)        A = the trailing len(S) axes, S = normalized_shape
                                     gamma, beta of shape S broadcast along the leading axes

With ``m`` the number of elements in one normalized group (the product of the sizes of
the axes in ``A``):

    mean    = (1/m) sum_A x
    var     = (1/m) sum_A (x - mean)^2             biased; two passes (no E[x^2] - E[x]^2)
    inv_std = 1 / sqrt(var + eps)
    xhat    = (x - mean) * inv_std
    y       = gamma * xhat + beta                  (gamma = 1, beta = 0 where None)

The statistics and the gradients are written once, in ``_standardize`` and
``_normalized_backward``; ``batch_norm`` and ``layer_norm`` only choose ``A``, the
shape gamma broadcasts as, and the axes the parameter gradients sum over.
The derivation of the backward is in docs/normalization-derivation.md.

Only training-mode batch normalization (the batch's own statistics) is provided: no
running statistics. Pure NumPy; float32 stays float32 (the statistics are summed in
the input's dtype, as NumPy sums it: pairwise along contiguous runs); inputs are never
modified; every loop is a vectorized reduction (none over batch items or channels).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from refimpl.arguments import check_array, check_grad_output, check_same_dtype, check_tangents, unpack_jvp

__all__ = [
    "batch_norm", "batch_norm_backward", "batch_norm_jvp", "layer_norm", "layer_norm_backward", "layer_norm_jvp",
]


# --------------------------------------------------------------------------- the shared core


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(xhat, inv_std, scratch)`` over ``axes``; ``inv_std`` keeps those axes as size 1 (broadcastable).

        mean = sum_A x / m;  var = sum_A (x - mean)^2 / m;  inv_std = 1/sqrt(var + eps);  xhat = (x - mean) inv_std

    The variance is the mean of the centred squares (two passes), which stays accurate
    when the values sit far from zero (x = 1e4 + noise); E[x^2] - E[x]^2 would cancel.
    Non-finite values propagate: a NaN or inf in a group makes that group's ``xhat`` NaN
    (inf - inf), as in torch; an empty group (m = 0) gives empty results.

    For speed only: ``xhat`` and ``scratch`` (x's shape, its contents meaningless) are
    new arrays the caller may overwrite; reusing them saves allocating (and faulting in
    the pages of) more full-size temporaries.
    """
    m = max(math.prod(x.shape[a] for a in axes), 1)  # m = 0: the sums are empty, 0/1 instead of 0/0
    dtype = x.dtype.type
    # NaN and inf propagate silently, as in torch
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = x.sum(axis=axes, keepdims=True) / dtype(m)
        xhat = np.subtract(x, mean)                              # x - mean, made xhat in place below
        scratch = np.square(xhat)
        var = scratch.sum(axis=axes, keepdims=True) / dtype(m)
        inv_std = dtype(1) / np.sqrt(var + dtype(eps))
        xhat *= inv_std
    return xhat, inv_std, scratch


def _normalized_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray | None,
    axes: tuple[int, ...],
    param_axes: tuple[int, ...],
    eps: float,
    *,
    want_weight: bool,
    want_bias: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(grad_x, grad_gamma, grad_beta)`` of ``y = gamma * xhat + beta``, xhat standardized over ``axes``.

    ``gamma`` is already shaped to broadcast against ``x`` (or None for gamma = 1).
    With ``gy = g * gamma`` and ``m`` the group size:

        grad_x     = (1/m) inv_std (m gy - sum_A gy - xhat sum_A(gy xhat))
                   = inv_std (gy - mean_A gy - xhat mean_A(gy xhat))       (the form evaluated)
        grad_gamma = sum_P g xhat,   grad_beta = sum_P g                    (P = ``param_axes``)
    """
    xhat, inv_std, scratch = _standardize(x, axes, eps)
    m = max(math.prod(x.shape[a] for a in axes), 1)
    dtype = x.dtype.type
    with np.errstate(invalid="ignore", over="ignore"):
        grad_beta = grad_output.sum(axis=param_axes) if want_bias else None
        g_xhat = np.multiply(grad_output, xhat, out=scratch)
        grad_gamma = g_xhat.sum(axis=param_axes) if want_weight else None
        if gamma is None:
            gy, gy_xhat = grad_output, g_xhat
        else:
            gy = grad_output * gamma
            gy_xhat = np.multiply(g_xhat, gamma, out=g_xhat)
        mean_gy = gy.sum(axis=axes, keepdims=True) / dtype(m)
        mean_gy_xhat = gy_xhat.sum(axis=axes, keepdims=True) / dtype(m)
        # grad_x = inv_std * (gy - mean_gy - xhat * mean_gy_xhat), in xhat's buffer
        grad_x = np.multiply(xhat, mean_gy_xhat, out=xhat)
        np.subtract(gy, grad_x, out=grad_x)
        grad_x -= mean_gy
        grad_x *= inv_std
    # np.asarray: a sum over every axis is a NumPy scalar, the contract wants an ndarray
    return (
        grad_x,
        None if grad_gamma is None else np.asarray(grad_gamma, dtype=x.dtype),
        None if grad_beta is None else np.asarray(grad_beta, dtype=x.dtype),
    )


# --------------------------------------------------------------------------- validation


def _check_eps(eps) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (float, np.floating)):
        raise TypeError(f"eps must be a float (e.g. 1e-5), got {type(eps).__name__} {eps!r}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite float (it keeps 1/sqrt(var + eps) finite), got {eps!r}")
    return float(eps)


def _check_param(p, name: str, shape: tuple[int, ...], what: str) -> None:
    if p is None:
        return
    check_array(p, name)
    if p.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {p.shape}")


def _check_batch_norm_args(x, weight, bias, eps) -> tuple[int, ...]:
    """The normalized axes of ``x`` (all but 1), after checking every argument."""
    check_array(x, "x")
    if x.ndim < 2:
        raise ValueError(
            f"x must be at least 2-dimensional for batch_norm, (N, C), (N, C, L) or (N, C, H, W), got shape {x.shape}"
        )
    channels = x.shape[1]
    _check_param(weight, "weight", (channels,), f"one value per channel of x {x.shape}")
    _check_param(bias, "bias", (channels,), f"one value per channel of x {x.shape}")
    check_same_dtype(x=x, weight=weight, bias=bias)
    _check_eps(eps)
    axes = (0,) + tuple(range(2, x.ndim))
    if math.prod(x.shape[a] for a in axes) == 1:
        raise ValueError(
            f"x must have more than 1 value per channel for batch_norm in training mode (N * spatial size = 1: "
            f"the variance of a single value is 0 and the output would be beta), as torch requires "
            f"('Expected more than 1 value per channel when training'); got shape {x.shape}"
        )
    return axes


def _check_normalized_shape(normalized_shape) -> tuple[int, ...]:
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, (bool, np.bool_)):
        shape = (int(normalized_shape),)
    elif isinstance(normalized_shape, (tuple, list)):
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in normalized_shape):
            raise TypeError(f"normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}")
        shape = tuple(int(s) for s in normalized_shape)
    else:
        raise TypeError(
            f"normalized_shape must be an int or a tuple of ints, got {type(normalized_shape).__name__} {normalized_shape!r}"
        )
    if len(shape) < 1:
        raise ValueError("normalized_shape must name at least one trailing dimension of x, got ()")
    if min(shape) < 0:
        raise ValueError(f"normalized_shape must not have negative sizes, got {normalized_shape!r}")
    return shape


def _check_layer_norm_args(x, weight, bias, normalized_shape, eps) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(normalized axes, leading axes)`` of ``x``, after checking every argument."""
    check_array(x, "x")
    shape = _check_normalized_shape(normalized_shape)
    k = len(shape)
    if x.ndim < k or x.shape[x.ndim - k:] != shape:
        raise ValueError(
            f"x's trailing dimensions must equal normalized_shape {shape} (x of shape (*, {', '.join(map(str, shape))})), "
            f"got x of shape {x.shape}"
        )
    _check_param(weight, "weight", shape, "normalized_shape")
    _check_param(bias, "bias", shape, "normalized_shape")
    check_same_dtype(x=x, weight=weight, bias=bias)
    _check_eps(eps)
    lead = x.ndim - k
    return tuple(range(lead, x.ndim)), tuple(range(lead))


def _affine(xhat: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None) -> np.ndarray:
    """``gamma * xhat + beta``, computed in ``xhat``'s buffer (a temporary of the caller's)."""
    with np.errstate(invalid="ignore", over="ignore"):
        if gamma is not None:
            xhat *= gamma
        if beta is not None:
            xhat += beta
    return xhat


def _channel_shaped(p: np.ndarray | None, ndim: int) -> np.ndarray | None:
    """A (C,) parameter as (1, C, 1, ...): broadcast along axis 1 of an ``ndim``-dimensional x."""
    return None if p is None else p.reshape((1, p.shape[0]) + (1,) * (ndim - 2))


# --------------------------------------------------------------------------- batch_norm


def batch_norm(
    x: np.ndarray, weight: np.ndarray | None = None, bias: np.ndarray | None = None, *, eps: float = 1e-5
) -> np.ndarray:
    """Batch normalization in training mode, as
    ``torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=eps)``.

        mean[c]    = (1/m) sum_{n,s} x[n,c,s]                 m = N * (product of the spatial sizes)
        var[c]     = (1/m) sum_{n,s} (x[n,c,s] - mean[c])^2    biased (divides by m, not m - 1)
        y[n,c,s]   = weight[c] * (x[n,c,s] - mean[c]) / sqrt(var[c] + eps) + bias[c]

    ``x`` is (N, C), (N, C, L) or (N, C, H, W) (any ndim >= 2: axis 1 is the channel);
    ``weight`` and ``bias`` are (C,) or None (1 and 0). The batch's own statistics are
    used (no running averages).

    Raises ``ValueError`` where torch refuses the configuration: a single value per
    channel (N * spatial size = 1, e.g. x of shape (1, C) or (1, C, 1, 1): "Expected more
    than 1 value per channel when training"), and ``eps <= 0`` ("batch_norm eps must be
    positive during training"). A constant channel (var = 0) is fine: eps keeps
    inv_std = 1/sqrt(eps) finite, xhat = 0 and y = bias there. Empty inputs (N = 0 or a
    spatial size 0) give an empty output, as in torch.
    """
    axes = _check_batch_norm_args(x, weight, bias, eps)
    xhat, _, _ = _standardize(x, axes, eps)
    return _affine(xhat, _channel_shaped(weight, x.ndim), _channel_shaped(bias, x.ndim))


def batch_norm_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    *,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of training-mode ``batch_norm`` w.r.t. ``x``, ``weight`` and ``bias`` given g = dL/dy.

    With m = N * spatial size the number of values per channel, per channel c
    (sums over the batch and spatial axes n, s), inv_std = 1/sqrt(var + eps),
    xhat = (x - mean) * inv_std and gy = g * gamma (gamma = weight[c], 1 if None):

        grad_x      = (1/m) * inv_std * (m*gy - sum(gy) - xhat*sum(gy*xhat))
        grad_weight = sum_{n,s} g * xhat        (C,); None if weight is None
        grad_bias   = sum_{n,s} g               (C,); None if bias is None

    The statistics are the batch's, so grad_x carries the paths through the mean and
    the variance (the two subtracted terms); grad_x sums to 0 over each channel. Raises
    like ``batch_norm`` (a single value per channel, eps <= 0); ``grad_output`` must
    have x's shape and dtype.
    """
    axes = _check_batch_norm_args(x, weight, bias, eps)
    check_grad_output(grad_output, x.shape, x.dtype)
    return _normalized_backward(
        grad_output, x, _channel_shaped(weight, x.ndim), axes, axes, eps,
        want_weight=weight is not None, want_bias=bias is not None,
    )


# --------------------------------------------------------------------------- layer_norm


def layer_norm(
    x: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    *,
    normalized_shape,
    eps: float = 1e-5,
) -> np.ndarray:
    """Layer normalization over the trailing ``normalized_shape`` dims, as ``torch.nn.functional.layer_norm``.

        x of shape (*lead, *S), S = normalized_shape, m = prod(S); for every leading index i:
        mean[i] = (1/m) sum_S x[i, s];   var[i] = (1/m) sum_S (x[i, s] - mean[i])^2    (biased)
        y[i, s] = weight[s] * (x[i, s] - mean[i]) / sqrt(var[i] + eps) + bias[s]

    ``normalized_shape`` is an int or a tuple of ints equal to x's trailing dims (one,
    two or three of them in the usual uses, e.g. (C, H, W)); ``weight`` and ``bias``
    have shape ``normalized_shape`` or are None. ``x`` may have no leading dims at all.

    Raises ``ValueError`` if ``normalized_shape`` is empty or is not x's trailing
    shape, and if ``eps <= 0``: here refimpl is stricter than torch, which accepts
    ``eps = 0`` for layer_norm (and then divides by 0 on a constant row).
    m = 1 (normalized_shape (1,)) is allowed, as in torch: xhat = 0 and y = bias.
    """
    axes, _ = _check_layer_norm_args(x, weight, bias, normalized_shape, eps)
    xhat, _, _ = _standardize(x, axes, eps)
    return _affine(xhat, weight, bias)


def layer_norm_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    *,
    normalized_shape,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients of ``layer_norm`` w.r.t. ``x``, ``weight`` and ``bias`` given g = dL/dy.

    With m = prod(normalized_shape), per leading index (sums over the normalized
    dims), inv_std = 1/sqrt(var + eps), xhat = (x - mean) * inv_std and
    gy = g * gamma (gamma = weight, broadcast along the leading dims; 1 if None):

        grad_x      = (1/m) * inv_std * (m*gy - sum(gy) - xhat*sum(gy*xhat))
        grad_weight = sum_{lead} g * xhat       (normalized_shape); None if weight is None
        grad_bias   = sum_{lead} g              (normalized_shape); None if bias is None

    grad_x sums to 0 over each normalized group. Raises like ``layer_norm``;
    ``grad_output`` must have x's shape and dtype.
    """
    axes, lead = _check_layer_norm_args(x, weight, bias, normalized_shape, eps)
    check_grad_output(grad_output, x.shape, x.dtype)
    return _normalized_backward(
        grad_output, x, weight, axes, lead, eps, want_weight=weight is not None, want_bias=bias is not None,
    )


# --------------------------------------------------------------------------- forward mode (JVP)

NORM_ARGS = ("x", "weight", "bias")


def _normalized_jvp(x, dx, gamma, dgamma, beta, dbeta, axes, eps):
    """``(y, dy)`` of ``y = gamma * xhat + beta``, xhat standardized over ``axes`` (parameters already
    shaped to broadcast against x; None for gamma = 1, beta = 0 or a zero tangent). The linearization
    of xhat = (x - mean) inv_std, with means over ``axes``:

        d mean    = mean(dx)
        d inv_std = -inv_std^3 mean((x - mean)(dx - d mean)) = -inv_std^2 mean(dx xhat)
        dxhat     = inv_std (dx - mean(dx) - xhat mean(dx xhat))
        dy        = gamma dxhat + xhat dgamma + dbeta

    (the backward's grad_x formula with dx in gy's place: dxhat is the same symmetric projection).
    """
    xhat, inv_std, scratch = _standardize(x, axes, eps)
    dtype = x.dtype.type
    m = max(math.prod(x.shape[a] for a in axes), 1)
    with np.errstate(invalid="ignore", over="ignore"):
        y = xhat.copy() if gamma is None else xhat * gamma
        if beta is not None:
            y += beta
        if dx is None:
            dy = np.zeros_like(x)
        else:
            mean_dx = dx.sum(axis=axes, keepdims=True) / dtype(m)
            mean_dx_xhat = np.multiply(dx, xhat, out=scratch).sum(axis=axes, keepdims=True) / dtype(m)
            dy = dx - mean_dx
            dy -= xhat * mean_dx_xhat
            dy *= inv_std
            if gamma is not None:
                dy *= gamma
        if dgamma is not None:
            dy += xhat * dgamma
        if dbeta is not None:
            dy += dbeta
    return y, dy


def batch_norm_jvp(primals, tangents, *, eps=1e-5):
    """Forward mode of training-mode ``batch_norm``: ``(y, dy)``, per channel c (means over n and s):

        dxhat = inv_std * (dx - mean(dx) - xhat * mean(dx * xhat))
        dy    = weight[c] * dxhat + xhat * dweight[c] + dbias[c]

    ``primals = (x[, weight[, bias]])``, ``tangents`` likewise (None: a zero tangent; None for a
    None weight or bias). Raises like ``batch_norm``.
    """
    (x, weight, bias), (dx, dw, db) = unpack_jvp(primals, tangents, NORM_ARGS, 1, what="batch_norm_jvp")
    axes = _check_batch_norm_args(x, weight, bias, eps)
    check_tangents((x, weight, bias), (dx, dw, db), NORM_ARGS)
    shaped = lambda p: _channel_shaped(p, x.ndim)  # noqa: E731
    return _normalized_jvp(x, dx, shaped(weight), shaped(dw), shaped(bias), shaped(db), axes, eps)


def layer_norm_jvp(primals, tangents, *, normalized_shape, eps=1e-5):
    """Forward mode of ``layer_norm``: ``(y, dy)``, per leading index (means over the normalized dims):

        dxhat = inv_std * (dx - mean(dx) - xhat * mean(dx * xhat))
        dy    = weight * dxhat + xhat * dweight + dbias

    ``primals = (x[, weight[, bias]])``, ``tangents`` likewise (None: a zero tangent; None for a
    None weight or bias). Raises like ``layer_norm``.
    """
    (x, weight, bias), (dx, dw, db) = unpack_jvp(primals, tangents, NORM_ARGS, 1, what="layer_norm_jvp")
    axes, _ = _check_layer_norm_args(x, weight, bias, normalized_shape, eps)
    check_tangents((x, weight, bias), (dx, dw, db), NORM_ARGS)
    return _normalized_jvp(x, dx, weight, dw, bias, db, axes, eps)
