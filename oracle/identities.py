"""The derivation's identities, checked on any implementation of the contract.

conv1d, conv2d, conv3d (one rule for any spatial rank)
  * dL/db = sum of G over N and the spatial axes
  * a stride-s backward equals the stride-1 backward of G dilated by s
  * dL/dW = correlate(Xpad, dilate(G, s)) at offsets i*d       (the correlation done by torch's forward conv)
  * dL/dX = crop(correlate(pad(dilate(G, s), d(k-1)), flip(W)), p)
conv_transpose2d (the adjoint of conv2d on an input of its output's size)
  * dL/dX = conv2d(G, W, s, p, d, groups)[:, :, :H, :W]        (its backward is conv2d's forward)
  * dL/dW = conv2d's grad_weight rule with x and G exchanged: correlate(Gpad, dilate(x, s)) at offsets i*d
  * dL/db = sum of G over N, Ho, Wo
linear       dL/db = sum of G over the batch
max_pool2d   each output gradient lands on exactly one input: sum(dL/dX) = sum(G)
flatten      dL/dX = reshape(G, X.shape)
binary_cross_entropy
             sigmoid_backward(bce_backward(1, sigmoid(z), y)) = (sigmoid(z) - y) / N   (the A2 - Y collapse)
tanh         dL/dX = G (1 - t^2) with t = tanh(X) from the implementation's own forward
leaky_relu   dL/dX = relu_backward(G, X) + slope (G - relu_backward(G, X));
             with negative_slope = 0 it is relu_backward(G, X)
gelu         gelu(x) - gelu(-x) = x in both forms (Phi(x) + Phi(-x) = 1, tanh is odd):
             gelu_backward(G, X) + gelu_backward(G, -X) = G
adaptive_avg_pool2d
             each output's gradient is spread over its bin with weights summing to 1:
             sum of dL/dX over H, W = sum of G over Ho, Wo (per plane)
softmax      dL/dX sums to 0 along dim (the softmax's rows sum to 1 whatever x is)
log_softmax  dL/dX = G - softmax(X) * sum(G) along dim, which sums to 0 along dim
cross_entropy
             dL/dZ = (softmax(Z) - onehot(target)) * g_n (g / N for 'mean'), which sums to 0 over each row's classes
mse_loss     dL/dX = 2 (X - Y) G (/ numel for 'mean')
batch_norm, layer_norm (docs/normalization-derivation.md; per normalized group A, over the parameter axes P)
  * sum_A dL/dX = 0                                  (the output does not change under x -> x + c on a group)
  * sum_A xhat dL/dX = eps s^3 sum_A gy xhat         (s = 1/sqrt(var + eps), gy = G gamma): orthogonal to xhat
                                                     only as eps -> 0; for finite eps this is the exact value
  * dL/dgamma = sum_P G xhat,  dL/dbeta = sum_P G
"""

from __future__ import annotations

import numpy as np

from oracle import course, magnitudes, tolerances, torch_oracle
from oracle.case import Case
from oracle.checks import _checked_result, _guarded, _judged, _missing, backward_call, fd_case, run_backward
from oracle.implementation import Implementation, call, submit
from oracle.ops import SPECS, OpSpec
from oracle.tolerances import Tolerance
from oracle.verdict import FAIL, PASS, Verdict, locate
from refimpl.correlation import crop, dilate, flip, pad, swap_filter_channels


def _verdict(spec: OpSpec, case: Case, comparisons: list[tuple[str, np.ndarray, np.ndarray, Tolerance]]) -> Verdict:
    """PASS; FAIL at the first (identity, got, expected, tolerance) whose arrays differ beyond the FAIL bound;
    else imprecise at the worst one beyond rounding (``oracle.tolerances``: each element by its own terms, the
    imprecise band, the normwise bound)."""
    worst, broken = None, ""
    for identity, got, expected, tolerance in comparisons:
        mismatch = locate(identity, np.asarray(got), np.asarray(expected), tolerance)
        if mismatch and not mismatch.imprecise:
            return Verdict(spec.name, "identities", FAIL, case, f"identity broken: {identity}", mismatch)
        if mismatch and (worst is None or mismatch.digits_lost > worst.digits_lost):
            worst, broken = mismatch, f"identity holds beyond rounding only: {identity}"
    return _judged(spec, "identities", case, worst, message=broken)


def _sum_of(case: Case, fan_in: int, expected: np.ndarray, terms: np.ndarray) -> Tolerance:
    """A sum of ``fan_in`` terms whose magnitudes add up to ``terms`` (elementwise), against its exact value."""
    return tolerances.for_sum(case.dtype, fan_in, expected, scale=terms)


def _identity(*needs: str):
    """Make ``fn`` an identity check: guarded like every check, not implemented without the backward (and ``needs``)."""

    def wrap(fn):
        def identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
            return _missing(impl, spec, "identities", case, spec.backward_name, *needs) or fn(impl, spec, case)

        identities.__doc__ = fn.__doc__
        return _guarded(identities)

    return wrap


def _torch_correlate(x: np.ndarray, w: np.ndarray, *, stride=None, dilation=None, groups=1) -> np.ndarray:
    """torch's forward convolution of the filter's rank (conv1d/2d/3d), unpadded, in float64."""
    torch = torch_oracle._torch()
    rank = w.ndim - 2
    conv = getattr(torch.nn.functional, f"conv{rank}d")
    out = conv(
        torch.tensor(np.array(x, np.float64)), torch.tensor(np.array(w, np.float64)),
        stride=stride or (1,) * rank, dilation=dilation or (1,) * rank, groups=groups,
    )
    return out.numpy()


def _grad_weight_by_correlation(xp: np.ndarray, g1: np.ndarray, dilation, groups: int) -> np.ndarray:
    """dW per group, by torch's forward conv: the padded input's channels as the batch, the (stride-1) output
    gradient map as the filter, stride ``dilation``: ``dW[o, c] = correlate(Xpad[:, c], G1[:, o], stride=d)``."""
    xp_t = xp.astype(np.float64).swapaxes(0, 1)
    g1_t = g1.astype(np.float64).swapaxes(0, 1)
    cg, og = xp_t.shape[0] // groups, g1_t.shape[0] // groups
    return np.concatenate(
        [
            _torch_correlate(xp_t[k * cg : (k + 1) * cg], g1_t[k * og : (k + 1) * og], stride=dilation).swapaxes(0, 1)
            for k in range(groups)
        ]
    )


def _tolerances(spec: OpSpec, case: Case, a: dict, fan_in1: int):
    """``tolerance(name, expected, pair=False)``: the case's term scales (an identity's other side adds zeros
    only) for a result of ``spec.fan_in`` terms, or, with ``pair``, for two results of up to ``fan_in1`` terms."""
    scales = magnitudes.backward(spec.name, a, case.config)
    normwise = magnitudes.normwise(spec.name, a, case.config)
    fan_in = spec.fan_in(case)

    def tolerance(name: str, expected: np.ndarray, pair: bool = False) -> Tolerance:
        scale, naive = scales.get(name) or (None, None)
        if scale is None:  # magnitudes could not run: the neighbour rule
            return tolerances.for_sum(case.dtype, fan_in1, expected)
        make = tolerances.for_pair if pair else tolerances.for_sum
        return make(case.dtype, fan_in1 if pair else fan_in, expected, scale=scale, naive_scale=naive, normwise=normwise.get(name))

    return tolerance


def _bias_identity(case: Case, fan_in: int, g: np.ndarray, gb) -> list:
    """``grad_bias == sum of G over every axis but 1`` (nothing to compare without a bias)."""
    if gb is None:
        return []
    g64 = g.astype(np.float64)
    axes = (0,) + tuple(range(2, g.ndim))
    total = g64.sum(axis=axes)
    return [("grad_bias == sum of G over every axis but the channels", gb, total,
             _sum_of(case, fan_in, total, np.abs(g64).sum(axis=axes)))]


@_identity()
def conv_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """conv1d, conv2d, conv3d: the stride identity, grad_weight and grad_x by torch's forward correlation, grad_bias."""
    a = case.arrays()
    x, w, g = a["x"], a["weight"], a["grad_output"]
    cfg = case.config
    s, p, d, groups = cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"]
    kernel = w.shape[2:]
    rank = len(kernel)
    stride1 = tuple(x.shape[2 + i] + 2 * p[i] - d[i] * (kernel[i] - 1) for i in range(rank))
    g1 = dilate(g, s, size=stride1)
    # both backwards in one request, run by the worker while torch computes the correlations below
    running = submit(impl, [backward_call(spec, g, a, case),
                            backward_call(spec, g1, a, case.with_(config={**cfg, "stride": (1,) * rank}))])
    fan_in = spec.fan_in(case)
    fan_in1 = max(fan_in, x.shape[0] * int(np.prod(stride1)))  # the stride-1 backward's sums
    # every result below has the case's term scales: the dilated G adds zeros only
    tolerance = _tolerances(spec, case, a, fan_in1)
    gw_corr = _grad_weight_by_correlation(pad(x, p), g1, d, groups)
    full = tuple(d[i] * (kernel[i] - 1) for i in range(rank))
    gx_corr = crop(_torch_correlate(pad(g1, full), flip(swap_filter_channels(w, groups)), dilation=d, groups=groups), p)
    gx, gw, gb = running.result(0)
    gx1, gw1, _ = running.result(1)
    comparisons = [
        ("stride-s grad_x == stride-1 grad_x of dilate(G, s)", gx, gx1, tolerance("x", gx1, pair=True)),
        ("stride-s grad_weight == stride-1 grad_weight of dilate(G, s)", gw, gw1, tolerance("weight", gw1, pair=True)),
        ("grad_weight == correlate(pad(X), dilate(G, s)) at offsets i*d", gw, gw_corr, tolerance("weight", gw_corr)),
        ("grad_x == crop(correlate(pad(dilate(G, s), d(k-1)), flip(W)), p)", gx, gx_corr, tolerance("x", gx_corr)),
    ]
    return _verdict(spec, case, comparisons + _bias_identity(case, fan_in, g, gb))


@_identity()
def conv_transpose2d_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    """The derivation's symmetry: the transposed convolution's backward is conv2d's forward (grad_x) and conv2d's
    grad_weight rule with x and G exchanged (computed here by torch's forward conv2d, in float64); grad_bias."""
    a = case.arrays()
    x, w, g = a["x"], a["weight"], a["grad_output"]
    cfg = case.config
    s, p, d, groups = cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"]
    running = submit(impl, [backward_call(spec, g, a, case)])
    h, wd = x.shape[2:]
    kernel = w.shape[2:]
    # conv2d's stride-1 output size on the transposed output (Ho, Wo): (H - 1)*s + op + 1 per axis
    stride1 = tuple(g.shape[2 + i] + 2 * p[i] - d[i] * (kernel[i] - 1) for i in (0, 1))
    gx_conv = _torch_correlate(pad(g, p), w, stride=s, dilation=d, groups=groups)[:, :, :h, :wd]
    gw_corr = _grad_weight_by_correlation(pad(g, p), dilate(x, s, size=stride1), d, groups)
    fan_in = spec.fan_in(case)
    tolerance = _tolerances(spec, case, a, fan_in)
    gx, gw, gb = running.result(0)
    comparisons = [
        ("grad_x == conv2d(G, W, stride, padding, dilation, groups)[:, :, :H, :W] (conv2d's forward)", gx, gx_conv, tolerance("x", gx_conv)),
        ("grad_weight == correlate(pad(G), dilate(x, s)) at offsets i*d (conv2d's grad_weight, x and G exchanged)", gw, gw_corr,
         tolerance("weight", gw_corr)),
    ]
    return _verdict(spec, case, comparisons + _bias_identity(case, fan_in, g, gb))


@_identity()
def linear_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    if a["bias"] is None:
        return Verdict(spec.name, "identities", PASS, case, "no bias: nothing to check")
    _, _, gb = run_backward(impl, spec, a["grad_output"], a, case)
    g = a["grad_output"].astype(np.float64)
    return _verdict(spec, case, [("grad_bias == sum of G over the batch", gb, g.sum(0), _sum_of(case, spec.fan_in(case), g.sum(0), np.abs(g).sum(0)))])


@_identity()
def max_pool2d_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    if np.isnan(a["x"]).any():
        return Verdict(spec.name, "identities", PASS, case, "NaN input: the routing identity does not apply")
    gx = run_backward(impl, spec, a["grad_output"], a, case)
    g = a["grad_output"].astype(np.float64)
    total = np.array(np.asarray(gx, np.float64).sum())
    verdict = None
    for rule, expected, terms in course.routed_sums(a["x"], a["grad_output"], case):  # the run's tie conventions
        identity = ("sum(grad_x) == sum(G): each output's gradient goes to exactly one input" if rule == "first" else
                    "sum(grad_x) == sum over windows of G times the window's number of tied maxima (the course's ties)")
        # every tied maximum of a window adds its G: at most prod(kernel) terms per output
        fan_in = g.size + 1 if rule == "first" else g.size * int(np.prod(case.config["kernel_size"])) + 1
        verdict = _verdict(spec, case, [(identity, total, np.array(expected),
                                         _sum_of(case, fan_in, np.array(expected), np.array(terms)))])
        if not verdict.failed:
            return verdict
    return verdict


@_identity()
def flatten_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    gx = run_backward(impl, spec, a["grad_output"], a, case)
    expected = a["grad_output"].reshape(a["x"].shape)
    return _verdict(spec, case, [("grad_x == reshape(G, x.shape)", gx, expected, _sum_of(case, 1, expected, np.abs(expected)))])


@_identity("sigmoid", "sigmoid_backward")
def bce_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    case = fd_case(spec, case).with_(config={"reduction": "mean"})
    a = case.arrays()
    p, y = a["input"], a["target"]
    z = np.log(p) - np.log1p(-p)  # the logits whose sigmoid is p
    a2 = call(impl.function("sigmoid"), "sigmoid", [z], {})
    one = np.array(1.0, dtype=p.dtype)
    d_a2 = run_backward(impl, spec, one, {"input": a2, "target": y}, case)
    d_z2 = call(impl.function("sigmoid_backward"), "sigmoid_backward", [d_a2, z], {})
    collapsed = (np.asarray(a2, np.float64) - y.astype(np.float64)) / p.size
    # a chain of two rules: no per-element term scale for it, the neighbour rule (max |collapsed|)
    identity = "sigmoid_backward(bce_backward(1, A2, Y), Z2) == (A2 - Y) / N"
    return _verdict(spec, case, [(identity, d_z2, collapsed, tolerances.for_sum(case.dtype, 8, collapsed))])


def _softmax64(x: np.ndarray, dim: int) -> np.ndarray:
    """torch's float64 softmax of ``x`` (the oracle's, not the implementation's)."""
    torch = torch_oracle._torch()
    return torch.softmax(torch.tensor(np.asarray(x, np.float64)), dim=dim).numpy()


def _gradient_terms(spec: OpSpec, case: Case, a: dict, name: str) -> np.ndarray | None:
    scales = magnitudes.backward(spec.name, a, case.config).get(name)
    return None if scales is None else scales[0]


def _sums_to_zero(case: Case, fan_in: int, what: str, grad: np.ndarray, axis: int, terms: np.ndarray | None):
    """``(identity, sum of grad along axis, 0, tolerance)``: the gradient's elements each within their own terms,
    so their sum within the sum of those."""
    total = np.asarray(grad, np.float64).sum(axis=axis)
    zero = np.zeros_like(total)
    scale = None if terms is None else np.asarray(terms, np.float64).sum(axis=axis)
    return (f"{what} sums to 0 along axis {axis}", total, zero, tolerances.for_sum(case.dtype, fan_in, zero, scale=scale))


def _like(case: Case, fan_in: int, identity: str, got: np.ndarray, expected: np.ndarray, terms: np.ndarray | None):
    return (identity, got, expected, tolerances.for_sum(case.dtype, fan_in, expected, scale=terms))


@_identity()
def softmax_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    gx = run_backward(impl, spec, a["grad_output"], a, case)
    terms = _gradient_terms(spec, case, a, "x")
    return _verdict(spec, case, [_sums_to_zero(case, spec.fan_in(case), "grad_x", gx, case.config["dim"], terms)])


@_identity()
def log_softmax_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    dim = case.config["dim"]
    gx = run_backward(impl, spec, a["grad_output"], a, case)
    g = a["grad_output"].astype(np.float64)
    expected = g - _softmax64(a["x"], dim) * g.sum(axis=dim, keepdims=True)
    terms = _gradient_terms(spec, case, a, "x")
    fan_in = spec.fan_in(case)
    return _verdict(spec, case, [
        _like(case, fan_in, "grad_x == G - softmax(X) * sum(G) along dim", gx, expected, terms),
        _sums_to_zero(case, fan_in, "grad_x", gx, dim, terms),
    ])


@_identity()
def cross_entropy_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    z, target = a["input"], a["target"]
    n, c = z.shape
    gz = run_backward(impl, spec, a["grad_output"], a, case)
    g = a["grad_output"].astype(np.float64)
    reduction = case.config["reduction"]
    weight = g.reshape(-1, 1) if reduction == "none" else g.reshape(1, 1) / (n if reduction == "mean" else 1)
    expected = (_softmax64(z, 1) - np.eye(c)[target]) * weight
    terms = _gradient_terms(spec, case, a, "input")
    fan_in = spec.fan_in(case)
    return _verdict(spec, case, [
        _like(case, fan_in, "grad_input == (softmax(input) - onehot(target)) * g_n (g / N for 'mean')", gz, expected, terms),
        _sums_to_zero(case, fan_in, "grad_input", gz, 1, terms),
    ])


@_identity()
def mse_loss_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    x, y = a["input"].astype(np.float64), a["target"].astype(np.float64)
    gx = run_backward(impl, spec, a["grad_output"], a, case)
    expected = 2 * (x - y) * a["grad_output"].astype(np.float64)
    if case.config["reduction"] == "mean":
        expected = expected / x.size
    terms = _gradient_terms(spec, case, a, "input")
    return _verdict(spec, case, [_like(case, spec.fan_in(case), "grad_input == 2 (input - target) G (/ numel for 'mean')",
                                       gx, expected, terms)])


@_identity("tanh")
def tanh_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    x, g = a["x"], a["grad_output"]
    running = submit(impl, [backward_call(spec, g, a, case), ("tanh", [x], {})])
    gx, t = running.result(0), np.asarray(running.result(1), np.float64)
    expected = g.astype(np.float64) * (1 - t * t)
    scale, naive = magnitudes.backward(spec.name, a, case.config)["x"]
    tolerance = tolerances.for_pair(case.dtype, spec.fan_in(case), expected, scale=scale, naive_scale=naive)
    return _verdict(spec, case, [("grad_x == G (1 - t^2), t = the implementation's tanh(X)", gx, expected, tolerance)])


@_identity("relu_backward")
def leaky_relu_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    x, g = a["x"], a["grad_output"]
    running = submit(impl, [backward_call(spec, g, a, case), backward_call(spec, g, a, case.with_(config={"negative_slope": 0.0})),
                            ("relu_backward", [g, x], {})])
    gx, gx0, relu = running.result(0), running.result(1), np.asarray(running.result(2), np.float64)
    slope = case.config["negative_slope"]
    g64 = g.astype(np.float64)
    expected = relu + slope * (g64 - relu)
    scale, naive = magnitudes.backward(spec.name, a, case.config)["x"]
    return _verdict(spec, case, [
        ("grad_x with negative_slope = 0 == relu_backward(G, X)", gx0, relu, _sum_of(case, 1, relu, np.abs(g64))),
        ("grad_x == relu_backward(G, X) + slope (G - relu_backward(G, X))", gx, expected,
         tolerances.for_sum(case.dtype, spec.fan_in(case), expected, scale=scale, naive_scale=naive)),
    ])


@_identity()
def gelu_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    x, g = a["x"], a["grad_output"]
    running = submit(impl, [backward_call(spec, g, a, case), backward_call(spec, g, {**a, "x": -x}, case)])
    total = np.asarray(running.result(0), np.float64) + np.asarray(running.result(1), np.float64)
    expected = g.astype(np.float64)
    scale, naive = magnitudes.backward(spec.name, a, case.config)["x"]  # the terms at x and at -x are the same
    tolerance = tolerances.for_pair(case.dtype, spec.fan_in(case), expected, scale=2 * scale, naive_scale=2 * naive)
    return _verdict(spec, case, [("gelu_backward(G, X) + gelu_backward(G, -X) == G", total, expected, tolerance)])


@_identity()
def adaptive_avg_pool2d_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    a = case.arrays()
    gx = np.asarray(run_backward(impl, spec, a["grad_output"], a, case), np.float64)
    g = a["grad_output"].astype(np.float64)
    expected = g.sum(axis=(-2, -1))
    h, w = a["x"].shape[-2:]
    tolerance = _sum_of(case, spec.fan_in(case) + h * w + g.shape[-2] * g.shape[-1], expected, np.abs(g).sum(axis=(-2, -1)))
    identity = "sum of grad_x over H, W == sum of G over Ho, Wo: each bin spreads its gradient with weights summing to 1"
    return _verdict(spec, case, [(identity, gx.sum(axis=(-2, -1)), expected, tolerance)])


def _normalization_identities(impl: Implementation, spec: OpSpec, case: Case, axes: tuple, params: tuple,
                              shaped) -> Verdict:
    """The derivation's identities of a normalization op over groups ``axes``, parameters shared along ``params``.

    Each side is judged by the term scales of ``oracle.magnitudes`` (``normalization_terms``): an element of grad_x
    is within ``rho T_x`` of the truth, so a sum of m of them (times ``|xhat| <= E``) is within ``rho(n + m)`` of
    ``sum T_x`` (``sum E T_x``); the right-hand sides, computed here in float64, carry their own ``E``-scaled errors.
    """
    a = case.arrays()
    result = run_backward(impl, spec, a["grad_output"], a, case)
    expected_shapes = [(f"grad_{n}", a[n]) for n in spec.differentiable]
    (gx, gw, gb), _ = _checked_result(result, spec.backward_name, expected_shapes, case.dtype)
    x, g = a["x"].astype(np.float64), a["grad_output"].astype(np.float64)
    eps = case.config["eps"]
    terms = magnitudes.normalization_terms(x, axes, eps)
    xhat, s, e = terms["xhat"], terms["inv_std"], terms["E"]
    gy = g if a["weight"] is None else g * shaped(a["weight"].astype(np.float64))
    abs_gy = np.abs(gy)
    t_x = magnitudes.backward(spec.name, a, case.config)["x"][0]
    fan_in = spec.fan_in(case)
    gx = np.asarray(gx, np.float64)
    zeros = np.zeros(np.sum(gx, axis=axes).shape)
    orthogonal = eps * s ** 3 * np.sum(gy * xhat, axis=axes, keepdims=True)
    orthogonal_terms = np.sum(e * t_x, axis=axes, keepdims=True) + eps * s ** 3 * np.sum(abs_gy * e, axis=axes, keepdims=True)
    sums = tolerances.for_sum(case.dtype, fan_in + terms["m"], zeros, scale=np.sum(t_x, axis=axes))
    comparisons = [
        ("sum of grad_x over each normalized group == 0", np.sum(gx, axis=axes), zeros, sums),
        ("sum of xhat * grad_x over each group == eps inv_std^3 sum(G gamma xhat) (0 only as eps -> 0)",
         np.sum(xhat * gx, axis=axes, keepdims=True), orthogonal,
         tolerances.for_sum(case.dtype, fan_in + terms["m"], orthogonal, scale=orthogonal_terms)),
    ]
    if gb is not None:
        total = g.sum(axis=params)
        comparisons.append(("grad_bias == sum of G over the axes bias is shared along", gb, total,
                            _sum_of(case, fan_in, total, np.abs(g).sum(axis=params))))
    if gw is not None:
        total = (g * xhat).sum(axis=params)
        comparisons.append(("grad_weight == sum of G * xhat over the axes weight is shared along", gw, total,
                            _sum_of(case, fan_in, total, (np.abs(g) * e).sum(axis=params))))
    return _verdict(spec, case, comparisons)


@_identity()
def batch_norm_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    ndim = len(case.shapes["x"])
    axes = (0,) + tuple(range(2, ndim))
    return _normalization_identities(impl, spec, case, axes, axes, lambda p: p.reshape((1, -1) + (1,) * (ndim - 2)))


@_identity()
def layer_norm_identities(impl: Implementation, spec: OpSpec, case: Case) -> Verdict:
    ndim = len(case.shapes["x"])
    lead = ndim - len(case.config["normalized_shape"])
    return _normalization_identities(impl, spec, case, tuple(range(lead, ndim)), tuple(range(lead)), lambda p: p)


IDENTITIES = {
    "conv2d": conv_identities,
    "conv1d": conv_identities,
    "conv3d": conv_identities,
    "conv_transpose2d": conv_transpose2d_identities,
    "linear": linear_identities,
    "max_pool2d": max_pool2d_identities,
    "flatten": flatten_identities,
    "binary_cross_entropy": bce_identities,
    "tanh": tanh_identities,
    "leaky_relu": leaky_relu_identities,
    "gelu": gelu_identities,
    "adaptive_avg_pool2d": adaptive_avg_pool2d_identities,
    "softmax": softmax_identities,
    "log_softmax": log_softmax_identities,
    "cross_entropy": cross_entropy_identities,
    "mse_loss": mse_loss_identities,
    "batch_norm": batch_norm_identities,
    "layer_norm": layer_norm_identities,
}
assert set(IDENTITIES) <= set(SPECS)
