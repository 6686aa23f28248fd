"""The broken layer on its own: its function checked by the per-op machinery at the recorded configuration, then
shrunk to the smallest configuration that still FAILs.

The layer's file is loaded in a worker of its own through the course's adapter (``cs231n:FILE``, the target
``bpcheck verify --style cs231n FILE`` uses; a layer object's through its mapping, ``layers:MAPPING.toml``), and each candidate is the per-op ``backward`` check
(``oracle.checks.backward``: torch's gradients on drawn values, the derived tolerances, the course's
conventions, the diagnosis of classic mistakes). The shrink is greedy: from the recorded shapes and
configuration, each dimension (batch, channels, filters, height, width, kernel) is cut down to 1, to half or by
one, a stride or a padding lowered, and a step is kept while the check still FAILs; conv and pool cases are
projected onto what the course's API can express (``oracle.course.steer``: one stride and pad, exact tiling).
A failure that does not reproduce on drawn values at the recorded configuration (it needs the values that
reached the layer) is said to, and nothing is shrunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from oracle import checks, course
from oracle.case import Case
from oracle.implementation import Implementation, LoadError
from oracle.network.records import LayerCall
from oracle.ops import SPECS
from oracle.untrusted.styles.constraints import reason
from oracle.verdict import Verdict

#: at most this many candidate checks in one shrink
BUDGET = 60
#: drawn seeds tried at the recorded configuration before saying the failure needs the recorded values
SEEDS = (0, 1, 2)

#: op -> input -> one letter per axis; a letter shared by two inputs is one dimension (x's C is the weight's C)
AXES = {
    "conv2d": {"x": "NCHW", "weight": "FCKL", "bias": "F"},
    "max_pool2d": {"x": "NCHW"},
    "linear": {"x": "ND", "weight": "MD", "bias": "M"},
    "batch_norm": {"x": "NCHW", "weight": "C", "bias": "C"},
    "layer_norm": {"x": "ND", "weight": "D", "bias": "D"},
    "cross_entropy": {"input": "NC", "target": "N"},
    "relu": {"x": "NCHW"},
    "sigmoid": {"x": "NCHW"},
    "tanh": {"x": "NCHW"},
}


@dataclass
class Isolation:
    case: Case | None
    verdict: Verdict | None
    note: str
    command: str
    tried: int = 0


def _dims(op: str, shapes: dict) -> dict[str, int]:
    dims = {}
    for name, letters in AXES[op].items():
        shape = shapes.get(name)
        if shape is not None:
            dims.update(zip(letters, shape))
    return dims


def _shapes(op: str, template: dict, dims: dict[str, int]) -> dict:
    out = {}
    for name, shape in template.items():
        letters = AXES[op].get(name)
        out[name] = shape if shape is None or letters is None else tuple(dims[ch] for ch in letters[:len(shape)])
    return out


def _with_output(case: Case, style: str = "cs231n") -> Case | None:
    """``case`` with its grad_output's shape recomputed (through the course's projection for conv and pool); None
    if the configuration is invalid or the course's API cannot express it."""
    shapes = dict(case.shapes)
    x = shapes.get("x") or shapes.get("input")
    if case.op in ("conv2d", "max_pool2d"):
        case = course.steer(style, case)
    elif case.op == "linear":
        shapes["grad_output"] = (x[0], shapes["weight"][0])
        case = replace(case, shapes=shapes)
    elif case.op == "cross_entropy":
        shapes["grad_output"] = ()
        case = replace(case, shapes=shapes)
    else:
        shapes["grad_output"] = x
        case = replace(case, shapes=shapes)
    if case.op == "layer_norm":
        case = replace(case, config={**case.config, "normalized_shape": (case.shapes["x"][-1],)})
    if any(s is not None and (len(s) and min(s) < 1) for s in case.shapes.values()):
        return None
    if reason(style, case.op, case.config, case.shapes):
        return None
    try:
        case.arrays()
        from oracle.torch_oracle import run  # noqa: PLC0415

        spec = SPECS[case.op]
        out, _ = run(case.op, {n: case.arrays()[n] for n in spec.inputs}, case.config, spec.differentiable)
    except Exception:  # noqa: BLE001 - an invalid configuration is simply not a candidate
        return None
    return case if tuple(out.shape) == tuple(case.shapes["grad_output"]) else None


def _candidates(case: Case):
    """Smaller cases than ``case``, the biggest cuts first."""
    dims = _dims(case.op, case.shapes)
    for letter, size in dims.items():
        for smaller in sorted({1, size // 2, size - 1}):
            if 1 <= smaller < size:
                yield replace(case, shapes=_shapes(case.op, case.shapes, {**dims, letter: smaller}))
    cfg = case.config
    for key in ("stride", "padding"):
        value = cfg.get(key)
        if isinstance(value, tuple) and value and value[0] > (1 if key == "stride" else 0):
            for lower in sorted({1 if key == "stride" else 0, value[0] - 1}):
                yield replace(case, config={**cfg, key: (lower,) * len(value)})
    kernel = cfg.get("kernel_size")
    if isinstance(kernel, tuple) and max(kernel) > 1:
        yield replace(case, config={**cfg, "kernel_size": tuple(max(1, k - 1) for k in kernel),
                                    "stride": tuple(max(1, k - 1) for k in kernel)})


def _size(case: Case) -> int:
    return sum(math.prod(s) for n, s in case.shapes.items() if s is not None and n != "grad_output")


def isolate(call: LayerCall, timeout: float, sandbox: bool = False) -> Isolation:
    """The smallest configuration of ``call``'s function that FAILs the backward check on its own."""
    target = call.alone or f"cs231n:{call.source}"
    style, file = target.split(":", 1)
    command = f"bpcheck verify --style {style} {file} --ops {call.op}"
    if call.not_alone:
        return Isolation(None, None, f"not checked alone: {call.not_alone}", command)
    try:
        impl = Implementation.load(target, timeout=timeout, sandbox=sandbox)
    except LoadError as exc:
        return Isolation(None, None, f"the layer's file could not be loaded on its own: {exc}", command)
    spec = SPECS[call.op]
    tried = 0
    try:
        case, verdict = None, None
        for seed in SEEDS:
            start = _with_output(replace(call.case(), seed=seed), style)
            if start is None:
                return Isolation(None, None, "the recorded configuration is not one the course's API expresses on its "
                                 "own", command)
            tried += 1
            verdict = checks.backward(impl, spec, start)
            if verdict.failed:
                case = start
                break
        if case is None:
            return Isolation(None, verdict, f"not reproduced on drawn values at the recorded configuration ({len(SEEDS)} "
                             "seeds): the failure needs the values that reached the layer", command, tried)
        shrinking = True
        while shrinking and tried < BUDGET:
            shrinking = False
            for candidate in _candidates(case):
                candidate = _with_output(candidate, style)
                if candidate is None or _size(candidate) >= _size(case) and candidate.config == case.config:
                    continue
                tried += 1
                found = checks.backward(impl, spec, candidate)
                if found.failed:
                    case, verdict, shrinking = candidate, found, True
                    break
                if tried >= BUDGET:
                    break
        return Isolation(case, verdict, "", command, tried)
    finally:
        impl.close()
