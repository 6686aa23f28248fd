"""Each layer of the pass judged on the activations that actually reached it, and the first broken one.

For a recorded ``LayerCall`` the reference is torch on the same arrays (the recorded input, parameters and
``dout``), and the comparison is the per-op checks' own (``oracle.checks.compare_forward`` /
``compare_backward``: the per-element tolerances derived from each element's term scale, the imprecise band,
the course's conventions from ``oracle.course``: under cs231n's, a max-pool tie may go to the first maximum or to
every tied one). Each gradient is also judged on its own (``gradient_statuses``), so the report says whether a
layer's dx or its parameter gradients are wrong.

Why the first broken layer *in backward order* is the one to fix: the backward pass runs the layers last to
first, each handing its dx to the layer before it as that layer's dout. A wrong dx in layer k makes the dout of
every earlier layer wrong, so their parameter gradients come out wrong end to end even where their own backward
is right; a layer judged here on the dout it actually received is judged on its own rule only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from oracle import checks, course, torch_oracle
from oracle.network.records import LayerCall
from oracle.ops import SPECS
from oracle.verdict import FAIL, Verdict


class Recorded:
    """A result already in hand (the recorded call's), read like a submitted call (``Pending.result``)."""

    def __init__(self, value):
        self.value = value

    def result(self, index: int):
        return self.value


@dataclass
class LayerVerdict:
    call: LayerCall
    forward: Verdict | None = None
    backward: Verdict | None = None
    grad_status: dict = field(default_factory=dict)   # "grad_x" -> pass / imprecise / FAIL
    expected: dict = field(default_factory=dict)      # "x" -> torch's gradient (float64), for the heat map

    @property
    def broken(self) -> bool:
        return bool(self.backward is not None and self.backward.failed)

    @property
    def forward_broken(self) -> bool:
        return bool(self.forward is not None and self.forward.failed)

    def wrong(self) -> list[str]:
        """The gradients out of tolerance (``["grad_x"]``)."""
        return [name for name, status in self.grad_status.items() if status == FAIL]


def _one_grad(spec, grads: dict, got, name: str):
    """The reference and the result with every gradient but ``name`` left out (None), to judge it alone."""
    only = {n: (g if n == name else None) for n, g in grads.items()}
    if len(spec.differentiable) == 1:
        return only, got
    values = list(got) if isinstance(got, (tuple, list)) else [got]
    return only, tuple(v if n == name else None for n, v in zip(spec.differentiable, values))


def judge(call: LayerCall) -> LayerVerdict:
    """The forward and backward verdicts of one recorded layer call (None where the call is not checked)."""
    out = LayerVerdict(call)
    if call.not_checked:
        return out
    spec = SPECS[call.op]
    case = call.case()
    arrays = call.arrays
    inputs = {name: arrays[name] for name in spec.inputs}
    expected, grads = torch_oracle.run(call.op, inputs, call.config, spec.differentiable, arrays["grad_output"])
    out.expected = grads
    out.forward = checks._verdict_of(
        lambda: checks.compare_forward(None, spec, case, arrays, expected, running=Recorded(call.output)),
        spec, "forward", case)
    references = course.backward_references(call.op, case, arrays, grads)
    for note, reference in references:  # torch's, or one a course's convention accepts
        verdict = checks._verdict_of(
            lambda: checks.compare_backward(None, spec, case, arrays, reference, running=Recorded(call.grads)),
            spec, "backward", case)
        if out.backward is None or not verdict.failed:
            out.backward, out.expected = verdict, reference
            if note and verdict.failed:
                verdict.hints.append(note)
        if not verdict.failed:
            break
    for name in spec.differentiable:
        if out.expected.get(name) is None:
            continue
        only, got = _one_grad(spec, out.expected, call.grads, name)
        one = checks._verdict_of(
            lambda: checks.compare_backward(None, spec, case, arrays, only, running=Recorded(got)), spec, "backward", case)
        out.grad_status[f"grad_{name}"] = one.status
    for verdict in (out.forward, out.backward):
        verdict.case = None  # its recipe's drawn values are not the recorded ones: not a reproduction
    return out


def first_broken(verdicts: list[LayerVerdict]) -> LayerVerdict | None:
    """The first layer, in the order the backward pass ran them, whose backward FAILs."""
    ran = sorted((v for v in verdicts if v.call.backward_order is not None), key=lambda v: v.call.backward_order)
    return next((v for v in ran if v.broken), None)


def downstream(verdicts: list[LayerVerdict], broken: LayerVerdict) -> list[LayerVerdict]:
    """The layers whose backward ran after ``broken``'s (the earlier layers of the forward): they got its dx."""
    after = broken.call.backward_order
    return sorted((v for v in verdicts if v.call.backward_order is not None and v.call.backward_order > after),
                  key=lambda v: v.call.backward_order)


def dx_is_used(verdicts: list[LayerVerdict], broken: LayerVerdict) -> bool:
    """Whether another layer's backward ran after ``broken``'s (its dx went somewhere, not only to the input X)."""
    return bool(downstream(verdicts, broken))

