"""The named steps the convolution rules are built from: dilate, pad, crop, flip, correlate.

Each step is stated once for any spatial rank r: arrays are (N, C, *spatial)
and filters (O, C_in/groups, *k), with r = 1 (NCL, conv1d), 2 (NCHW, conv2d)
or 3 (NCDHW, conv3d); the rank comes from the length of the spatial tuples
(``factor``, ``padding``) or from the filter's ndim. The steps do no argument
checking: the public rules in ``convolution.py`` validate once and then read
like the derivation.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import as_strided

# Bytes of the buffers of one chunk of images in ``correlate_taps``: small enough to stay in cache.
CHUNK_BYTES = 1 << 20


def dilate(a: np.ndarray, factor: tuple[int, ...], size: tuple[int, ...] | None = None) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring elements along each spatial axis.

        dilate(a, s)[..., s_1*p_1, ..., s_r*p_r] = a[..., p_1, ..., p_r], zero elsewhere

    The spatial axes are the last ``r = len(factor)`` (H, W for conv2d; L for
    conv1d; D, H, W for conv3d). ``size`` extends the result with trailing zeros
    to exactly ``size``; it must be at least ``s*(n-1) + 1`` on each axis.
    """
    rank = len(factor)
    spatial = a.shape[a.ndim - rank :]
    natural = tuple(s * (n - 1) + 1 for s, n in zip(factor, spatial))
    out = np.zeros(a.shape[: a.ndim - rank] + tuple(size if size is not None else natural), dtype=a.dtype)
    out[(...,) + tuple(slice(0, e, s) for e, s in zip(natural, factor))] = a
    return out


def pad(a: np.ndarray, padding: tuple[int, ...]) -> np.ndarray:
    """Zero-pad each of the last ``len(padding)`` axes by ``padding[axis]`` on both sides."""
    if not any(padding):
        return a
    lead = a.ndim - len(padding)
    out = np.zeros(a.shape[:lead] + tuple(n + 2 * p for n, p in zip(a.shape[lead:], padding)), dtype=a.dtype)
    out[(...,) + tuple(slice(p, p + n) for p, n in zip(padding, a.shape[lead:]))] = a  # np.pad, without its ~20 us of set-up
    return out


def crop(a: np.ndarray, padding: tuple[int, ...]) -> np.ndarray:
    """Remove ``padding[axis]`` elements from both ends of each of the last ``len(padding)`` axes: the inverse of ``pad``."""
    spatial = a.shape[a.ndim - len(padding) :]
    return a[(...,) + tuple(slice(p, n - p) for p, n in zip(padding, spatial))]


def flip(weight: np.ndarray) -> np.ndarray:
    """Rotate each filter by 180 degrees: reverse every spatial axis (all but the two channel axes)."""
    return weight[(...,) + (slice(None, None, -1),) * (weight.ndim - 2)]


def swap_filter_channels(weight: np.ndarray, groups: int) -> np.ndarray:
    """Exchange the in- and out-channel roles of a grouped filter bank.

    ``(G*Og, Cg, *k) -> (G*Cg, Og, *k)``: within each group the filter
    that mapped input channel c to output channel o now maps o back to c.
    """
    out_ch, cg, *kernel = weight.shape
    og = out_ch // groups
    spatial = tuple(range(3, 3 + len(kernel)))
    return weight.reshape(groups, og, cg, *kernel).transpose(0, 2, 1, *spatial).reshape(groups * cg, og, *kernel)


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
    stride: tuple[int, ...] | None = None,
    dilation: tuple[int, ...] | None = None,
    groups: int = 1,
) -> np.ndarray:
    """Valid (unpadded) grouped cross-correlation of any spatial rank r (1, 2, 3, ...).

        out[n, o, p] = sum_{c, t} x[n, g(o)*Cg + c, p*s + t*d] * weight[o, c, t]

    with p and t multi-indices over the r spatial axes (products taken axis by
    axis), ``Cg = C / groups`` and ``g(o)`` the group of output channel ``o``.
    ``x`` is (N, C, *size), ``weight`` (O, Cg, *k); the result (N, O, *out) with
    ``out = (size - d*(k-1) - 1) // s + 1`` per axis. ``stride`` and ``dilation``
    default to 1 on every axis.

    One formula, three ways of evaluating it (the same sum each time):

    * r = 2: ``correlate2d``, the rank-2 case with its own grouping of the
      products (row phases, an im2col of a few images), tuned for conv2d;
    * r = 1: the rank-2 case with a unit first axis (H = kH = 1): the same sum;
    * any other r: ``correlate_taps``, one matrix product per tap (or per output
      position when the output is the smaller index set).
    """
    rank = weight.ndim - 2
    if stride is None:
        stride = (1,) * rank
    if dilation is None:
        dilation = (1,) * rank
    if rank == 2:
        return correlate2d(x, weight, stride=stride, dilation=dilation, groups=groups)
    if rank == 1:
        out = correlate2d(x[:, :, None], weight[:, :, None], stride=(1,) + stride, dilation=(1,) + dilation, groups=groups)
        return out[:, :, 0]
    return correlate_taps(x, weight, stride=stride, dilation=dilation, groups=groups)


def _taps(kernel: tuple[int, ...]):
    """Every multi-index of a kernel (or of any box), in row-major order."""
    return itertools.product(*(range(k) for k in kernel))


def correlate_taps(
    x: np.ndarray,
    weight: np.ndarray,
    *,
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    groups: int = 1,
) -> np.ndarray:
    """``correlate`` for any spatial rank, as matrix products over the smaller index set.

    When the filter is smaller (the forward, dX): per tap t of the leading spatial
    axes, the last axis's k taps stacked on the reduction axis (a k-fold copy of a
    few images at a time),

        out_g[o, (n, p)] += sum_{j, c} W[g*Og + o, c, t, j] * x[n, g*Cg + c, (t, j)*d + p*s]

    When the output is smaller (dW, where a whole gradient map acts as the filter):
    per output position p, one product of filter size,

        out[n, g*Og + o, p] = sum_{c, t} window_p[n, g, (c, t)] * W[g*Og + o, c, t]
    """
    rank = weight.ndim - 2
    n, c, *size = x.shape
    out_ch, cg, *kernel = weight.shape
    out_size = tuple((size[a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1 for a in range(rank))
    og = out_ch // groups
    dtype = np.result_type(x, weight)
    positions = int(np.prod(out_size))
    w_g = weight.reshape(groups, og, cg, *kernel)
    if int(np.prod(kernel)) <= positions:
        *lead, kl = kernel
        x_g = x.reshape(n, groups, cg, *size).transpose(1, 2, 0, *range(3, 3 + rank))  # (G, Cg, N, *size), a view
        # W_t[g, o, (j, c)] = W[g*Og + o, c, t, j] for a tap t of the leading axes
        w_t = np.ascontiguousarray(np.moveaxis(w_g, 2 + rank, 2), dtype=dtype)  # (G, Og, kL, Cg, *lead)
        kc = kl * cg
        image = positions
        nb = int(min(n, max(1, CHUNK_BYTES // ((kc + og) * groups * image * dtype.itemsize))))
        stacked = np.empty((groups, kl, cg, nb) + out_size, dtype=dtype)
        product = np.empty((groups, og, nb * image), dtype=dtype)
        out = np.empty((n, out_ch) + out_size, dtype=dtype)
        out_g = out.reshape(n, groups, og, *out_size).transpose(1, 2, 0, *range(3, 3 + rank))
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            acc = out_g[:, :, n0 : n0 + m]
            for k, t in enumerate(_taps(tuple(lead))):
                for j in range(kl):
                    tap = t + (j,)
                    reads = tuple(
                        slice(tap[a] * dilation[a], tap[a] * dilation[a] + stride[a] * (out_size[a] - 1) + 1, stride[a])
                        for a in range(rank)
                    )
                    stacked[:, j, :, :m] = x_g[(slice(None), slice(None), slice(n0, n0 + m)) + reads]
                w_tap = w_t[(slice(None), slice(None), slice(None), slice(None)) + t].reshape(groups, og, kc)
                s_mat = stacked.reshape(groups, kc, nb * image)[:, :, : m * image]
                res = product[:, :, : m * image]
                np.matmul(w_tap, s_mat, out=res)
                res = res.reshape((groups, og, m) + out_size)
                if k == 0:
                    acc[...] = res
                else:
                    acc += res
        return out
    # per output position: window (N, G, Cg*prod(k)) against filters (G, Cg*prod(k), Og)
    x_g = x.reshape(n, groups, cg, *size)
    k_all = cg * int(np.prod(kernel))
    filters = w_g.reshape(groups, og, k_all).transpose(0, 2, 1)
    out = np.empty((n, groups, og) + out_size, dtype=dtype)
    for p in _taps(out_size):
        reads = tuple(
            slice(p[a] * stride[a], p[a] * stride[a] + dilation[a] * (kernel[a] - 1) + 1, dilation[a]) for a in range(rank)
        )
        window = x_g[(slice(None),) * 3 + reads].reshape(n, groups, k_all).transpose(1, 0, 2)
        out[(slice(None),) * 3 + p] = (window @ filters).transpose(1, 0, 2)
    return out.reshape((n, out_ch) + out_size)


def _correlate_runs(x, weight, out_hw, dtype, chunk_bytes):
    """``correlate2d`` with stride 1, no dilation and one group: an im2col whose rows are contiguous runs of x.

    With stride 1, tap (i, j) of output row p reads x row p + i, columns q + j. On the "wide"
    grid of Ho rows of W columns (W = x's width, of which the first Wo are outputs), output
    position p*W + q of a plane reads its element at flat offset (p*W + q) + (i*W + j): each
    tap is one contiguous run of a plane, so

        cols[n, (c, i, j), r] = x[n, c].flat[r + i*W + j],    r < L = (Ho - 1)*W + Wo   (zero for r >= L)
        wide[n] = W as (O, Cg*kH*kW) @ cols[n],     out[n, o, p, q] = wide[n, o, p*W + q],  q < Wo

    (the last run reads up to flat offset H*W - 1: inside the plane). The columns q >= Wo
    of the wide grid read wrapped rows and are dropped; a copy of runs is NumPy's fast
    case, unlike a copy of Wo-long strided rows (measured 25-35% faster for 3x3 kernels),
    for (W - Wo)/Wo more GEMM columns (6% at 32x32, k3, p1).
    """
    n, c, h, w = x.shape
    out_ch, cg, kh, kw = weight.shape
    ho, wo = out_hw
    x = np.ascontiguousarray(x, dtype=dtype)
    k_all, run, plane = cg * kh * kw, (ho - 1) * w + wo, ho * w
    w_all = np.ascontiguousarray(weight, dtype=dtype).reshape(out_ch, k_all)
    nb = max(1, min(n, chunk_bytes // max(1, k_all * plane * dtype.itemsize)))
    cols = np.zeros((nb, cg, kh, kw, plane), dtype=dtype)  # the tail r >= L stays zero
    wide = np.empty((nb, out_ch, plane), dtype=dtype)
    out = np.empty((n, out_ch, ho, wo), dtype=dtype)
    bn, bc, bh, bw = x.strides
    for n0 in range(0, n, nb):
        m = min(nb, n - n0)
        cols[:m, ..., :run] = np.ndarray((m, cg, kh, kw, run), dtype, x, n0 * bn, (bn, bc, bh, bw, bw))
        np.matmul(w_all, cols[:m].reshape(m, k_all, plane), out=wide[:m])
        out[n0 : n0 + m] = wide[:m].reshape(m, out_ch, ho, w)[..., :wo]
    return out


def correlate2d(
    x: np.ndarray,
    weight: np.ndarray,
    *,
    stride: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """``correlate`` of rank 2, the forward convolution of deep learning.

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
    runs_bytes = k_all * ho * w * dtype.itemsize
    if dtype == np.float32 and ho * wo >= 256 and groups == 1 and stride == dilation == (1, 1) and runs_bytes <= 4 * chunk_bytes:
        # measured (one thread, same process, interleaved): 11-14% faster than the strided im2col below
        # in float32 at 32x32; 2-6% slower in float64 (twice the GEMM time per extra column), and slower
        # on tiny images (an extra crop copy)
        return _correlate_runs(x, weight, (ho, wo), dtype, chunk_bytes)
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
