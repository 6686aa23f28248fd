"""The named steps the convolution rules are built from: dilate, pad, crop, flip, correlate.

Every array here is NCHW (or, for filters, O x C_in/groups x kH x kW). The
steps do no argument checking: the public rules in ``convolution.py`` validate
once and then read like the derivation.
"""

from __future__ import annotations

import numpy as np


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

    The sum is computed as one matrix product per term that is cheap to slice:
    per filter tap (kH*kW products of output size) when the filter is the
    smaller operand, per output position (Ho*Wo products of filter size) when
    the output is smaller, as it is when a whole gradient map acts as the filter.
    """
    n, c, h, w = x.shape
    out_ch, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho = (h - dh * (kh - 1) - 1) // sh + 1
    wo = (w - dw * (kw - 1) - 1) // sw + 1
    og = out_ch // groups
    w_g = weight.reshape(groups, og, cg, kh, kw)
    if kh * kw <= ho * wo:
        # channels first, so each tap's slice flattens to one (Cg, N*Ho*Wo) matrix per group
        x_g = x.transpose(1, 0, 2, 3).reshape(groups, cg, n, h, w)
        out = np.zeros((groups, og, n * ho * wo), dtype=np.result_type(x, weight))
        for i in range(kh):
            for j in range(kw):
                tap = x_g[:, :, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
                out += w_g[:, :, :, i, j] @ tap.reshape(groups, cg, n * ho * wo)
        return np.ascontiguousarray(out.reshape(out_ch, n, ho, wo).transpose(1, 0, 2, 3))
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
