"""The catalogue of classic backward-pass mistakes, one record per mistake.

Each ``Mistake`` carries a ``backward`` with the contract's ``<op>_backward``
signature that computes the gradients *with that one mistake*, built from
refimpl's named steps (``dilate``, ``pad``, ``crop``, ``flip``, ``correlate``,
``swap_filter_channels``) or, for pooling, from a plain loop over the windows
as a student writes it. Everything else is right, so a mistake differs from the
correct rule only where its own corner is reached (a stride > 1, an exact tie,
padding, ``p`` at exactly 0 ...).

Rules the mistakes share:

* **Shape- and dtype-correct.** A mistake returns arrays of exactly the shapes
  and dtypes of the correct rule, so the verifier must catch it by its *values*,
  never by a crash or a wrong shape. Where the mistake would naturally give a
  wrong shape (a filter transposed, a padded gradient not cropped), it is made
  to fit the way a student makes it fit: a ``reshape`` instead of a transpose, a
  top-left crop.
* **The same argument checking as refimpl.** Every mistaken rule validates its
  call with refimpl's checks first, so a mutant rejects exactly what refimpl
  rejects.

Used by ``oracle.zoo`` (one importable implementation per mistake, to verify
the verifier) and ``oracle.diagnosis`` (which names the mistake an
implementation's wrong gradients match).
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from refimpl.arguments import as_pair, check_grad_output, window_count
from refimpl.convolution import ConvConfig, conv2d_config
from refimpl.correlation import correlate, crop, dilate, flip, pad, swap_filter_channels

#: where refimpl's contract functions live, searched in order (the package first)
_REFIMPL_MODULES = (
    "refimpl", "refimpl.convolution", "refimpl.pooling", "refimpl.dense", "refimpl.activations", "refimpl.losses",
)


def reference(name: str) -> Callable | None:
    """refimpl's function ``name`` (``conv2d``, ``relu_backward`` ...), or None if refimpl has none yet."""
    for module_name in _REFIMPL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    return None


@dataclass(frozen=True)
class Mistake:
    """One classic mistake in the backward rule of one op.

    name         identifier, also the module name of its mutant (``oracle.zoo.<name>``)
    op           the op of the contract whose backward it breaks
    description  one line: what the mistaken rule computes instead of the right one
    backward     ``<op>_backward`` with the mistake: same signature, shapes and dtypes as refimpl's
    """

    name: str
    op: str
    description: str
    backward: Callable

    @property
    def module(self) -> str:
        """The mutant implementing this mistake: refimpl with only this backward replaced."""
        return f"oracle.zoo.{self.name}"


def _mistaken(op: str, scaffold: Callable, name: str, description: str, **knobs) -> Callable:
    """``<op>_backward`` computed by ``scaffold`` with the mistake switched on by ``knobs``."""

    @functools.wraps(scaffold)
    def backward(grad_output, *inputs, **config):
        return scaffold(grad_output, *inputs, **config, **knobs)

    backward.__name__ = backward.__qualname__ = f"{op}_backward"
    backward.__module__ = f"oracle.zoo.{name}"
    backward.__doc__ = f"{op}_backward with a classic mistake ({name}): {description}."
    correct = reference(f"{op}_backward")
    if correct is not None:
        backward.__signature__ = inspect.signature(correct)
    del backward.__wrapped__
    return backward


def _validated(op: str, grad_output, inputs, config) -> None:
    """Let refimpl's correct rule check the call (its result is discarded): the same errors for the same arguments."""
    correct = reference(f"{op}_backward")
    if correct is not None:
        correct(grad_output, *inputs, **config)


def _fit(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``a`` cut or zero-extended at the bottom/right to exactly ``size`` (H, W): how a mistake is made to fit."""
    h, w = size
    out = np.zeros(a.shape[:-2] + (h, w), dtype=a.dtype)
    hh, ww = min(h, a.shape[-2]), min(w, a.shape[-1])
    out[..., :hh, :ww] = a[..., :hh, :ww]
    return out


# =========================================================================== conv2d


def _axes(pair: tuple[int, int], mode: str) -> tuple[int, int]:
    """A stride or dilation as the mistaken rule uses it: ``right``, ``swapped`` (h/w) or ``ignored`` (1)."""
    return {"right": pair, "swapped": (pair[1], pair[0]), "ignored": (1, 1)}[mode]


def _stride1_gradient(grad_output: np.ndarray, cfg: ConvConfig, mode: str) -> np.ndarray:
    """The stride-1 output gradient G1 the rule works from.

    right    dilate(G, s): s - 1 zeros between neighbours, zeros after the last
    dense    G placed as it is (the strided subsampling ignored), zero-extended to the stride-1 size
    swapped  G dilated by (s_w, s_h), fitted to the stride-1 size
    """
    size = cfg.stride1_out_hw
    if mode == "right":
        return dilate(grad_output, cfg.stride, size=size)
    if mode == "dense":
        return _fit(grad_output, size)
    return _fit(dilate(grad_output, _axes(cfg.stride, mode)), size)


def _conv_grad_x(g1, weight, cfg: ConvConfig, *, flipped, crop_at, dilation, filter_channels, grouped, padded_by) -> np.ndarray:
    """dX = crop(correlate(pad(G1, d(k-1)), flip(swap(W)), dilation=d, groups), p), each step switchable."""
    kh, kw = weight.shape[2:]
    d = _axes(cfg.dilation, dilation)
    groups = cfg.groups
    w = weight
    if not grouped:  # every output channel read back into every input channel: the group filter tiled over all groups
        w = np.tile(weight, (1, groups, 1, 1))
        groups = 1
    if filter_channels == "swap":
        w = swap_filter_channels(w, groups)
    else:  # a reshape instead of exchanging the in/out roles: right shape, scrambled filters
        out_ch, cg = w.shape[:2]
        w = np.ascontiguousarray(w).reshape(groups * cg, out_ch // groups, kh, kw)
    if flipped:
        w = flip(w)
    full = (d[0] * (kh - 1), d[1] * (kw - 1))
    (h, wd), (ph, pw) = cfg.in_hw, cfg.padding
    if padded_by == "forward":  # "same" thinking: G padded by the forward's p, the result taken as dX uncropped
        gp = pad(g1, cfg.padding)
        gp = _fit(gp, (max(gp.shape[2], full[0] + 1), max(gp.shape[3], full[1] + 1)))  # at least one window
        return _fit(correlate(gp, w, dilation=d, groups=groups), (h, wd))
    padded = _fit(correlate(pad(g1, full), w, dilation=d, groups=groups), (h + 2 * ph, wd + 2 * pw))
    if crop_at == "both":
        out = crop(padded, cfg.padding)
    elif crop_at == "end":  # the padding "removed" by keeping the top-left H x W: the leading padding stays in
        out = padded[..., :h, :wd]
    else:  # "start": all 2p rows/columns removed from the top/left
        out = padded[..., 2 * ph :, 2 * pw :]
    return np.ascontiguousarray(out)


def _conv_grad_w(g1, x, weight, cfg: ConvConfig, *, dilation, channels, flipped) -> np.ndarray:
    """dW[o, c] = correlate(Xpad[:, c] as a batch, G1[:, o] as the filter, stride=d), per group, each step switchable."""
    out_ch, cg, kh, kw = weight.shape
    og = out_ch // cfg.groups
    d = _axes(cfg.dilation, dilation)
    xp = pad(x, cfg.padding).transpose(1, 0, 2, 3)
    gt = g1.transpose(1, 0, 2, 3)
    per_group = []
    for x_grp, g_grp in zip(np.split(xp, cfg.groups), np.split(gt, cfg.groups)):
        r = _fit(correlate(x_grp, np.ascontiguousarray(g_grp), stride=d), (kh, kw))  # (Cg, Og, kh, kw)
        if channels == "transpose":
            r = r.transpose(1, 0, 2, 3)
        else:  # a reshape where the in/out channel axes had to be exchanged
            r = np.ascontiguousarray(r).reshape(og, cg, kh, kw)
        per_group.append(flip(r) if flipped else r)
    return np.ascontiguousarray(np.concatenate(per_group, axis=0))


def conv2d_scaffold(
    grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
    flipped=True, stride_x="right", stride_w="right", crop_at="both", dilation_x="right", dilation_w="right",
    bias_reduce="sum", weight_channels="transpose", filter_channels="swap", grouped_x=True, grad_x_padding="full",
    weight_flipped=False,
):
    """conv2d_backward from refimpl's steps, each of which a mistake can get wrong; the defaults are the right rule."""
    cfg = conv2d_config(x, weight, bias, stride, padding, dilation, groups)
    check_grad_output(grad_output, (x.shape[0], weight.shape[0]) + cfg.out_hw, cfg.dtype)
    grad_x = _conv_grad_x(
        _stride1_gradient(grad_output, cfg, stride_x), weight, cfg,
        flipped=flipped, crop_at=crop_at, dilation=dilation_x, filter_channels=filter_channels, grouped=grouped_x,
        padded_by=grad_x_padding,
    )
    grad_weight = _conv_grad_w(
        _stride1_gradient(grad_output, cfg, stride_w), x, weight, cfg,
        dilation=dilation_w, channels=weight_channels, flipped=weight_flipped,
    )
    if bias is None:
        grad_bias = None
    elif bias_reduce == "sum":
        grad_bias = grad_output.sum(axis=(0, 2, 3))
    else:
        grad_bias = grad_output.mean(axis=(0, 2, 3))
    return grad_x, grad_weight, grad_bias


# =========================================================================== pooling


def _batched(a: np.ndarray) -> np.ndarray:
    return a[np.newaxis] if a.ndim == 3 else a


def _pool_geometry(kernel_size, stride, padding, dilation):
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    return (
        kernel,
        kernel if stride is None else as_pair(stride, "stride", minimum=1),
        as_pair(padding, "padding", minimum=0),
        as_pair(dilation, "dilation", minimum=1),
    )


def max_pool2d_scaffold(
    grad_output, x, *, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
    tie="first", accumulate=True, padding_value=None, dilation_used="right", ceil_windows=True, stride_used="right",
):
    """max_pool2d_backward as a loop over the windows; the defaults are the right rule (torch's).

    tie            "first" maximum in row-major window order (right), "last", or "all" tied maxima
    accumulate     overlapping windows add their gradients (right) or overwrite (``=``)
    padding_value  None: padding is never a candidate (right); a number: padding competes with that value
    dilation_used  "right" or "ignored" (taps at i instead of i*d)
    stride_used    "right" or "ignored" (window p starting at p - pad instead of p*s - pad)
    ceil_windows   whether the windows ``ceil_mode`` adds receive their gradient
    """
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    _validated("max_pool2d", grad_output, [x], config)
    (kh, kw), (sh, sw), (ph, pw), d = _pool_geometry(kernel_size, stride, padding, dilation)
    dh, dw = _axes(d, dilation_used)
    floor_h = window_count(x.shape[-2], kh, sh, ph, d[0]) if not ceil_windows else None
    floor_w = window_count(x.shape[-1], kw, sw, pw, d[1]) if not ceil_windows else None
    sh, sw = _axes((sh, sw), stride_used)
    x4, g4 = _batched(x), _batched(grad_output)
    n, c, h, w = x4.shape
    ho, wo = g4.shape[2:]
    grad_x = np.zeros_like(x4)
    for p in range(ho if floor_h is None else min(ho, floor_h)):
        for q in range(wo if floor_w is None else min(wo, floor_w)):
            taps = [(p * sh - ph + i * dh, q * sw - pw + j * dw) for i in range(kh) for j in range(kw)]
            inside = [0 <= r < h and 0 <= s < w for r, s in taps]
            if padding_value is None:
                taps = [t for t, ok in zip(taps, inside) if ok]
                inside = [True] * len(taps)
            if not taps:
                continue
            values = np.stack(
                [x4[:, :, r, s] if ok else np.full((n, c), padding_value, x4.dtype) for (r, s), ok in zip(taps, inside)],
                axis=-1,
            )
            g = g4[:, :, p, q]
            if tie == "all":
                chosen = values == values.max(axis=-1, keepdims=True)
            else:
                best = np.full((n, c), -np.inf, dtype=x4.dtype)
                winner = np.zeros((n, c), dtype=np.intp)
                for t in range(len(taps)):
                    v = values[..., t]
                    replaces = (v > best) if tie == "first" else (v >= best)
                    replaces |= np.isnan(v)
                    winner = np.where(replaces, t, winner)
                    best = np.where(replaces, v, best)
                chosen = winner[..., np.newaxis] == np.arange(len(taps))
            for t, ((r, s), ok) in enumerate(zip(taps, inside)):
                if not ok:
                    continue
                here = chosen[..., t]
                if accumulate:
                    grad_x[:, :, r, s] += np.where(here, g, x4.dtype.type(0))
                else:
                    grad_x[:, :, r, s] = np.where(here, g, grad_x[:, :, r, s])
    return grad_x[0] if x.ndim == 3 else grad_x


def avg_pool2d_scaffold(
    grad_output, x, *, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
    divisor_override=None,
    divisor="right", use_override=True, accumulate=True, padding_offset=True, stride_used="right",
):
    """avg_pool2d_backward as a loop over the windows; the defaults are the right rule (torch's).

    divisor         "right"; "include_pad_always" (count_include_pad ignored); "real_elements" (padding never
                    counted, whatever count_include_pad); "kernel_area" (kH*kW where count_include_pad
                    counts the window clipped to input + padding)
    use_override    whether divisor_override replaces the divisor
    accumulate      overlapping windows add their shares (right) or overwrite
    padding_offset  windows start at p*s - pad (right) or at p*s (the padding offset forgotten)
    stride_used     "right" or "ignored" (window p starting at p - pad instead of p*s - pad)
    """
    config = dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad, divisor_override=divisor_override)
    _validated("avg_pool2d", grad_output, [x], config)
    (kh, kw), (sh, sw), (ph, pw), _ = _pool_geometry(kernel_size, stride, padding, 1)
    sh, sw = _axes((sh, sw), stride_used)
    x4, g4 = _batched(x), _batched(grad_output)
    h, w = x4.shape[2:]
    ho, wo = g4.shape[2:]
    grad_x = np.zeros_like(x4)
    for p in range(ho):
        for q in range(wo):
            h0, w0 = p * sh - ph, q * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            r0, r1, c0, c1 = max(h0, 0), min(h1, h), max(w0, 0), min(w1, w)
            if divisor_override is not None and use_override:
                div = divisor_override
            elif (count_include_pad and divisor != "real_elements") or divisor == "include_pad_always":
                div = kh * kw if divisor == "kernel_area" else (h1 - h0) * (w1 - w0)
            else:
                div = (r1 - r0) * (c1 - c0)
            share = (g4[:, :, p, q] / x4.dtype.type(div))[:, :, np.newaxis, np.newaxis]
            if not padding_offset:
                r0, r1 = p * sh, min(p * sh + kh, h)
                c0, c1 = q * sw, min(q * sw + kw, w)
            if r1 <= r0 or c1 <= c0:
                continue
            if accumulate:
                grad_x[:, :, r0:r1, c0:c1] += share
            else:
                grad_x[:, :, r0:r1, c0:c1] = share
    return grad_x[0] if x.ndim == 3 else grad_x


# =========================================================================== linear


def _linear_2d(grad_output, x, weight):
    out_features, in_features = weight.shape
    return grad_output.reshape(-1, out_features), x.reshape(-1, in_features)


def linear_scaffold(grad_output, x, weight, bias=None, *, grad_weight="right", grad_bias="right"):
    """linear_backward; the defaults are the right rule.

    grad_weight  "right" (G^T X), "transposed" ((X^T G) reshaped to W's shape), "batch_mean" (G^T X / N)
    grad_bias    "right" (sum of G over the batch), "mean", "all_axes" (sum of all of G, broadcast)
    """
    _validated("linear", grad_output, [x, weight, bias], {})
    g2, x2 = _linear_2d(grad_output, x, weight)
    grad_x = grad_output @ weight
    if grad_weight == "right":
        gw = g2.T @ x2
    elif grad_weight == "transposed":
        gw = np.ascontiguousarray(x2.T @ g2).reshape(weight.shape)
    else:
        gw = g2.T @ x2 / x.dtype.type(max(g2.shape[0], 1))
    if bias is None:
        gb = None
    elif grad_bias == "right":
        gb = g2.sum(axis=0)
    elif grad_bias == "mean":
        gb = g2.mean(axis=0) if g2.shape[0] else g2.sum(axis=0)
    else:
        gb = np.full(bias.shape, g2.sum(), dtype=bias.dtype)
    return grad_x, gw, gb


# =========================================================================== activations and flatten


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def relu_scaffold(grad_output, x, *, rule="right"):
    """relu_backward: "right" g * (x > 0); "zero_is_one" g * (x >= 0); "times_output" g * relu(x); "gradient_sign" relu(g)."""
    _validated("relu", grad_output, [x], {})
    zero = x.dtype.type(0)
    if rule == "right":
        return np.where(x <= 0, zero, grad_output)
    if rule == "zero_is_one":
        return np.where(x < 0, zero, grad_output)
    if rule == "times_output":
        return grad_output * np.where(x < 0, zero, x)
    return np.where(grad_output > 0, grad_output, zero)


def sigmoid_scaffold(grad_output, x, *, rule="right"):
    """sigmoid_backward: "right" g * (1 - s) * s; "s_only" g * s; "from_x" g * x * (1 - x)."""
    _validated("sigmoid", grad_output, [x], {})
    one = x.dtype.type(1)
    if rule == "from_x":
        return grad_output * x * (one - x)
    s = _sigmoid(x)
    if rule == "s_only":
        return grad_output * s
    return grad_output * (one - s) * s


def flatten_scaffold(grad_output, x, *, order="right"):
    """flatten_backward: "right" g.reshape(x.shape); "column_major" (order='F'); "transposed" g.T.reshape(x.shape)."""
    _validated("flatten", grad_output, [x], {})
    if order == "column_major":
        return grad_output.reshape(x.shape, order="F").copy()
    if order == "transposed":
        return np.ascontiguousarray(grad_output.T).reshape(x.shape)
    return grad_output.reshape(x.shape).copy()


# =========================================================================== losses


#: ATen's clamp of p(1 - p) in the BCE backward: a float32 constant (see refimpl.losses)
_EPSILON = np.float32(1e-12)


def binary_cross_entropy_scaffold(grad_output, input, target, *, reduction="mean", rule="right", divide="right"):
    """binary_cross_entropy_backward; the defaults are the right rule.

    rule    "right" g (p - y) / max(p(1-p), eps); "no_clamp" g (p - y) / (p(1-p)); "sign" g (y - p) / max(...);
            "collapsed" g (p - y) (the gradient w.r.t. the logits, used for the probabilities)
    divide  by the element count: "right" (for 'mean'), "never", "always" (also for 'sum'/'none')
    """
    _validated("binary_cross_entropy", grad_output, [input, target], {"reduction": reduction})
    dt = input.dtype.type
    with np.errstate(divide="ignore", invalid="ignore"):
        if rule == "collapsed":
            grad = grad_output * (input - target)
        else:
            denominator = (dt(1) - input) * input
            if rule != "no_clamp":
                denominator = np.maximum(denominator, dt(_EPSILON))
            difference = (target - input) if rule == "sign" else (input - target)
            grad = grad_output * difference / denominator
    if (divide == "right" and reduction == "mean") or divide == "always":
        grad = grad / dt(input.size)
    return np.asarray(grad, dtype=input.dtype)


def binary_cross_entropy_with_logits_scaffold(grad_output, input, target, *, reduction="mean", rule="right", divide="right"):
    """binary_cross_entropy_with_logits_backward; the defaults are the right rule, g (sigmoid(z) - y).

    rule    "right"; "no_sigmoid" g (z - y); "naive" the chain rule through a naive 1/(1+exp(-z)) and the
            unclamped probability form (NaN once sigmoid saturates); "clamped" the chain rule through the
            clamped probability form (wrong where p(1-p) < 1e-12, pytorch#103316)
    divide  by the element count: "right" (for 'mean') or "never"
    """
    _validated("binary_cross_entropy_with_logits", grad_output, [input, target], {"reduction": reduction})
    dt = input.dtype.type
    one = dt(1)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if rule == "no_sigmoid":
            grad = grad_output * (input - target)
        elif rule == "naive":
            p = one / (one + np.exp(-input))
            d_p = -(target / p - (one - target) / (one - p))
            grad = grad_output * d_p * (p * (one - p))
        elif rule == "clamped":
            p = _sigmoid(input)
            slope = (one - p) * p
            grad = grad_output * (p - target) / np.maximum(slope, dt(_EPSILON)) * slope
        else:
            grad = grad_output * (_sigmoid(input) - target)
    if divide == "right" and reduction == "mean":
        grad = grad / dt(input.size)
    return np.asarray(grad, dtype=input.dtype)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS: dict[str, Callable] = {
    "conv2d": conv2d_scaffold,
    "max_pool2d": max_pool2d_scaffold,
    "avg_pool2d": avg_pool2d_scaffold,
    "linear": linear_scaffold,
    "relu": relu_scaffold,
    "sigmoid": sigmoid_scaffold,
    "flatten": flatten_scaffold,
    "binary_cross_entropy": binary_cross_entropy_scaffold,
    "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits_scaffold,
}


# =========================================================================== the catalogue

_CATALOGUE: list[tuple[str, str, str, dict]] = [
    # ----------------------------------------------------------------- conv2d
    ("conv_unflipped_filter", "conv2d",
     "the filter not flipped for grad_x: G correlated with W itself instead of the 180-degree rotated flip(W)",
     dict(flipped=False)),
    ("conv_grad_x_stride_not_dilated", "conv2d",
     "grad_x from the output gradient not dilated by the stride: G used densely, as if the stride were 1 (strided subsampling ignored)",
     dict(stride_x="dense")),
    ("conv_grad_weight_stride_not_dilated", "conv2d",
     "grad_weight from the output gradient not dilated by the stride: G correlated with X densely, as if the stride were 1",
     dict(stride_w="dense")),
    ("conv_padding_cropped_at_end", "conv2d",
     "the padding not cropped from grad_x, just cut off at the end: the top-left H x W of the padded gradient, leading padding kept",
     dict(crop_at="end")),
    ("conv_padding_cropped_at_start", "conv2d",
     "the padding cropped at the wrong offset: all 2p rows/columns removed from the top/left of grad_x instead of p from each side",
     dict(crop_at="start")),
    ("conv_stride_axes_swapped", "conv2d",
     "the stride used on the wrong axes in the backward: G dilated by (s_w, s_h) instead of (s_h, s_w)",
     dict(stride_x="swapped", stride_w="swapped")),
    ("conv_dilation_axes_swapped", "conv2d",
     "the dilation used on the wrong axes in the backward: taps at (i*d_w, j*d_h) instead of (i*d_h, j*d_w)",
     dict(dilation_x="swapped", dilation_w="swapped")),
    ("conv_bias_grad_mean", "conv2d",
     "the bias gradient averaged over N, H, W instead of summed",
     dict(bias_reduce="mean")),
    ("conv_grad_weight_channels_transposed", "conv2d",
     "grad_weight with in/out channels transposed within each group: the (C_in/g, C_out/g) result reshaped to (C_out/g, C_in/g) instead of transposed",
     dict(weight_channels="reshape")),
    ("conv_grad_x_channels_not_swapped", "conv2d",
     "grad_x with the filter's in/out channel roles not exchanged: W reshaped to (C_in, C_out/g) instead of transposed within each group",
     dict(filter_channels="reshape")),
    ("conv_grad_x_groups_ignored", "conv2d",
     "grad_x ignoring groups: every output channel's gradient sent back to every input channel through the group filter",
     dict(grouped_x=False)),
    ("conv_grad_x_dilation_ignored", "conv2d",
     "grad_x ignoring the dilation: the flipped filter applied undilated (taps at i instead of i*d)",
     dict(dilation_x="ignored")),
    ("conv_grad_weight_dilation_ignored", "conv2d",
     "grad_weight ignoring the dilation: the filter taps read at offsets i instead of i*d",
     dict(dilation_w="ignored")),
    ("conv_grad_x_padded_by_p", "conv2d",
     "grad_x as a 'same' convolution: G padded by the forward's p instead of d(k-1), nothing cropped (right only when p = d(k-1)/2)",
     dict(grad_x_padding="forward")),
    ("conv_grad_weight_flipped", "conv2d",
     "grad_weight rotated by 180 degrees: X and G convolved where they must be correlated",
     dict(weight_flipped=True)),
    # ----------------------------------------------------------------- max_pool2d
    ("maxpool_ties_all", "max_pool2d",
     "every tied maximum of a window receives the gradient instead of only the first (torch routes it to one element)",
     dict(tie="all")),
    ("maxpool_last_max", "max_pool2d",
     "the last maximum of a tied window receives the gradient instead of the first (>= instead of > in the scan)",
     dict(tie="last")),
    ("maxpool_overlap_overwrite", "max_pool2d",
     "overlapping windows overwrite the gradient of a shared arg-max (grad_x[argmax] = g) instead of accumulating (+=)",
     dict(accumulate=False)),
    ("maxpool_zero_padding", "max_pool2d",
     "padding taken as zeros instead of -inf: in a padded window whose inputs are all negative, the padding wins and no input gets the gradient",
     dict(padding_value=0.0)),
    ("maxpool_dilation_ignored", "max_pool2d",
     "the backward ignores the dilation: each window's arg-max searched among adjacent elements (taps at i instead of i*d)",
     dict(dilation_used="ignored")),
    ("maxpool_stride_ignored", "max_pool2d",
     "the backward ignores the stride: window (p, q) taken at (p, q) - pad instead of (p*s, q*s) - pad when routing the gradient",
     dict(stride_used="ignored")),
    ("maxpool_ceil_window_ignored", "max_pool2d",
     "the windows ceil_mode adds at the end get no gradient: the backward loops over the floor-mode windows only",
     dict(ceil_windows=False)),
    # ----------------------------------------------------------------- avg_pool2d
    ("avgpool_count_include_pad_ignored", "avg_pool2d",
     "count_include_pad ignored: padded windows always divided by their size including padding, even with count_include_pad=False",
     dict(divisor="include_pad_always")),
    ("avgpool_padding_never_counted", "avg_pool2d",
     "padding never counted in the divisor: the number of real elements used even with count_include_pad=True (the default)",
     dict(divisor="real_elements")),
    ("avgpool_ceil_full_kernel_divisor", "avg_pool2d",
     "a ceil_mode window overhanging the padding divided by the full kernel area kH*kW instead of its clipped size",
     dict(divisor="kernel_area")),
    ("avgpool_divisor_override_ignored", "avg_pool2d",
     "divisor_override ignored in the backward: each window's share divided by the window size instead",
     dict(use_override=False)),
    ("avgpool_overlap_overwrite", "avg_pool2d",
     "overlapping windows overwrite each other's share (grad_x[window] = g / n) instead of accumulating (+=)",
     dict(accumulate=False)),
    ("avgpool_stride_ignored", "avg_pool2d",
     "the backward ignores the stride: window (p, q) spread over rows from p - pad instead of p*s - pad",
     dict(stride_used="ignored")),
    ("avgpool_padding_offset_ignored", "avg_pool2d",
     "the padding offset forgotten in the backward: window (p, q) spread over rows from p*s instead of p*s - pad",
     dict(padding_offset=False)),
    # ----------------------------------------------------------------- linear
    ("linear_grad_weight_transposed", "linear",
     "grad_W transposed: X^T G (in x out) reshaped to W's (out x in) shape instead of G^T X",
     dict(grad_weight="transposed")),
    ("linear_grad_weight_batch_mean", "linear",
     "grad_W averaged over the batch (G^T X / N) instead of summed: the loss's 1/N applied a second time",
     dict(grad_weight="batch_mean")),
    ("linear_bias_grad_mean", "linear",
     "the bias gradient averaged over the batch instead of summed",
     dict(grad_bias="mean")),
    ("linear_bias_grad_all_axes", "linear",
     "the bias gradient summed over the wrong axes: the sum of all of G, broadcast to every output, instead of the sum over the batch",
     dict(grad_bias="all_axes")),
    # ----------------------------------------------------------------- relu
    ("relu_grad_at_zero_one", "relu",
     "relu'(0) = 1: the gradient passed where x >= 0 instead of x > 0",
     dict(rule="zero_is_one")),
    ("relu_grad_times_output", "relu",
     "the output gradient multiplied by the activation relu(x) instead of its derivative (x > 0)",
     dict(rule="times_output")),
    ("relu_mask_from_gradient", "relu",
     "the mask taken from the output gradient instead of the input: relu(g) instead of g * (x > 0)",
     dict(rule="gradient_sign")),
    # ----------------------------------------------------------------- sigmoid
    ("sigmoid_derivative_s", "sigmoid",
     "the sigmoid derivative taken as s instead of s(1 - s)",
     dict(rule="s_only")),
    ("sigmoid_derivative_from_x", "sigmoid",
     "the sigmoid derivative computed from the input as x(1 - x) instead of from s = sigmoid(x) as s(1 - s)",
     dict(rule="from_x")),
    # ----------------------------------------------------------------- flatten
    ("flatten_column_major", "flatten",
     "flatten undone in the wrong order: the gradient reshaped column-major (order='F') instead of row-major",
     dict(order="column_major")),
    ("flatten_transposed", "flatten",
     "flatten undone through a transpose: G.T reshaped to x's shape instead of G",
     dict(order="transposed")),
    # ----------------------------------------------------------------- binary_cross_entropy
    ("bce_mean_not_divided", "binary_cross_entropy",
     "reduction='mean' not divided by the element count in the backward",
     dict(divide="never")),
    ("bce_sum_divided", "binary_cross_entropy",
     "the backward always divides by the element count, also for reduction='sum' and 'none'",
     dict(divide="always")),
    ("bce_no_epsilon_clamp", "binary_cross_entropy",
     "the backward without ATen's clamp max(p(1-p), 1e-12): inf or NaN at p = 0 or 1",
     dict(rule="no_clamp")),
    ("bce_grad_sign_flipped", "binary_cross_entropy",
     "the sign of the gradient flipped: (y - p) / (p(1-p)) instead of (p - y) / (p(1-p))",
     dict(rule="sign")),
    ("bce_collapsed_gradient", "binary_cross_entropy",
     "the collapsed sigmoid+BCE gradient (p - y) used for the probabilities, without the 1/(p(1-p)) factor",
     dict(rule="collapsed")),
    # ----------------------------------------------------------------- binary_cross_entropy_with_logits
    ("bce_logits_naive", "binary_cross_entropy_with_logits",
     "the logits form by the naive chain rule: 1/(1+exp(-z)) and the unclamped probability derivative, NaN once sigmoid saturates (|z| ~ 40 to 1e4)",
     dict(rule="naive")),
    ("bce_logits_clamped_chain", "binary_cross_entropy_with_logits",
     "the logits form through the clamped probability backward: far too small where p(1-p) < 1e-12 (|z| > ~28, pytorch#103316)",
     dict(rule="clamped")),
    ("bce_logits_sigmoid_missing", "binary_cross_entropy_with_logits",
     "the sigmoid left out of the logits gradient: z - y instead of sigmoid(z) - y",
     dict(rule="no_sigmoid")),
    ("bce_logits_mean_not_divided", "binary_cross_entropy_with_logits",
     "reduction='mean' not divided by the element count in the backward",
     dict(divide="never")),
]

MISTAKES: dict[str, Mistake] = {
    name: Mistake(name, op, description, _mistaken(op, SCAFFOLDS[op], name, description, **knobs))
    for name, op, description, knobs in _CATALOGUE
}
"""Every catalogued mistake, by name."""

assert len(MISTAKES) == len(_CATALOGUE), "duplicate mistake names"


def for_op(op: str) -> list[Mistake]:
    """The catalogued mistakes of ``op``, in catalogue order."""
    return [m for m in MISTAKES.values() if m.op == op]
