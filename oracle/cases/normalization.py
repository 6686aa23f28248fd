"""The normalization family: ``batch_norm`` (training mode) and ``layer_norm``.

Their records (``SPECS``), the strategies that draw their cases
(``batch_norm_cases``, ``layer_norm_cases``), their edge examples
(``EXAMPLES``), and their classic backward mistakes (``batch_norm_scaffold``,
``layer_norm_scaffold`` and the ``MISTAKES`` they catalogue).

Both ops standardize x over a group of m elements and apply ``gamma xhat + beta``
(refimpl/normalization.py, docs/normalization-derivation.md); with gy = G gamma,
inv_std = 1/sqrt(var + eps):

    grad_x = (inv_std / m) (m gy - sum gy - xhat sum(gy xhat)),  grad_gamma = sum G xhat,  grad_beta = sum G

Neither op is linear in an input with the optional ones None (the forward is then
xhat, nonlinear in x), so the adjoint identity does not apply: it is affine in
bias and, without bias, linear in weight, but the adjoint check drops every
optional input. Finite differences run on ``gapped`` x: two values of a group are
at least 2 * GAP = 0.1 apart, so every group of m >= 2 has std >= 0.05, and the
relative truncation of a central difference, about (h / std)^2 = (1e-6 / 0.05)^2
= 4e-10, is far below FD_RTOL = 1e-7. A constant group (var = 0) is smooth too,
but on the scale sqrt(eps): (h / sqrt(eps))^2 is 0.1 at eps = 1e-5 and 1 at
eps = 1e-12, so finite differences cannot judge it; torch and the identities do.

One value per channel (batch_norm with N * spatial size = 1): torch raises in
training mode ("Expected more than 1 value per channel when training"); the
contract leaves it undefined, refimpl raises ValueError saying so (its variance
would be 0 and the output beta), and the strategies never draw it. layer_norm
over one value (normalized_shape (1,)) is defined by both: xhat = 0, y = beta,
grad_x = 0; it is drawn.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from oracle.case import Case
from oracle.cases.blocks import _dtype_strategy, _label, _values, recipes, reused, seeds
from oracle.cases.mistake import Mistake, _validated, mistakes
from oracle.cases.record import OpSpec, _no


# --------------------------------------------------------------------------- records


def _batch_norm_fan_in(case: Case) -> int:
    """m = N * spatial size (the statistics' and the parameter gradients' sums), plus the chain of roundings that
    follows them (the division by m, + eps, sqrt, the reciprocal, the products and differences of grad_x)."""
    shape = case.shapes["x"]
    return shape[0] * math.prod(shape[2:]) + 8


def _layer_norm_fan_in(case: Case) -> int:
    """The larger of m = prod(normalized_shape) (the statistics) and the leading size (the parameter gradients'
    sums), plus the chain of roundings after them (as for batch_norm)."""
    shape, k = case.shapes["x"], len(case.config["normalized_shape"])
    return max(math.prod(shape[len(shape) - k:]), math.prod(shape[: len(shape) - k])) + 8


_AFFINE_FEATURES = (("weight=None", _no("weight")), ("bias=None", _no("bias")))


SPECS: list[OpSpec] = [
    OpSpec(
        "batch_norm",
        inputs=("x", "weight", "bias"),
        differentiable=("x", "weight", "bias"),
        config=("eps",),
        optional=("weight", "bias"),
        fd_values={"x": "gapped"},
        fan_in=_batch_norm_fan_in,
        features=_AFFINE_FEATURES,
    ),
    OpSpec(
        "layer_norm",
        inputs=("x", "weight", "bias"),
        differentiable=("x", "weight", "bias"),
        config=("normalized_shape", "eps"),
        optional=("weight", "bias"),
        fd_values={"x": "gapped"},
        fan_in=_layer_norm_fan_in,
        features=_AFFINE_FEATURES + (
            ("normalized_shape of 2+ dims", lambda case: len(case.config.get("normalized_shape", ())) > 1),
        ),
    ),
]


# --------------------------------------------------------------------------- strategies


#: x of batch_norm: constant channels (var = 0, eps decides), small integers (ties; with 2 values per channel,
#: often a constant channel), a large common offset (a one-pass variance cancels)
BATCH_NORM_RECIPES = {"normal": 3, "constant_channels": 1, "ties": 1, "offset": 1}
#: x of layer_norm: the same corners; constant leading slices make every group under them constant
LAYER_NORM_RECIPES = {"normal": 3, "constant_rows": 1, "ones": 1, "ties": 1, "offset": 1}

#: torch's default eps, the shrink target
DEFAULT_EPS = 1e-5


@reused
def epsilons() -> st.SearchStrategy[float]:
    """An eps: torch's default 1e-5 (shrinks there) or ``10**e``, e uniform in [-12, 1] (1e-12 to 10).

    A tiny eps next to a constant group amplifies the gradient by 1/sqrt(eps) (1e6); a large one (eps >> var)
    makes inv_std nearly constant and the variance path nearly vanish.
    """
    return st.one_of(st.just(DEFAULT_EPS), st.floats(-12.0, 1.0).map(lambda e: float(10.0 ** e)))


def _label_eps(op: str, eps: float) -> None:
    if eps <= 1e-8:
        _label(f"{op}: eps <= 1e-8")
    elif eps >= 1.0:
        _label(f"{op}: eps >= 1")


def _constant_groups(x: np.ndarray, axes: tuple[int, ...]) -> bool:
    """Some group (the elements sharing the indices outside ``axes``) holds one value only."""
    if x.size == 0:
        return False
    return bool(np.any(np.ptp(x, axis=axes) == 0))


def _affine_shapes(draw, shape: tuple[int, ...]) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    return (shape if draw(st.booleans()) else None, shape if draw(st.booleans()) else None)


@st.composite
def _batch_norm_cases(draw, dtype: st.SearchStrategy[str]):
    spatial = draw(st.sampled_from(((), (None, None))))
    c = draw(st.integers(1, 3))
    if draw(st.integers(0, 3)) == 0:  # exactly two values per channel, along the batch or a spatial axis
        sizes = [1] * (1 + len(spatial))
        sizes[draw(st.integers(0, len(sizes) - 1))] = 2
    else:
        sizes = [draw(st.integers(1, 4))] + [draw(st.integers(1, 3)) for _ in spatial]
        if math.prod(sizes) == 1:  # torch refuses one value per channel in training mode
            sizes[0] = 2
    shape = (sizes[0], c, *sizes[1:])
    weight, bias = _affine_shapes(draw, (c,))
    eps = draw(epsilons())
    recipe = draw(recipes(BATCH_NORM_RECIPES))
    case = Case(
        op="batch_norm",
        shapes={"x": shape, "weight": weight, "bias": bias, "grad_output": shape},
        config={"eps": eps},
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(x=recipe),
    )
    m = math.prod(sizes)
    _label(f"batch_norm: {len(shape)}-d")
    if m == 2:
        _label("batch_norm: 2 values per channel")
    axes = (0,) + tuple(range(2, len(shape)))
    if _constant_groups(case.arrays()["x"], axes):
        _label("batch_norm: a constant channel")
    if recipe == "offset":
        _label("batch_norm: large common offset")
    if weight is None:
        _label("batch_norm: weight=None")
    if bias is None:
        _label("batch_norm: bias=None")
    _label_eps("batch_norm", eps)
    _label(f"dtype: {case.dtype}")
    return case


def batch_norm_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A training-mode ``batch_norm(x, weight, bias, eps=)`` case.

    x (N, C) or (N, C, H, W), C 1-3; a quarter of the cases have exactly two values per channel (N*H*W = 2, along
    the batch or a spatial axis), the others N 1-4, H, W 1-3 with N*H*W >= 2: torch refuses a single value per
    channel in training mode (N*H*W = 1, "Expected more than 1 value per channel when training"), and refimpl
    raises ValueError there too, so the strategy never draws it. weight and bias (C,) or None, each independently;
    eps from ``epsilons`` (1e-12 to 10); x ``"normal"``, ``"constant_channels"`` (var = 0), ``"ties"`` or
    ``"offset"`` (1e3 + N(0, 1)). ``dtype`` None draws it.
    """
    return _batch_norm_cases(_dtype_strategy(dtype))


@st.composite
def _layer_norm_cases(draw, dtype: st.SearchStrategy[str]):
    k = draw(st.integers(1, 3))
    normalized = tuple(draw(st.integers(1, 4 if k < 3 else 3)) for _ in range(k))
    lead = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(0, 2))))
    shape = lead + normalized
    weight, bias = _affine_shapes(draw, normalized)
    eps = draw(epsilons())
    recipe = draw(recipes(LAYER_NORM_RECIPES))
    case = Case(
        op="layer_norm",
        shapes={"x": shape, "weight": weight, "bias": bias, "grad_output": shape},
        config={"normalized_shape": normalized, "eps": eps},
        dtype=draw(dtype),
        seed=draw(seeds()),
        values=_values(x=recipe),
    )
    _label(f"layer_norm: over {k} trailing dim(s), {len(lead)} leading")
    if math.prod(normalized) == 1:
        _label("layer_norm: one value per group")
    if _constant_groups(case.arrays()["x"], tuple(range(len(lead), len(shape)))):
        _label("layer_norm: a constant group")
    if recipe == "offset":
        _label("layer_norm: large common offset")
    if weight is None:
        _label("layer_norm: weight=None")
    if bias is None:
        _label("layer_norm: bias=None")
    _label_eps("layer_norm", eps)
    _label(f"dtype: {case.dtype}")
    return case


def layer_norm_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """A ``layer_norm(x, weight, bias, normalized_shape=, eps=)`` case.

    normalized_shape: 1 to 3 trailing dims of x (sides 1-4, 1-3 for three dims; a group of one value is drawn too:
    xhat = 0 there, as in torch), 0 to 2 leading dims (sides 1-3); weight and bias of shape normalized_shape or
    None, each independently; eps from ``epsilons``; x ``"normal"``, ``"constant_rows"`` (every group under a
    constant leading slice has var = 0), ``"ones"`` (every group constant), ``"ties"`` or ``"offset"``.
    ``dtype`` None draws it.
    """
    return _layer_norm_cases(_dtype_strategy(dtype))


#: op name -> its ``*_cases(dtype=None)`` strategy
CASES = {"batch_norm": batch_norm_cases, "layer_norm": layer_norm_cases}


# --------------------------------------------------------------------------- examples


def batch_norm_case(shape, *, weight=True, bias=True, eps=DEFAULT_EPS, values=None, seed=0) -> Case:
    c = (shape[1],)
    return Case("batch_norm", {"x": shape, "weight": c if weight else None, "bias": c if bias else None,
                               "grad_output": shape}, {"eps": eps}, seed=seed, values=values or {})


def layer_norm_case(shape, k, *, weight=True, bias=True, eps=DEFAULT_EPS, values=None, seed=0) -> Case:
    s = tuple(shape[len(shape) - k:])
    return Case("layer_norm", {"x": shape, "weight": s if weight else None, "bias": s if bias else None,
                               "grad_output": shape}, {"normalized_shape": s, "eps": eps}, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "batch_norm": [
        batch_norm_case((2, 3)),                                                  # two values per channel
        batch_norm_case((1, 2, 1, 2), weight=False, bias=False, eps=1e-12),
        batch_norm_case((3, 3, 2, 2), values={"x": "constant_channels"}, eps=1e-8),  # var = 0: 1/sqrt(eps) = 1e4
        batch_norm_case((4, 2), values={"x": "offset"}, bias=False),
        batch_norm_case((2, 2, 3, 3), weight=False, eps=10.0),
    ],
    "layer_norm": [
        layer_norm_case((2, 5), 1),
        layer_norm_case((3, 2, 4), 2, weight=False, values={"x": "constant_rows"}, eps=1e-10),
        layer_norm_case((2, 2, 3, 2), 3, bias=False, values={"x": "offset"}),
        layer_norm_case((4, 1), 1),                                                # one value per group: xhat = 0
        layer_norm_case((6,), 1, values={"x": "ones"}, eps=1.0),
    ],
}


# --------------------------------------------------------------------------- mistakes


def _normalization_scaffold(grad_output, x, weight, bias, *, axes, param_axes, gamma, eps, grad_x, variance,
                            grad_weight, gamma_in_sums, stats_axes):
    """The shared backward of both ops, with the mistakes as switches (see the two scaffolds)."""
    dt = x.dtype.type
    stats = axes if stats_axes is None else stats_axes
    m = max(math.prod(x.shape[a] for a in stats), 1)
    mean = x.sum(axis=stats, keepdims=True) / dt(m)
    centred = x - mean
    divisor = dt(max(m - 1, 1)) if variance == "unbiased" else dt(m)
    var = np.square(centred).sum(axis=stats, keepdims=True) / divisor
    inv_std = dt(1) / np.sqrt(var + dt(eps))
    xhat = centred * inv_std
    n = dt(m)
    gy = grad_output if (gamma is None or not gamma_in_sums) else grad_output * gamma
    mean_gy = gy.sum(axis=stats, keepdims=True) / n
    mean_gy_xhat = (gy * xhat).sum(axis=stats, keepdims=True) / n
    if grad_x == "no_mean_terms":
        gx = gy * inv_std
    elif grad_x == "xhat_term_dropped":
        gx = inv_std * (gy - mean_gy)
    elif grad_x == "mean_term_dropped":
        gx = inv_std * (gy - xhat * mean_gy_xhat)
    else:
        gx = inv_std * (gy - mean_gy - xhat * mean_gy_xhat)
    if gamma is not None and not gamma_in_sums:
        gx = gx * gamma
    gw = None
    if weight is not None:
        gw = (grad_output if grad_weight == "without_xhat" else grad_output * xhat).sum(axis=param_axes)
    gb = None if bias is None else grad_output.sum(axis=param_axes)
    as_array = lambda a: None if a is None else np.asarray(a, dtype=x.dtype)  # noqa: E731 - a sum over all axes is a scalar
    return np.asarray(gx, dtype=x.dtype), as_array(gw), as_array(gb)


def batch_norm_scaffold(grad_output, x, weight=None, bias=None, *, eps=DEFAULT_EPS, grad_x="right", variance="biased",
                        grad_weight="right"):
    """batch_norm_backward; the defaults are the right rule.

    grad_x       "right" (inv_std/m)(m gy - sum gy - xhat sum(gy xhat)); "no_mean_terms" gy inv_std (the paths
                 through the mean and the variance dropped); "xhat_term_dropped" inv_std (gy - mean gy)
    variance     "biased" (/ m, as the forward); "unbiased" (/ (m - 1): np.var(ddof=1), torch.var's default)
    grad_weight  "right" sum G xhat; "without_xhat" sum G
    """
    _validated("batch_norm", grad_output, [x, weight, bias], {"eps": eps})
    axes = (0,) + tuple(range(2, x.ndim))
    gamma = None if weight is None else weight.reshape((1, -1) + (1,) * (x.ndim - 2))
    return _normalization_scaffold(grad_output, x, weight, bias, axes=axes, param_axes=axes, gamma=gamma, eps=eps,
                                   grad_x=grad_x, variance=variance, grad_weight=grad_weight, gamma_in_sums=True,
                                   stats_axes=None)


def layer_norm_scaffold(grad_output, x, weight=None, bias=None, *, normalized_shape, eps=DEFAULT_EPS, grad_x="right",
                        stats="right", gamma="in_sums"):
    """layer_norm_backward; the defaults are the right rule.

    grad_x  "right"; "mean_term_dropped" inv_std (gy - xhat mean(gy xhat)) (the path through the mean dropped)
    stats   "right" (mean and variance over the trailing normalized_shape dims); "batch_axis" over axis 0, the
            batch axis, as batch_norm takes them
    gamma   "in_sums" (gy = G gamma inside the sums); "factored_out" gamma (inv_std/m)(m G - sum G - xhat sum(G xhat)),
            batch_norm's factoring, wrong where gamma varies along the group
    """
    _validated("layer_norm", grad_output, [x, weight, bias], {"normalized_shape": normalized_shape, "eps": eps})
    k = len(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else 1
    lead = x.ndim - k
    axes = tuple(range(lead, x.ndim))
    return _normalization_scaffold(grad_output, x, weight, bias, axes=axes, param_axes=tuple(range(lead)), gamma=weight,
                                   eps=eps, grad_x=grad_x, variance="biased", grad_weight="right",
                                   gamma_in_sums=gamma == "in_sums", stats_axes=(0,) if stats == "batch_axis" else None)


#: op -> its scaffold: the backward written so that each mistake is one switch (defaults = the right rule)
SCAFFOLDS = {"batch_norm": batch_norm_scaffold, "layer_norm": layer_norm_scaffold}


MISTAKES: list[Mistake] = mistakes(SCAFFOLDS, [
    # ----------------------------------------------------------------- batch_norm
    ("bn_grad_x_no_mean_terms", "batch_norm",
     "grad_x as if the statistics were constants: G gamma inv_std, without the two terms through the batch mean "
     "and variance (- sum(gy) - xhat sum(gy xhat)) / m",
     dict(grad_x="no_mean_terms")),
    ("bn_unbiased_variance", "batch_norm",
     "the backward recomputes the variance unbiased (/ (m - 1), np.var(ddof=1) or torch.var's default) while the "
     "forward divides by m: inv_std and xhat inconsistent with the forward",
     dict(variance="unbiased")),
    ("bn_xhat_term_dropped", "batch_norm",
     "grad_x without the path through the variance: inv_std (gy - mean(gy)), the - xhat mean(gy xhat) term dropped",
     dict(grad_x="xhat_term_dropped")),
    ("bn_grad_weight_without_xhat", "batch_norm",
     "grad_weight as sum of G over the batch and spatial axes (the bias's gradient) instead of sum of G * xhat",
     dict(grad_weight="without_xhat")),
    # ----------------------------------------------------------------- layer_norm
    ("ln_stats_over_batch_axis", "layer_norm",
     "the backward's mean and variance taken over axis 0 (the batch axis, as batch_norm does) instead of over the "
     "trailing normalized_shape dims",
     dict(stats="batch_axis")),
    ("ln_mean_term_dropped", "layer_norm",
     "grad_x without the path through the mean: inv_std (gy - xhat mean(gy xhat)), the - mean(gy) term dropped",
     dict(grad_x="mean_term_dropped")),
    ("ln_gamma_factored_out", "layer_norm",
     "gamma factored out of the sums as in batch_norm: gamma inv_std (G - mean(G) - xhat mean(G xhat)), wrong where "
     "gamma varies along the normalized dims (the sums need gy = G gamma)",
     dict(gamma="factored_out")),
])
