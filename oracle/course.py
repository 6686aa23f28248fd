"""The judge's side of a course style: which drawn cases the style can express, steering the strategies there,
and the course's own conventions as references computed here.

The style of a run (``cs231n``, ``dls``; None for the contract itself) and its
conventions (``course``, the default, or ``torch``) are set once per process by
``activate`` (``bpcheck verify --style``, ``pytest --style``; the child
processes of a run get them in their configuration; ``bpcheck verify`` puts
back the previous ones when it returns). The expressible space is
the plain-data table ``oracle.untrusted.styles.constraints``, the same one the
worker's adapters decline by: nothing of the student's code is imported here.

Steering: each strategy's case is projected onto the style's space
(``steer``): one stride and one padding for both axes (the first axis's), a
square window where the API has one size ``f``, no dilation or groups, no pool
padding or ceil_mode, input sides trimmed (or grown by less than a stride) so
the windows tile exactly where the course assumes it, 'mean' where the API's
loss is a mean. Shapes are recomputed from the projected configuration. What is
still not expressible (the explicit edge examples are not steered) is counted
apart, never checked, never a pass or a failure.

Conventions (``tie_rules``): max-pool ties. torch (and the contract) sends a
window's gradient to its first maximum in row-major order. The deep-learning
specialization's ``create_mask_from_window`` is ``x == np.max(x)``: every tied
maximum gets the whole gradient,

    dX[i] = sum over windows w containing i with x_i = max_w of G[w]

(``max_pool_all_ties``; a window with a NaN has an empty mask there, so no
gradient). CS231n's assignment does not say (its gradient checks draw no ties;
its fast layer splits the gradient among tied maxima): either of torch's rule
and every-tied-maximum is accepted. ``--conventions torch`` demands torch's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from oracle.case import Case
from oracle.cases.blocks import Geometry, geometry_of
from oracle.untrusted.styles.constraints import EXPRESSIBLE, STYLES, describe, offers, reason

CONVENTIONS = ("course", "torch")

#: style -> the max-pool tie rules its course accepts ("first": torch's; "all": every tied maximum)
TIES = {"cs231n": ("first", "all"), "dls": ("all",)}

TIE_TEXT = {
    "first": "the first maximum of the window (torch's rule)",
    "all": "every tied maximum of the window (create_mask_from_window: x == np.max(x))",
}

#: why a NaN input is left out under a course's conventions
NAN_TEXT = "NaN inputs (the course states no NaN convention: torch's NaN routing is checked with --conventions torch)"

_state = {"style": None, "conventions": "course"}


def activate(style: str | None, conventions: str | None = "course") -> None:
    """Make ``style`` (None: the contract) and ``conventions`` this process's; ValueError names a bad one."""
    if style not in (None, "", *STYLES):
        raise ValueError(f"--style must be one of {', '.join(STYLES)}, got {style!r}")
    conventions = conventions or "course"
    if conventions not in CONVENTIONS:
        raise ValueError(f"--conventions must be one of {', '.join(CONVENTIONS)}, got {conventions!r}")
    _state["style"], _state["conventions"] = style or None, conventions


def style() -> str | None:
    return _state["style"]


def conventions() -> str:
    return _state["conventions"]


def ops(style_name: str) -> list[str]:
    """The contract ops ``style_name``'s API offers."""
    return list(EXPRESSIBLE[style_name])


def not_expressible(case: Case) -> str | None:
    """Why the active style's API cannot express ``case`` (None: it can, or no style is active)."""
    if style() is None:
        return None
    why = reason(style(), case.op, case.config, case.shapes)
    if why is None and conventions() == "course" and "nan" in (case.values or {}).values():
        return NAN_TEXT
    return why


# --------------------------------------------------------------------------- steering


def _fit(side: int, padding: int, extent: int, stride: int, exact: bool) -> int:
    """An input side close to ``side`` with at least one window, tiling exactly if ``exact``."""
    side = max(side, extent - 2 * padding, 1)
    if exact:
        left = (side + 2 * padding - extent) % stride
        side = side - left if side - left >= max(1, extent - 2 * padding) else side + stride - left
    return side


def steer(style_name: str, case: Case) -> Case:
    """``case`` projected onto ``style_name``'s expressible space (unchanged where it is already inside, or where
    the style does not offer the op)."""
    if not offers(style_name, case.op):
        return case
    rules = EXPRESSIBLE[style_name][case.op]
    if case.op == "conv2d":
        return _steer_conv(case, rules)
    if case.op in ("max_pool2d", "avg_pool2d"):
        return _steer_pool(case, rules)
    if "mean_reduction" in rules and case.config.get("reduction", "mean") != "mean":
        return replace(case, config={**case.config, "reduction": "mean"}, shapes={**case.shapes, "grad_output": ()})
    return case


def _steer_conv(case: Case, rules: tuple[str, ...]) -> Case:
    n, c_in = case.shapes["x"][:2]
    c_out, _, *kernel = case.shapes["weight"]
    cfg = case.config
    stride, padding, dilation = (list(_pair(cfg.get(k), d)) for k, d in (("stride", 1), ("padding", 0), ("dilation", 1)))
    groups = cfg.get("groups", 1)
    if "square_kernel" in rules:
        kernel = [kernel[0]] * 2
    if "one_stride" in rules:
        stride = [stride[0]] * 2
    if "one_padding" in rules:
        padding = [padding[0]] * 2
    if "no_dilation" in rules:
        dilation = [1, 1]
    if "no_groups" in rules:
        groups = 1
    if c_in % groups or c_out % groups:
        groups = 1
    hw = [_fit(h, p, d * (k - 1) + 1, s, "exact_tiling" in rules)
          for h, p, k, s, d in zip(case.shapes["x"][2:], padding, kernel, stride, dilation)]
    g = Geometry(tuple(hw), tuple(kernel), tuple(stride), tuple(padding), tuple(dilation))
    shapes = {**case.shapes, "x": (n, c_in, *hw), "weight": (c_out, c_in // groups, *kernel),
              "grad_output": (n, c_out, *g.output_hw)}
    config = {**cfg, "stride": tuple(stride), "padding": tuple(padding), "dilation": tuple(dilation), "groups": groups}
    return replace(case, shapes=shapes, config=config)


def _pair(value, default) -> tuple[int, int]:
    if value is None:
        value = default
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def _steer_pool(case: Case, rules: tuple[str, ...]) -> Case:
    n, c = case.shapes["x"][:2]
    cfg = dict(case.config)
    kernel = list(_pair(cfg["kernel_size"], 1))
    default_stride = cfg.get("stride") is None
    stride = list(_pair(cfg.get("stride"), tuple(kernel)))
    padding = list(_pair(cfg.get("padding"), 0))
    dilation = list(_pair(cfg.get("dilation"), 1))
    if "square_kernel" in rules:
        kernel = [kernel[0]] * 2
        stride = list(kernel) if default_stride else stride
    if "one_stride" in rules:
        stride = [stride[0]] * 2
    if "no_padding" in rules:
        padding = [0, 0]
    if "no_dilation" in rules:
        dilation = [1, 1]
    padding = [min(p, k // 2) for p, k in zip(padding, kernel)]
    if "no_ceil_mode" in rules:
        cfg["ceil_mode"] = False
    if "no_divisor_override" in rules and "divisor_override" in cfg:
        cfg["divisor_override"] = None
    hw = [_fit(h, p, d * (k - 1) + 1, s, "exact_tiling" in rules)
          for h, p, k, s, d in zip(case.shapes["x"][2:], padding, kernel, stride, dilation)]
    g = Geometry(tuple(hw), tuple(kernel), tuple(stride), tuple(padding), tuple(dilation), bool(cfg.get("ceil_mode")))
    if not g.every_window_reads_input():  # a ceil window made of padding only: torch's and the course's differ there
        g = replace(g, ceil_mode=False)
        cfg["ceil_mode"] = False
    cfg.update(kernel_size=tuple(kernel), padding=tuple(padding),
               stride=None if default_stride and tuple(stride) == tuple(kernel) else tuple(stride))
    if "dilation" in cfg:
        cfg["dilation"] = tuple(dilation)
    shapes = {**case.shapes, "x": (n, c, *hw), "grad_output": (n, c, *g.output_hw)}
    return replace(case, shapes=shapes, config=cfg)


def cases(spec, dtype: str | None):
    """The op's strategy, steered onto the active style's expressible space (the plain strategy without a style)."""
    strategy = spec.cases(dtype)
    active = style()
    if active is None or not offers(active, spec.name):
        return strategy
    return strategy.map(lambda case: steer(active, case))


# --------------------------------------------------------------------------- conventions


def tie_rules() -> tuple[str, ...]:
    """The max-pool tie rules accepted in this run (``("first",)``: torch's, the contract's)."""
    if style() is None or conventions() == "torch":
        return ("first",)
    return TIES.get(style(), ("first",))


def max_pool_all_ties(x: np.ndarray, grad_output: np.ndarray, case: Case) -> np.ndarray:
    """dX[i] = sum over windows w containing i with x_i == max_w of G[w], in float64 (the course's mask rule).

    Each window's taps are an arithmetic progression of input indices (step = the dilation), padding left
    out: it never holds the maximum (padding is -inf). A window holding a NaN has max NaN and an empty mask.
    """
    g = geometry_of(case)
    x64, g64 = np.asarray(x, np.float64), np.asarray(grad_output, np.float64)
    dx = np.zeros_like(x64)
    for i, rows in enumerate(g.windows(0)):
        for j, cols in enumerate(g.windows(1)):
            if not rows or not cols:
                continue
            rs = slice(rows[0], rows[-1] + 1, g.dilation[0])
            cs = slice(cols[0], cols[-1] + 1, g.dilation[1])
            block = x64[:, :, rs, cs]
            with np.errstate(invalid="ignore"):
                mask = block == block.max(axis=(2, 3), keepdims=True)
            dx[:, :, rs, cs] += mask * g64[:, :, i, j][:, :, None, None]
    return dx


def backward_references(op: str, case: Case, arrays: dict, grads: dict) -> list[tuple[str | None, dict]]:
    """The references a backward is accepted against, in order: ``[(None, torch's grads)]`` unless the run's
    conventions differ from torch's on this case, then each accepted rule's ``(note, grads)``."""
    rules = tie_rules()
    if op != "max_pool2d" or rules == ("first",):
        return [(None, grads)]
    course_grads = {**grads, "x": max_pool_all_ties(arrays["x"], arrays["grad_output"], case)}
    if np.array_equal(course_grads["x"], np.asarray(grads["x"], np.float64), equal_nan=True):
        return [(None, grads)]
    note = (f"max-pool ties checked against the {style()} convention: the gradient goes to {TIE_TEXT['all']}; "
            f"torch sends it to {TIE_TEXT['first']} (--conventions torch checks that)")
    refs = [(note, course_grads)]
    if "first" in rules:
        refs.insert(0, (None, grads))
    return refs


def routed_sums(x: np.ndarray, grad_output: np.ndarray, case: Case) -> list[tuple[str, float, float]]:
    """``(rule, sum(dX) under it, sum of |terms|)`` for each accepted tie rule: the max-pool routing identity."""
    g = np.asarray(grad_output, np.float64)
    out = []
    for rule in tie_rules():
        if rule == "first":
            out.append((rule, float(g.sum()), float(np.abs(g).sum())))
        else:
            dx = max_pool_all_ties(x, grad_output, case)
            ones = max_pool_all_ties(x, np.abs(g), case)
            out.append((rule, float(dx.sum()), float(ones.sum())))
    return out


def header() -> str | None:
    """What the report says about the style and its conventions (None without a style)."""
    if style() is None:
        return None
    if conventions() == "torch":
        return f"style {style()}: checked against torch's conventions (--conventions torch)"
    if style() not in TIES:
        return f"style {style()}: no convention of its own differs from torch's here"
    ties = " or ".join(TIE_TEXT[r] for r in TIES[style()])
    return (f"style {style()}: the course's conventions (max-pool ties: the gradient goes to {ties}; "
            f"torch: {TIE_TEXT['first']}; --conventions torch checks torch's)")


def expressible_text(style_name: str, op: str) -> str:
    """``'conv2d: cannot express different strides along H and W ...'`` for the coverage report."""
    text = describe(style_name, op)
    return f"{op}: the {style_name} API cannot express {text}" if text else f"{op}: the {style_name} API expresses every case"
