"""Adaptive average pooling, forward and backward, with ``torch.nn.functional.adaptive_avg_pool2d``'s bins.

For an input of height H pooled to Ho rows, output row i averages input rows

    start_i = floor(i * H / Ho)  <=  h  <  end_i = ceil((i + 1) * H / Ho)

(bins overlap when Ho does not divide H, and repeat rows when Ho > H); columns
likewise. The bins of each axis are a 0/1 matrix ``B_h`` (Ho x H), ``B_h[i, h] = 1``
iff h is in bin i, with bin sizes ``c_h = B_h 1``; the pooling of one plane X (H x W) is

    Y = (B_h X B_w^T) / (c_h c_w^T)              (elementwise division: the sum of a bin over its size)
      = A_h X A_w^T,    A = diag(c)^-1 B         (the averaging matrices)

so vec(Y) = (A_h ⊗ A_w) vec(X), a linear map, and its backward is its transpose:

    dX = A_h^T G A_w = B_h^T (G / (c_h c_w^T)) B_w

Both are two matrix products over all planes at once (or, when the Kronecker
matrix is small, e.g. a global pool to 1x1, one product with ``B_h ⊗ B_w``);
dividing the bin sums by the bin size, rather than multiplying by 1/size, is
torch's order of operations.

NaN and inf: the zeros of B are not terms of a bin's sum, but ``0 * inf`` is NaN.
When the operand (X forward, G backward) is not finite, the non-finite elements
are placed by counting them per bin with the same products on 0/1 indicators:
an output is NaN if its bin holds a NaN or both +inf and -inf, else +-inf if it
holds one, as torch's sums give.

Layout NCHW, or CHW (a batch of one); N and C may be 0, H and W may not (torch's rule).
"""

from __future__ import annotations

import numpy as np

from refimpl.arguments import as_pair, check_array, check_grad_output, check_tangents, unpack_jvp

__all__ = ["adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_jvp"]


def _bins(size: int, out: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(B, c)``: the 0/1 bin matrix (out x size) of torch's adaptive bins along one axis, and the bin sizes."""
    i = np.arange(out)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)  # ceil((i + 1) * size / out)
    h = np.arange(size)
    member = (h >= start[:, None]) & (h < end[:, None])
    return member.astype(dtype), (end - start).astype(dtype)


def _check(x, output_size) -> tuple[int, int]:
    check_array(x, "x", ndim=(3, 4))
    if min(x.shape[-2:]) < 1:
        raise ValueError(
            f"adaptive_avg_pool2d: x must have non-empty H and W (only N and C may be 0), as in torch: got shape {x.shape}"
        )
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        # None keeps that axis's input size, as in torch
        output_size = tuple(x.shape[-2 + a] if v is None else v for a, v in enumerate(output_size))
    return as_pair(output_size, "output_size", minimum=1)


class _Pool:
    """The bin matrices of one (H, W) -> (Ho, Wo) pooling, and the two linear maps built from them."""

    def __init__(self, in_hw, out_hw, dtype):
        (h, w), (ho, wo) = in_hw, out_hw
        self.in_hw, self.out_hw = (h, w), (ho, wo)
        self.b_h, c_h = _bins(h, ho, dtype)
        self.b_w, c_w = _bins(w, wo, dtype)
        self.size = c_h[:, None] * c_w[None, :]  # (Ho, Wo): elements per bin (exact in float32 too)
        # one product with B_h ⊗ B_w when that costs less than the two separate products
        self.kron = h * w * ho * wo <= 4 * (h * w * wo + h * wo * ho)
        if self.kron:
            self.b_hw = np.kron(self.b_h, self.b_w)  # (Ho*Wo, H*W)

    def sums(self, x: np.ndarray) -> np.ndarray:
        """Per plane, the sum of every bin: ``B_h X B_w^T``; x is (P, H, W), the result (P, Ho, Wo)."""
        (h, w), (ho, wo) = self.in_hw, self.out_hw
        p = x.shape[0]
        if self.kron:
            return (x.reshape(p, h * w) @ self.b_hw.T).reshape(p, ho, wo)
        t = (x.reshape(p * h, w) @ self.b_w.T).reshape(p, h, wo)  # rows' sums over column bins
        return np.matmul(self.b_h, t)  # then over row bins

    def spread(self, g: np.ndarray) -> np.ndarray:
        """The transpose of ``sums``: ``B_h^T G B_w``, every bin's value added to each of its elements."""
        (h, w), (ho, wo) = self.in_hw, self.out_hw
        p = g.shape[0]
        if (ho, wo) == (1, 1):  # one bin, the whole plane (B = 1^T): a broadcast, not a K=1 product
            return np.broadcast_to(g, (p, h, w)).copy()
        if self.kron:
            return (g.reshape(p, ho * wo) @ self.b_hw).reshape(p, h, w)
        t = np.matmul(self.b_h.T, g)  # (P, H, Wo)
        return (t.reshape(p * h, wo) @ self.b_w).reshape(p, h, w)


def _exactly(f, a: np.ndarray) -> np.ndarray:
    """``f(a)`` for a linear ``f`` with non-negative coefficients, NaN and inf as its terms give them.

    ``f`` is a sum over index sets (bins) with positive weights; the zeros of its matrices are
    not terms. Finite part ``f(fin(a))``; then per output: NaN if a NaN term or +inf and -inf
    terms meet, +-inf if only one sign of infinity is there.

    Every element of ``a`` is a term of some output (bins cover the input, and are never
    empty), so ``f(a)`` is finite iff ``a`` is (or a sum overflowed, which the recomputation
    leaves as it is): checking the smaller of ``a`` and ``f(a)`` decides.
    """
    with np.errstate(invalid="ignore"):  # 0 * inf of the matrices' zeros: corrected below, not the caller's concern
        out = f(a)
    if np.isfinite(a if a.size <= out.size else out).all():
        return out
    out = f(np.where(np.isfinite(a), a, a.dtype.type(0)))
    has = lambda mask: f(mask.astype(a.dtype)) > 0  # noqa: E731
    pos, neg = has(np.isposinf(a)), has(np.isneginf(a))
    out[pos] = np.inf
    out[neg] = -np.inf
    out[has(np.isnan(a)) | (pos & neg)] = np.nan
    return out


def adaptive_avg_pool2d(x: np.ndarray, *, output_size) -> np.ndarray:
    """Adaptive average pooling to ``output_size`` = (Ho, Wo), like ``torch.nn.functional.adaptive_avg_pool2d``.

        Y[n, c, i, j] = sum_{h in bin_i, w in bin_j} X[n, c, h, w] / (|bin_i| |bin_j|)
        bin_i = [floor(i H / Ho), ceil((i + 1) H / Ho))        (overlapping when Ho does not divide H)

    i.e. ``Y = A_h X A_w^T`` per plane, A the averaging matrices (see the module docstring).
    ``output_size`` is an int or an (h, w) pair; a ``None`` entry keeps that axis's size.
    """
    size = _check(x, output_size)
    pool = _Pool(x.shape[-2:], size, x.dtype)
    planes = x.reshape((-1,) + x.shape[-2:])
    y = _exactly(lambda a: pool.sums(a) / pool.size, planes)
    return np.ascontiguousarray(y.reshape(x.shape[:-2] + size), dtype=x.dtype)


def adaptive_avg_pool2d_backward(grad_output: np.ndarray, x: np.ndarray, *, output_size) -> np.ndarray:
    """Gradient of ``adaptive_avg_pool2d`` w.r.t. ``x``: the transpose of the forward's linear map.

        dX[n, c, h, w] = sum_{i: h in bin_i, j: w in bin_j} G[n, c, i, j] / (|bin_i| |bin_j|)
                       = (A_h^T G A_w)[n, c, h, w]        (overlapping bins add)
    """
    size = _check(x, output_size)
    check_grad_output(grad_output, x.shape[:-2] + size, x.dtype)
    pool = _Pool(x.shape[-2:], size, x.dtype)
    planes = grad_output.reshape((-1,) + size)
    grad_x = _exactly(lambda g: pool.spread(g / pool.size), planes)
    return np.ascontiguousarray(grad_x.reshape(x.shape), dtype=x.dtype)


def adaptive_avg_pool2d_jvp(primals, tangents, *, output_size):
    """Forward mode of ``adaptive_avg_pool2d``: ``(Y, dY)``. The forward is linear in X, its own JVP:

        dY = A_h dX A_w^T = adaptive_avg_pool2d(dX)        (None: a zero tangent)
    """
    (x,), (dx,) = unpack_jvp(primals, tangents, ("x",), 1, what="adaptive_avg_pool2d_jvp")
    y = adaptive_avg_pool2d(x, output_size=output_size)
    check_tangents((x,), (dx,), ("x",))
    return y, np.zeros_like(y) if dx is None else adaptive_avg_pool2d(dx, output_size=output_size)
