"""What each course style's API can express, as plain data and one function over plain data.

A course API fixes part of the contract's configuration: CS231n's ``conv_param``
has one ``stride`` and one ``pad`` for both axes, the deep-learning
specialization's ``W`` is ``(f, f, n_C_prev, n_C)`` (a square filter), neither
has dilation or groups, neither pools with padding. A case outside that space is
*not expressible in the API*: it is never sent to the student's code, and it is
counted as such, never as a pass or a failure.

``reason(style, op, config, shapes)`` says why a case is not expressible (None
when it is). It reads only the case's configuration and shapes (plain data), and
imports nothing: the worker's adapters (``oracle.untrusted.styles``) use it to
decline such a call, and the judge (``oracle.course``) uses the same table to
classify and steer the drawn cases, without ever importing the student's code.
"""

from __future__ import annotations

#: each rule: (name, what the API cannot express when the rule fails)
RULE_TEXT = {
    "one_stride": "different strides along H and W (the API has one stride)",
    "one_padding": "different paddings along H and W (the API has one pad, placed symmetrically)",
    "square_kernel": "a non-square window (the API has one filter/window size f)",
    "no_dilation": "dilation (the API has none)",
    "no_groups": "groups > 1 (the API has none)",
    "no_padding": "padding (the API's pooling has none)",
    "no_ceil_mode": "ceil_mode (the API's output size is floor((H - f) / stride) + 1)",
    "exact_tiling": "windows that do not tile the padded input exactly (the API's output size is "
                    "1 + (H + 2 pad - HH) / stride, which the course assumes to be an integer)",
    "no_divisor_override": "divisor_override (the API divides by the window size)",
    "mean_reduction": "a reduction other than 'mean' (the API's loss is the mean over the batch)",
}

#: style -> op -> the rules a case must satisfy; an op not listed is not offered by the style
EXPRESSIBLE: dict[str, dict[str, tuple[str, ...]]] = {
    "cs231n": {
        "conv2d": ("one_stride", "one_padding", "no_dilation", "no_groups", "exact_tiling"),
        "max_pool2d": ("one_stride", "no_padding", "no_dilation", "no_ceil_mode", "exact_tiling"),
        "linear": (),
        "relu": (),
        "batch_norm": (),
        "layer_norm": (),
        "cross_entropy": ("mean_reduction",),
    },
    "dls": {
        "conv2d": ("square_kernel", "one_stride", "one_padding", "no_dilation", "no_groups"),
        "max_pool2d": ("square_kernel", "one_stride", "no_padding", "no_dilation", "no_ceil_mode"),
        "avg_pool2d": ("square_kernel", "one_stride", "no_padding", "no_ceil_mode", "no_divisor_override"),
        "relu": (),
        "sigmoid": (),
    },
    "layers": {
        "linear": (),
        "relu": (),
        "sigmoid": (),
        "tanh": (),
    },
}

STYLES = tuple(EXPRESSIBLE)


def _pair(value, default) -> tuple:
    if value is None:
        value = default
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _kernel(op: str, config: dict, shapes: dict) -> tuple:
    if op == "conv2d":
        return tuple(shapes["weight"][2:])
    return _pair(config.get("kernel_size"), 1)


def holds(rule: str, op: str, config: dict, shapes: dict) -> bool:
    """Whether a case of ``op`` with ``config`` and ``shapes`` satisfies ``rule``."""
    kernel = _kernel(op, config, shapes) if op in ("conv2d", "max_pool2d", "avg_pool2d") else None
    if rule == "one_stride":
        stride = _pair(config.get("stride"), kernel)  # a pool's stride None is its kernel
        return stride[0] == stride[1]
    if rule == "one_padding":
        padding = _pair(config.get("padding"), 0)
        return padding[0] == padding[1]
    if rule == "square_kernel":
        return kernel[0] == kernel[1]
    if rule == "no_dilation":
        return _pair(config.get("dilation"), 1) == (1, 1)
    if rule == "no_groups":
        return config.get("groups", 1) == 1
    if rule == "no_padding":
        return _pair(config.get("padding"), 0) == (0, 0)
    if rule == "no_ceil_mode":
        return not config.get("ceil_mode", False)
    if rule == "exact_tiling":
        stride = _pair(config.get("stride"), kernel)
        padding = _pair(config.get("padding"), 0)
        sides = shapes["x"][2:]
        return all((h + 2 * p - k) % s == 0 for h, p, k, s in zip(sides, padding, kernel, stride))
    if rule == "no_divisor_override":
        return config.get("divisor_override") is None
    if rule == "mean_reduction":
        return config.get("reduction", "mean") == "mean"
    raise ValueError(f"unknown rule {rule!r}")


def offers(style: str, op: str) -> bool:
    """Whether ``style``'s API has ``op`` at all."""
    return op in EXPRESSIBLE.get(style, {})


def reason(style: str, op: str, config: dict, shapes: dict) -> str | None:
    """Why a case of ``op`` cannot be written in ``style``'s API (None: it can).

    ValueError for an unknown style; an op the style does not offer is "not offered".
    """
    if style not in EXPRESSIBLE:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if not offers(style, op):
        return f"the {style} API has no {op}"
    failed = [rule for rule in EXPRESSIBLE[style][op] if not holds(rule, op, config, shapes)]
    if not failed:
        return None
    return "; ".join(RULE_TEXT[rule] for rule in failed)


def describe(style: str, op: str) -> str:
    """What ``style``'s API cannot express for ``op``: ``'dilation (the API has none); ...'`` ('' if nothing)."""
    return "; ".join(RULE_TEXT[rule] for rule in EXPRESSIBLE.get(style, {}).get(op, ()))
