"""Explicit edge cases and known bugs from the field, run as ``@example``s before any drawn case.

Issue numbers are PyTorch's. Each is checked by every check of its op: against
torch *and* against finite differences and the adjoint identity, since torch
itself got some of them wrong.
"""

from __future__ import annotations

from oracle.case import Case
from refimpl.arguments import window_count


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def conv(x, weight, *, bias=True, stride=1, padding=0, dilation=1, groups=1, values=None, seed=0) -> Case:
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    out = tuple(window_count(x[2 + a], weight[2 + a], s[a], p[a], d[a]) for a in (0, 1))
    shapes = {"x": x, "weight": weight, "bias": (weight[0],) if bias else None, "grad_output": (x[0], weight[0]) + out}
    config = {"stride": s, "padding": p, "dilation": d, "groups": groups}
    return Case("conv2d", shapes, config, seed=seed, values=values or {})


def pool(op, x, kernel, *, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
         divisor_override=None, values=None, seed=0) -> Case:
    k, p, d = _pair(kernel), _pair(padding), _pair(dilation)
    s = k if stride is None else _pair(stride)
    out = tuple(window_count(x[2 + a], k[a], s[a], p[a], d[a] if op == "max_pool2d" else 1, ceil_mode) for a in (0, 1))
    config = {"kernel_size": k, "stride": None if stride is None else s, "padding": p}
    if op == "max_pool2d":
        config.update(dilation=d, ceil_mode=ceil_mode)
    else:
        config.update(ceil_mode=ceil_mode, count_include_pad=count_include_pad, divisor_override=divisor_override)
    return Case(op, {"x": x, "grad_output": x[:2] + out}, config, seed=seed, values=values or {})


def elementwise(op, shape, values=None, seed=0) -> Case:
    return Case(op, {"x": shape, "grad_output": shape}, {}, seed=seed, values=values or {})


def bce(op, shape, *, reduction="mean", values=None, seed=0) -> Case:
    g = () if reduction != "none" else shape
    return Case(op, {"input": shape, "target": shape, "grad_output": g}, {"reduction": reduction}, seed=seed, values=values or {})


EXAMPLES: dict[str, list[Case]] = {
    "conv2d": [
        conv((1, 1, 6, 6), (1, 1, 3, 3)),  # the derivation's worked example: 6x6 input, 3x3 filter
        conv((1, 1, 1, 1), (1, 1, 1, 1)),  # 1x1 input and kernel
        conv((1, 2, 3, 3), (3, 2, 3, 3)),  # output of size 1
        conv((1, 1, 2, 2), (1, 1, 4, 4), padding=1),  # kernel wider than the unpadded input
        conv((1, 1, 7, 7), (1, 1, 3, 3), stride=2),  # the stride > 1 derivation
        conv((1, 24, 6, 6), (24, 1, 3, 3), stride=2, padding=1, groups=24, values={"x": "ones"}),  # #50042 depthwise dW
        conv((1, 9, 32, 32), (3, 9, 5, 5), stride=3, padding=1, values={"x": "ones"}),  # #25101 grad_x at the last columns
        conv((2, 4, 5, 5), (6, 2, 3, 3), groups=2),  # #51430 grouped weight gradients
        conv((1, 2, 9, 9), (2, 2, 1, 1), stride=4, padding=2),  # 1x1 kernel, stride >> 1, padded input
        conv((1, 2, 8, 9), (2, 2, 3, 2), stride=(3, 2), padding=(1, 0), dilation=(2, 3)),  # every axis different
    ],
    "max_pool2d": [
        pool("max_pool2d", (1, 1, 4, 4), 2),
        pool("max_pool2d", (1, 1, 4, 4), 2, values={"x": "ties"}),  # ties inside one window
        pool("max_pool2d", (1, 1, 6, 7), 1, stride=2, ceil_mode=True),  # #45357 extra -inf row
        # #114216 used (1, 1, 1, 224): on its H axis the only window reads padding alone (torch returns -inf and
        # its backward writes out of bounds); refimpl rejects that (tests/test_pooling.py). H = 3 keeps the W axis.
        pool("max_pool2d", (1, 1, 3, 224), 3, stride=6, padding=1, dilation=2, ceil_mode=True),
        pool("max_pool2d", (1, 1, 1, 8), 2, stride=2, padding=1, ceil_mode=True, values={"x": "ties"}),  # #114219
        pool("max_pool2d", (1, 1, 5, 5), 3, stride=2, padding=1, values={"x": "ties"}),  # #122024 shared arg-max adds
        pool("max_pool2d", (1, 1, 1, 1), 1),  # 1x1
        pool("max_pool2d", (2, 2, 5, 5), 2, stride=2, ceil_mode=True),  # a ceil_mode window hanging over the edge
    ],
    "avg_pool2d": [
        pool("avg_pool2d", (1, 16, 4, 4), (1, 2), stride=(2, 2), padding=(0, 1), ceil_mode=True),  # #36977 NaN
        pool("avg_pool2d", (1, 1, 5, 5), 2, stride=2, padding=1, ceil_mode=True),  # #198119 overhanging divisor
        pool("avg_pool2d", (1, 2, 4, 4), 2, stride=1, padding=1),  # #188344
        pool("avg_pool2d", (1, 1, 4, 4), 2, stride=1, padding=1, divisor_override=3),  # #62636
        pool("avg_pool2d", (1, 1, 5, 5), 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        pool("avg_pool2d", (1, 1, 1, 1), 1),
    ],
    "relu": [elementwise("relu", (2, 3), values={"x": "ties"}), elementwise("relu", (1,), values={"x": "zeros"})],
    "sigmoid": [elementwise("sigmoid", (3, 4), values={"x": "logits_wide"})],
    "flatten": [elementwise("flatten", (2, 3, 2, 2)) .with_(shapes={"x": (2, 3, 2, 2), "grad_output": (2, 12)})],
    "linear": [
        Case("linear", {"x": (1, 1), "weight": (1, 1), "bias": (1,), "grad_output": (1, 1)}, {}),
        Case("linear", {"x": (3, 4), "weight": (2, 4), "bias": None, "grad_output": (3, 2)}, {}),
    ],
    "binary_cross_entropy": [
        bce("binary_cross_entropy", (2, 5), values={"input": "probabilities_edges", "target": "binary"}),
        bce("binary_cross_entropy", (2, 5), reduction="none", values={"input": "probabilities_edges", "target": "binary"}),
        bce("binary_cross_entropy", (4,), reduction="sum", values={"input": "probabilities_edges", "target": "soft"}),
    ],
    "binary_cross_entropy_with_logits": [
        bce("binary_cross_entropy_with_logits", (2, 5), values={"input": "logits_wide", "target": "binary"}),
        bce("binary_cross_entropy_with_logits", (6,), reduction="none", values={"input": "logits_wide", "target": "soft"}),
    ],
}


def examples_for(op: str, dtype: str) -> list[Case]:
    """The op's explicit examples in ``dtype``."""
    return [case.with_(dtype=dtype) for case in EXAMPLES.get(op, [])]
