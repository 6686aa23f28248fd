"""The fully connected layer: ``linear`` and its backward rule, as ``torch.nn.functional.linear``.

    y = x @ W.T + b        x (..., in_features), W (out_features, in_features), b (out_features,)

Pure NumPy; float32 stays float32, float64 stays float64; inputs are never modified.
"""

from __future__ import annotations

import math

import numpy as np

from refimpl.arguments import check_array, check_grad_output, check_same_dtype, check_tangents, unpack_jvp


def _check_linear_args(x, weight, bias) -> np.dtype:
    check_array(x, "x")
    check_array(weight, "weight", ndim=2)
    if bias is not None:
        check_array(bias, "bias", ndim=1)
    dtype = check_same_dtype(x=x, weight=weight, bias=bias)
    if x.ndim < 1:
        raise ValueError("x must be at least 1-dimensional (..., in_features), got a 0-dimensional array")
    out_features, in_features = weight.shape
    if x.shape[-1] != in_features:
        raise ValueError(
            f"x's last dimension (in_features) must equal weight.shape[1] = {in_features}: "
            f"x has shape {x.shape}, weight has shape {weight.shape} (out_features, in_features)"
        )
    if bias is not None and bias.shape != (out_features,):
        raise ValueError(
            f"bias must have shape (out_features,) = ({out_features},) to match weight {weight.shape}, got {bias.shape}"
        )
    return dtype


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Affine map of the last axis, as ``torch.nn.functional.linear``.

        y[..., o] = sum_i x[..., i] * W[o, i] + b[o]        (y = x @ W.T + b)

    ``x`` is (..., in_features) (typically (N, in_features), or a single
    (in_features,) vector), ``weight`` (out_features, in_features), ``bias``
    (out_features,) or None. The result is (..., out_features).
    """
    _check_linear_args(x, weight, bias)
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y


def linear_backward(
    grad_output: np.ndarray, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of ``linear`` w.r.t. ``x``, ``weight`` and ``bias`` given g = dL/dy.

        grad_x = g @ W                  (..., in_features)
        grad_W = g.T @ x                (out_features, in_features), leading axes of g and x flattened into one
        grad_b = g.sum(0)               (out_features,), summed over every leading axis; None if bias is None

    An empty axis gives torch's empty or zero gradients: ``in_features = 0`` gives
    grad_x of shape (..., 0) and grad_W of shape (out_features, 0); no rows
    (``x`` of shape (0, in_features)) gives grad_W = 0 and grad_b = 0.
    """
    dtype = _check_linear_args(x, weight, bias)
    out_features, in_features = weight.shape
    check_grad_output(grad_output, x.shape[:-1] + (out_features,), dtype)
    grad_x = grad_output @ weight
    # the leading axes as one, counted explicitly: reshape(-1, 0) is ambiguous for NumPy
    rows = math.prod(x.shape[:-1])
    g2 = grad_output.reshape(rows, out_features)
    x2 = x.reshape(rows, in_features)
    grad_weight = g2.T @ x2
    grad_bias = g2.sum(axis=0) if bias is not None else None
    return grad_x, grad_weight, grad_bias


def linear_jvp(primals, tangents):
    """Forward mode of ``linear``: ``(y, dy)``, the product rule of the bilinear forward.

        dy = dx @ W.T + x @ dW.T + db        (each term ``linear`` itself on a tangent; None: a zero term)

    ``primals = (x, weight[, bias])``, ``tangents`` likewise (None for a None bias).
    """
    names = ("x", "weight", "bias")
    (x, weight, bias), (dx, dw, db) = unpack_jvp(primals, tangents, names, 2, what="linear_jvp")
    _check_linear_args(x, weight, bias)
    check_tangents((x, weight, bias), (dx, dw, db), names)
    y = linear(x, weight, bias)
    dy = np.zeros_like(y)
    if dx is not None:
        dy += linear(dx, weight)
    if dw is not None:
        dy += linear(x, dw)
    if db is not None:
        dy += db
    return y, dy
