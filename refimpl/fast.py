"""The fast path of the conv2d backward rule: the same gradients, without the stride-dilated zeros.

``refimpl.convolution.conv2d_backward`` is the derivation: a stride-s backward
is the stride-1 backward of the output gradient dilated by s, which is easy to
check and spends (s^2 - 1)/s^2 of its work on zeros. This module computes the
same three gradients from the structure of the forward. The forward
(``correlate``), per group g and filter tap (i, j), is one matrix product

    Z_g[:, (n, p, q)] += W_g[:, :, i, j] @ X_tap,     X_tap[c, (n, p, q)] = Xpad_g[n, c, p*s_h + i*d_h, q*s_w + j*d_w]
                         (Og, Cg)          (Cg, N*Ho*Wo): the tap's strided slice of the padded input

and the backward is its transpose, tap by tap, with G_mat the output gradient
as an (Og, N*Ho*Wo) matrix per group:

    dW_g[:, :, i, j]   = G_mat @ X_tap^T                                    (Og, Cg)
    dXpad_g[X_tap]    += W_g[:, :, i, j]^T @ G_mat                          (Cg, N*Ho*Wo)
    dX = crop(dXpad, p),   db = G summed over N, Ho, Wo

The second line is the adjoint of ``correlate``: ``correlate`` gathers the
strided slice of every tap, its adjoint scatter-adds into the same slice.
Within one tap the strided slice has no repeated index, so ``+=`` on the view
is a correct scatter-add; the taps that overlap accumulate across the loop.

How the products are grouped (the sums above are unchanged, only regrouped):

* Channels first, groups batched: every product is one batched matmul over
  the groups.
* Row phases. Tap row i reads padded-input row ``p*s_h + i*d_h = (p + r_i)*s_h + a_i``
  with ``a_i = (i*d_h) % s_h`` and ``r_i = (i*d_h) // s_h``. In the rows of
  phase a (every s_h-th row), the rows a kernel row reads are its output rows
  moved down by r_i. Each image gets ``Hq = Ho + max r_i`` phase rows; the
  extra ``Hq/Ho - 1`` of the work (3-12% on the benchmark shapes) multiplies
  zeros.
* Stacking, on both sides of the products:

      S_a[(j, c), (n, u, q)]  = Xpad[n, c, u*s_h + a, q*s_w + j*d_w]    the kW column taps: a kW-fold copy of X
      Gs_a[(k, o), (n, u, q)] = G[n, o, u - r_i, q],  i = k-th kernel row of phase a (zero outside 0..Ho-1):
                                                                     a kH-fold copy of G

  so that for every phase a, one GEMM gives the weight gradient of all its
  kernel rows and one GEMM the input gradient of all its taps:

      dW[o, c, i, j]      = (S_a @ Gs_a^T)[(j, c), (k, o)]
      dS_a                = Wt_a @ Gs_a,        Wt_a[(j, c), (k, o)] = W[o, c, i, j]
      dXpad[n, c, u*s_h + a, q*s_w + j*d_w] += dS_a[(j, c), (n, u, q)]     (column tap j's strided slice)

  For u = p + r_i, ``dS_a`` holds exactly the per-tap terms ``W_tap^T @ G_mat``
  of the rows of phase a, so the last line is the per-tap scatter-add above.
  Never a kH*kW-fold copy (an im2col) of anything.
* Batch chunks: a few images at a time, with buffers sized to stay in cache
  and reused by every chunk (their zero borders are written once), so the
  peak extra memory is the result plus a few MB.

Other spatial ranks (``fast_backward``): conv1d is the rank-2 case above with
a unit first axis (H = kH = 1, the same sums); conv3d, and any other rank, runs
``backward_taps``, the two per-tap lines at the top of this docstring as they
stand (one pair of GEMMs per filter tap and chunk of images, no stacking). It
multiplies no inserted zeros at all; tests/test_refimpl_convnd.py checks it
against the row-phase path at rank 2.
"""

from __future__ import annotations

import itertools

import numpy as np

from refimpl.arguments import span
from refimpl.convolution import ConvConfig, conv1d_config, conv2d_config, conv3d_config, gradients
from refimpl.correlation import pad

__all__ = ["conv1d_backward", "conv2d_backward", "conv3d_backward"]

# Bytes of the buffers of one chunk of images (at least one image per chunk):
# small enough to stay in cache, large enough for efficient matrix products.
CHUNK_BYTES = 1 << 20
MIN_WIDTH = 1024  # columns (positions) of one chunk, at least


def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv2d: ``(grad_x, grad_weight, grad_bias or None)``; the contract of
    ``refimpl.conv2d_backward``, computed without dilating the output gradient.

    Per group g and filter tap (i, j), with ``X_tap[c, (n, p, q)] = Xpad_g[n, c, p*s_h + i*d_h, q*s_w + j*d_w]``
    (the forward's strided slice, Ho x Wo positions per image) and ``G_mat`` the output
    gradient as (Og, N*Ho*Wo):

        dW_g[:, :, i, j]  = G_mat @ X_tap^T
        dXpad_g[X_tap]   += W_g[:, :, i, j]^T @ G_mat      (scatter-add: the adjoint of correlate)
        dX = crop(dXpad, p),   db = G summed over N, Ho, Wo

    The products are grouped into two GEMMs per row phase (see the module docstring).

    NaN and inf: the zero borders of those GEMMs are not terms of the sums above, but
    ``0 * NaN`` is NaN. They meet only a non-finite weight (in dX) or a non-finite x or G
    (in dW, where every product is summed into some element of dW). So the result is
    exact when W and dW are finite; otherwise it is recomputed term by term
    (``refimpl.nonfinite.exact``, in ``refimpl.convolution.gradients``). The zero padding
    *is* a term (``Xpad``), as in the formula: a NaN in G makes ``dW`` NaN even where its
    windows read padding only.
    """
    cfg = conv2d_config(x, weight, bias, stride, padding, dilation, groups)
    return gradients(grad_output, x, weight, bias, cfg, fast_backward)


def conv1d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv1d: ``(grad_x, grad_weight, grad_bias or None)``; ``fast_backward`` of rank 1
    (the rank-2 row-phase path with a unit first axis)."""
    cfg = conv1d_config(x, weight, bias, stride, padding, dilation, groups)
    return gradients(grad_output, x, weight, bias, cfg, fast_backward)


def conv3d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Gradients of conv3d: ``(grad_x, grad_weight, grad_bias or None)``; ``fast_backward`` of rank 3
    (``backward_taps``: the per-tap adjoint of the forward)."""
    cfg = conv3d_config(x, weight, bias, stride, padding, dilation, groups)
    return gradients(grad_output, x, weight, bias, cfg, fast_backward)


def fast_backward(g, x, weight, cfg: ConvConfig):
    """``(grad_x, grad_weight)`` of any rank without the stride's zeros: the rank-2 row-phase
    GEMMs (``_backward``) for rank 2, and for rank 1 with a unit first axis (the same sums);
    ``backward_taps`` for any other rank."""
    if cfg.rank == 2:
        return _backward(g, x, weight, cfg)
    if cfg.rank == 1:
        grad_x, grad_weight = _backward(g[:, :, None], x[:, :, None], weight[:, :, None], cfg.lifted())
        return grad_x[:, :, 0], grad_weight[:, :, 0]
    return backward_taps(g, x, weight, cfg)


def backward_taps(g_out, x, weight, cfg: ConvConfig):
    """``(grad_x, grad_weight)`` of any rank, tap by tap: the adjoint of ``correlate``'s per-tap products.

    Per group g and filter tap t (a multi-index over the spatial axes), with
    ``X_tap[c, (n, p)] = Xpad_g[n, c, p*s + t*d]`` and ``G_mat`` the output gradient as (Og, N*prod(out)):

        dW_g[:, :, t]   = G_mat @ X_tap^T
        dXpad_g[X_tap] += W_g[:, :, t]^T @ G_mat        (scatter-add into the tap's strided slice)
        dX = crop(dXpad, p)

    Every product is a term of the rule (no inserted zeros); a few images at a time.
    """
    dtype = cfg.dtype
    rank = cfg.rank
    n, c = x.shape[:2]
    out_ch, cg = weight.shape[:2]
    groups = cfg.groups
    og = out_ch // groups
    padded = tuple(size + 2 * p for size, p in zip(cfg.in_size, cfg.padding))
    out_size = cfg.out_size
    positions = int(np.prod(out_size))
    spatial = tuple(range(3, 3 + rank))

    xp = pad(x, cfg.padding)
    x_g = xp.reshape(n, groups, cg, *padded).transpose(1, 2, 0, *spatial)  # (G, Cg, N, *padded)
    g_g = g_out.reshape(n, groups, og, *out_size).transpose(1, 2, 0, *spatial)  # (G, Og, N, *out)
    grad_xpad = np.zeros((n, c) + padded, dtype=dtype)
    dx_g = grad_xpad.reshape(n, groups, cg, *padded).transpose(1, 2, 0, *spatial)
    w_g = weight.reshape(groups, og, cg, *cfg.kernel)
    grad_weight = np.zeros((groups, og, cg) + cfg.kernel, dtype=dtype)

    nb = int(min(n, max(1, CHUNK_BYTES // ((2 * cg + og) * groups * positions * dtype.itemsize))))
    g_buf = np.empty((groups, og, nb) + out_size, dtype=dtype)
    x_buf = np.empty((groups, cg, nb) + out_size, dtype=dtype)
    dx_buf = np.empty((groups, cg, nb * positions), dtype=dtype)
    dw_tmp = np.empty((groups, og, cg), dtype=dtype)
    everything = (slice(None),) * 3
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        width = m * positions
        g_buf[:, :, :m] = g_g[:, :, n0 : n0 + m]
        g_mat = g_buf.reshape(groups, og, nb * positions)[:, :, :width]
        for t in itertools.product(*(range(k) for k in cfg.kernel)):
            reads = tuple(
                slice(t[a] * cfg.dilation[a], t[a] * cfg.dilation[a] + cfg.stride[a] * (out_size[a] - 1) + 1, cfg.stride[a])
                for a in range(rank)
            )
            x_buf[:, :, :m] = x_g[(slice(None), slice(None), slice(n0, n0 + m)) + reads]
            x_mat = x_buf.reshape(groups, cg, nb * positions)[:, :, :width]
            np.matmul(g_mat, x_mat.transpose(0, 2, 1), out=dw_tmp)
            grad_weight[everything + t] += dw_tmp
            ds = dx_buf[:, :, :width]
            np.matmul(w_g[everything + t].transpose(0, 2, 1), g_mat, out=ds)
            dx_g[(slice(None), slice(None), slice(n0, n0 + m)) + reads] += ds.reshape((groups, cg, m) + out_size)
    crop = tuple(slice(p, p + size) for p, size in zip(cfg.padding, cfg.in_size))
    grad_x = np.ascontiguousarray(grad_xpad[(slice(None), slice(None)) + crop])
    return grad_x, grad_weight.reshape((out_ch, cg) + cfg.kernel)


def _backward(g_out, x, weight, cfg):
    """``(grad_x, grad_weight)`` for a validated configuration ``cfg``: two GEMMs per row phase and chunk."""
    dtype = cfg.dtype
    n, c, h, w = x.shape
    out_ch, cg, kh, kw = weight.shape
    groups = cfg.groups
    og = out_ch // groups
    (sh, sw), (ph, pw), (dh, dw) = cfg.stride, cfg.padding, cfg.dilation
    ho, wo = cfg.out_size

    # kernel row i reads row phase a_i of the padded input, r_i phase rows further down
    phase = [(i * dh) % sh for i in range(kh)]
    shift = [(i * dh) // sh for i in range(kh)]
    hq = ho + max(shift)
    kc = kw * cg  # one kernel row: its kW taps stacked
    # (phase rows, input rows) of each phase that holds input rows, and the kernel rows reading it;
    # a phase of padding rows only, or a column tap on padding columns only, contributes nothing
    row_span = {a: span(hq, sh, a - ph, h) for a in sorted(set(phase))}
    taps = {a: [i for i in range(kh) if phase[i] == a] for a, rows in row_span.items() if rows is not None}
    cols = [span(wo, sw, j * dw - pw, w) for j in range(kw)]

    # Wrow_i[g, o, j*Cg + c] = W[g*Og + o, c, i, j]; stacked over the rows of a phase and transposed:
    # Wt_a[g, j*Cg + c, k*Og + o] = Wrow_{taps[a][k]}[g, o, j*Cg + c]
    w5 = weight.reshape(groups, og, cg, kh, kw)
    wt = {
        a: np.ascontiguousarray(w5[:, :, :, rows_a, :].transpose(0, 4, 2, 3, 1)).reshape(groups, kc, len(rows_a) * og)
        for a, rows_a in taps.items()
    }

    # channels-first views, (G, Cg, N, H, W) and (G, Og, N, Ho, Wo)
    x_g = x.reshape(n, groups, cg, h, w).transpose(1, 2, 0, 3, 4)
    g_g = g_out.reshape(n, groups, og, ho, wo).transpose(1, 2, 0, 3, 4)
    grad_x = np.zeros((n, c, h, w), dtype=dtype)
    dx_g = grad_x.reshape(n, groups, cg, h, w).transpose(1, 2, 0, 3, 4)

    image = hq * wo  # columns per image in the row-phase layout
    # all the chunk buffers (S_a and Gs_a of every phase, dS) of one image
    per_image = (len(taps) * kc + kh * og + kc) * groups * image * dtype.itemsize
    nb = max(1, CHUNK_BYTES // per_image)
    if groups == 1:  # and wide enough for a matrix product that splits well over threads
        nb = max(nb, -(-MIN_WIDTH // image))
    nb = int(min(n, nb))
    # Buffers reused by every chunk. Only their data region is rewritten, the zero border stays:
    #   S_a[g, j, c, n, u, q]  = Xpad[n, g*Cg + c, u*s_h + a, q*s_w + j*d_w]        (the kW taps of a row)
    #   Gs_a[g, k, o, n, u, q] = G[n, g*Og + o, u - r_i, q],  i = taps[a][k]     (G shifted down r_i rows)
    s_buf = {a: np.zeros((groups, kw, cg, nb, hq, wo), dtype=dtype) for a in taps}
    gs_buf = {a: np.zeros((groups, len(rows_a), og, nb, hq, wo), dtype=dtype) for a, rows_a in taps.items()}
    ds_buf = np.empty((groups, kc, nb * image), dtype=dtype)
    dw_acc = {a: np.zeros((groups, kc, len(rows_a) * og), dtype=dtype) for a, rows_a in taps.items()}
    dw_tmp = {a: np.empty_like(acc) for a, acc in dw_acc.items()}

    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        width = m * image
        imgs = slice(n0, n0 + m)
        for a, rows_a in taps.items():
            u_dst, u_src = row_span[a]
            s_a, gs_a = s_buf[a], gs_buf[a]
            for j in range(kw):
                if cols[j] is not None:
                    q_dst, q_src = cols[j]
                    s_a[:, j, :, :m, u_dst, q_dst] = x_g[:, :, imgs, u_src, q_src]
            for k, i in enumerate(rows_a):
                gs_a[:, k, :, :m, shift[i] : shift[i] + ho] = g_g[:, :, imgs]
            s_mat = s_a.reshape(groups, kc, nb * image)[:, :, :width]
            gs_mat = gs_a.reshape(groups, len(rows_a) * og, nb * image)[:, :, :width]

            # dWrow_i^T for every row i of the phase at once: S_a @ Gs_a^T = sum over (n, u, q)
            if n0 == 0:
                np.matmul(s_mat, gs_mat.transpose(0, 2, 1), out=dw_acc[a])
            else:
                np.matmul(s_mat, gs_mat.transpose(0, 2, 1), out=dw_tmp[a])
                dw_acc[a] += dw_tmp[a]

            # dS_a = Wt_a @ Gs_a, then column tap j scatter-adds its block into its strided slice of dX
            ds = ds_buf[:, :, :width]
            np.matmul(wt[a], gs_mat, out=ds)
            ds6 = ds_buf.reshape(groups, kw, cg, nb, hq, wo)
            for j in range(kw):
                if cols[j] is not None:
                    q_dst, q_src = cols[j]
                    dx_g[:, :, imgs, u_src, q_src] += ds6[:, j, :, :m, u_dst, q_dst]

    # dW[g*Og + o, c, i, j] = dw_acc_a[g, j*Cg + c, k*Og + o] with i = taps[a][k]; rows reading padding only: 0
    grad_weight = np.zeros((groups, og, cg, kh, kw), dtype=dtype)
    for a, rows_a in taps.items():
        grad_weight[:, :, :, rows_a, :] = dw_acc[a].reshape(groups, kw, cg, len(rows_a), og).transpose(0, 4, 2, 3, 1)
    return grad_x, grad_weight.reshape(out_ch, cg, kh, kw)
