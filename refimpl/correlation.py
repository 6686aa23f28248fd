"""The named steps the convolution rules are built from: dilate, pad, crop, flip, correlate.

Every array here is NCHW (or, for filters, O x C_in/groups x kH x kW). The
steps do no argument checking: the public rules in ``convolution.py`` validate
once and then read like the derivation.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def dilate(a: np.ndarray, factor: tuple[int, int], size: tuple[int, int] | None = None) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring elements along H and W.

        dilate(a, s)[..., s*p, s*q] = a[..., p, q], zero elsewhere

    ``size`` extends the result with trailing zeros to exactly ``size`` (H, W);
    it must be at least ``s*(n-1) + 1`` on each axis.
    """
    sh, sw = factor
    h, w = a.shape[-2:]
    out_h, out_w = size if size is not None else (sh * (h - 1) + 1, sw * (w - 1) + 1)
    out = np.zeros(a.shape[:-2] + (out_h, out_w), dtype=a.dtype)
    out[..., : sh * (h - 1) + 1 : sh, : sw * (w - 1) + 1 : sw] = a
    return out


def pad(a: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Zero-pad H by ``padding[0]`` and W by ``padding[1]`` on both sides."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return a
    return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(ph, ph), (pw, pw)])


def crop(a: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """Remove ``padding`` rows/columns from both sides of H and W: the inverse of ``pad``."""
    ph, pw = padding
    h, w = a.shape[-2:]
    return a[..., ph : h - ph, pw : w - pw]


def flip(weight: np.ndarray) -> np.ndarray:
    """Rotate each filter by 180 degrees: flip it vertically and horizontally."""
    return weight[..., ::-1, ::-1]


def swap_filter_channels(weight: np.ndarray, groups: int) -> np.ndarray:
    """Exchange the in- and out-channel roles of a grouped filter bank.

    ``(G*Og, Cg, kH, kW) -> (G*Cg, Og, kH, kW)``: within each group the filter
    that mapped input channel c to output channel o now maps o back to c.
    """
    out_ch, cg, kh, kw = weight.shape
    og = out_ch // groups
    return weight.reshape(groups, og, cg, kh, kw).transpose(0, 2, 1, 3, 4).reshape(groups * cg, og, kh, kw)


def _strided_view(a: np.ndarray, first: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """Read-only view of ``a[first:]``'s memory with the given shape and byte strides (no bounds beyond ``a``)."""
    if a.flags.c_contiguous:  # on a's buffer directly: a tenth of as_strided's overhead, which tiny inputs feel
        view = np.ndarray(shape, a.dtype, a, first * a.strides[0], strides)
        view.flags.writeable = False
        return view
    return as_strided(a[first:], shape, strides, writeable=False)


def correlate(
    x: np.ndarray,
    weight: np.ndarray,
    *,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """Valid (unpadded) grouped cross-correlation, the forward convolution of deep learning.

        out[n, o, p, q] = sum_{c, i, j} x[n, g(o)*Cg + c, p*s_h + i*d_h, q*s_w + j*d_w] * weight[o, c, i, j]

    with ``Cg = C / groups`` and ``g(o)`` the group of output channel ``o``.
    ``x`` is (N, C, H, W), ``weight`` (O, Cg, kH, kW); the result (N, O, Ho, Wo)
    with ``Ho = (H - d_h*(kH-1) - 1) // s_h + 1``.

    The sum is computed as matrix products over the smaller of the two index
    sets it runs over. When the filter is smaller (the forward, and dX), over
    the filter taps: each tap (i, j) is ``W[:, :, i, j] @ x_tap``, x_tap the
    tap's strided slice of x; taps are stacked into fewer, larger products (an
    im2col of a few images when one image's is a few MB at most, else the kW
    taps of a kernel row, by row phase of the stride), never a kH*kW-fold copy
    of a large input.
    When the output is smaller (dW, where a whole gradient map acts as the
    filter), over the output positions: one product of filter size each.
    Every grouping computes the same sum (tests/test_fast_path.py checks it
    against the formula above, path by path).
    """
    n, c, h, w = x.shape
    out_ch, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho = (h - dh * (kh - 1) - 1) // sh + 1
    wo = (w - dw * (kw - 1) - 1) // sw + 1
    og = out_ch // groups
    w_g = weight.reshape(groups, og, cg, kh, kw)
    dtype = np.result_type(x, weight)
    chunk_bytes = 1 << 20  # a few images at a time: buffers that stay in cache, reused for every chunk
    x_g = x.transpose(1, 0, 2, 3).reshape(groups, cg, n, h, w)  # channels first, a view
    k_all = cg * kh * kw
    per_image = k_all * ho * wo * dtype.itemsize
    if kh * kw <= ho * wo and groups == 1 and dilation == (1, 1) and per_image <= 4 * chunk_bytes:
        # im2col of a few images at a time (at most a few MB): cols[n, (c, i, j), (p, q)] =
        # x[n, c, p*s_h + i, q*s_w + j], one copy of a strided view of x, and one GEMM per chunk
        # with reduction length Cg*kH*kW, writing the chunk's output in place:
        #     out[n] = W as (O, Cg*kH*kW) @ cols[n]
        w_all = np.ascontiguousarray(weight, dtype=dtype).reshape(out_ch, k_all)
        nb = max(1, min(n, 4 * chunk_bytes // per_image))
        cols = np.empty((nb, cg, kh, kw, ho, wo), dtype=dtype)
        out = np.empty((n, out_ch, ho, wo), dtype=dtype)
        bn, bc, bh, bw = x.strides
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            cols[:m] = _strided_view(x, n0, (m, cg, kh, kw, ho, wo), (bn, bc, bh, bw, bh * sh, bw * sw))
            np.matmul(w_all, cols[:m].reshape(m, k_all, ho * wo), out=out[n0 : n0 + m].reshape(m, out_ch, ho * wo))
        return out
    if kh * kw <= ho * wo:
        # Per filter tap (i, j) the sum is one product  W[:, :, i, j] @ x_tap  per group, x_tap the
        # tap's strided slice of x, channels first: (Og, Cg) @ (Cg, N*Ho*Wo). The products are
        # regrouped (same sum, fewer and larger GEMMs, never an im2col of the whole filter):
        #  * row phases: tap row i reads x row p*s_h + i*d_h = (p + r_i)*s_h + a_i, a_i = i*d_h % s_h,
        #    r_i = i*d_h // s_h. In the rows of phase a (every s_h-th row, Hq = Ho + max r_i of them
        #    per image), tap row i is output row p moved down r_i rows;
        #  * the kW taps of one kernel row are stacked on the reduction axis, a kW-fold copy
        #    S_a[(j, c), (n, u, q)] = x[n, c, u*s_h + a, q*s_w + j*d_w], so that one GEMM per phase
        #    gives every kernel row of it: T_a[(i, o), (n, u, q)] = sum_{j, c} W[o, c, i, j] S_a[(j, c), (n, u, q)],
        #    and out[n, o, p, q] = sum_i T_{a_i}[(i, o), (n, p + r_i, q)];
        #  * a few images at a time.
        phase = [(i * dh) % sh for i in range(kh)]
        shift = [(i * dh) // sh for i in range(kh)]
        hq = ho + max(shift)
        kc = kw * cg
        taps: dict[int, list[int]] = {}
        for i in range(kh):
            taps.setdefault(phase[i], []).append(i)
        # W_a[g, k*Og + o, j*Cg + c] = W[g*Og + o, c, taps[a][k], j]
        w_a = {
            a: np.ascontiguousarray(w_g[:, :, :, rows, :].transpose(0, 3, 1, 4, 2), dtype=dtype).reshape(groups, len(rows) * og, kc)
            for a, rows in taps.items()
        }
        image = hq * wo
        # the chunk buffers (S_a and T_a of every phase) of one image; with one group, chunks wide
        # enough (>= 1024 positions) for matrix products that split well over threads
        nb = max(1, chunk_bytes // ((len(taps) * kc + kh * og) * groups * image * dtype.itemsize))
        nb = min(n, max(nb, -(-1024 // image)) if groups == 1 else nb)
        # rows u of phase a that are rows of x: u*s_h + a < H (the others stay zero)
        u_end = {a: min(hq, (h - 1 - a) // sh + 1) for a in taps}
        s_buf = {a: np.zeros((groups, kw, cg, nb, hq, wo), dtype=dtype) for a in taps}
        t_buf = {a: np.empty((groups, len(rows) * og, nb * image), dtype=dtype) for a, rows in taps.items()}
        out = np.empty((n, out_ch, ho, wo), dtype=dtype)
        out_g = out.reshape(n, groups, og, ho, wo).transpose(1, 2, 0, 3, 4)
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            terms = []
            for a, rows in taps.items():
                s_a, u = s_buf[a], u_end[a]
                for j in range(kw):
                    s_a[:, j, :, :m, :u] = x_g[:, :, n0 : n0 + m, a : a + sh * (u - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
                t_a = t_buf[a][:, :, : m * image]
                np.matmul(w_a[a], s_a.reshape(groups, kc, nb * image)[:, :, : m * image], out=t_a)
                t_a = t_a.reshape(groups, len(rows), og, m, hq, wo)
                terms += [t_a[:, k, :, :, shift[i] : shift[i] + ho] for k, i in enumerate(rows)]
            chunk = out_g[:, :, n0 : n0 + m]
            if len(terms) == 1:
                chunk[...] = terms[0]
            else:
                np.add(terms[0], terms[1], out=chunk)
                for term in terms[2:]:
                    chunk += term
        return out
    # per output position: window (N, G, Cg*kH*kW) against filters (G, Cg*kH*kW, Og)
    x_g = x.reshape(n, groups, cg, h, w)
    filters = w_g.reshape(groups, og, cg * kh * kw).transpose(0, 2, 1)
    out = np.empty((n, groups, og, ho, wo), dtype=np.result_type(x, weight))
    for p in range(ho):
        for q in range(wo):
            window = x_g[:, :, :, p * sh : p * sh + dh * (kh - 1) + 1 : dh, q * sw : q * sw + dw * (kw - 1) + 1 : dw]
            window = window.reshape(n, groups, cg * kh * kw).transpose(1, 0, 2)
            out[:, :, :, p, q] = (window @ filters).transpose(1, 0, 2)
    return out.reshape(n, out_ch, ho, wo)
