"""The layer calls a model made, as the contract's ops: what went in, what came out, in the contract's form.

The worker records each call of a layer function in the course's form (``oracle.untrusted.network``); here each
becomes a ``LayerCall``: the contract op, its arrays (``x``, ``weight``, ``bias``... and ``grad_output``, the
``dout`` the backward was handed), its configuration, and the forward's output and the backward's gradients as
the student's functions returned them, converted as the cs231n adapter converts (``oracle.untrusted.styles.cs231n``,
the other direction): ``conv_param = {'stride': s, 'pad': p}`` is ``stride=(s, s), padding=(p, p)``;
``affine_forward``'s ``w`` of shape (D, M) is the contract's ``weight.T`` and its ``x`` of shape (N, d1, ..., dk)
is flattened to (N, D) (exact); ``softmax_loss(x, y) -> (loss, dx)`` is ``cross_entropy`` with ``reduction='mean'``
and ``grad_output = 1``. A call that cannot be converted (a malformed argument, a function the contract has no op
for, a ``bn_param`` in test mode) keeps its reason and is reported as not checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oracle.case import Case
from oracle.ops import SPECS
from oracle.untrusted.protocol import type_name
from oracle.untrusted.styles.calls import FORWARDS


@dataclass
class LayerCall:
    """One layer of one forward/backward pass: the contract op's call and the student's results."""

    position: int                      # in the forward order, from 1
    function: str                      # the student's forward function (``conv_forward_naive``)
    backward_function: str | None
    source: str                        # the file that defines its backward (else its forward)
    op: str | None
    arrays: dict = field(default_factory=dict)   # the contract's inputs and grad_output
    config: dict = field(default_factory=dict)
    output: object = None              # the forward's output, as returned
    grads: object = None               # the backward's result, in the contract's order (a tuple, or one array)
    params: dict = field(default_factory=dict)   # contract input name -> the model's parameter name
    backward_order: int | None = None  # 0 for the first backward call of the pass
    not_checked: str | None = None     # why the call is not checked
    alone: str | None = None           # the target checking its function alone (default ``cs231n:{source}``)
    not_alone: str | None = None       # why its function cannot be checked alone

    @property
    def label(self) -> str:
        params = ", ".join(self.params.values())
        return f"{self.position} {self.function}" + (f" ({params})" if params else "")

    def case(self) -> Case:
        """The call as a ``Case`` recipe (its shapes and configuration; the values are the recorded ones, not its
        seed's: see ``oracle.network.isolate`` for a case rebuilt from drawn values)."""
        shapes = {n: None if a is None else tuple(np.shape(a)) for n, a in self.arrays.items()}
        values = {"target": "class_indices"} if self.op == "cross_entropy" else {}
        return Case(self.op, shapes, dict(self.config), "float64", 0, values)


def _dict(value) -> dict | None:
    """A recorded dict (``("dict", [(key, value), ...])``) as a dict; None for anything else."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == "dict" and isinstance(value[1], list):
        return {str(k): v for k, v in value[1]}
    return None


def _array(value, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} is a {type_name(value)}, not an array")
    return value


def _int(params: dict, key: str, what: str, default=None) -> int:
    value = params.get(key, default)
    if type(value) is not int:
        raise TypeError(f"{what}[{key!r}] is {value!r}, not an int")
    return value


def _contract(function: str, args: list, result) -> tuple[str | None, dict, dict, object]:
    """``(op, arrays without grad_output, config, forward output)`` of a recorded forward call."""
    entry = FORWARDS[function]
    op = entry["op"]
    if op is None:
        raise LookupError(f"the contract has no op for {function}")
    if len(args) < len(entry["args"]):
        raise TypeError(f"{function} was called with {len(args)} arguments, expected {len(entry['args'])}")
    if op == "conv2d":
        x, w, b = (_array(a, n) for a, n in zip(args, ("x", "w", "b")))
        conv = _dict(args[3]) or {}
        s, p = _int(conv, "stride", "conv_param"), _int(conv, "pad", "conv_param")
        config = {"stride": (s, s), "padding": (p, p), "dilation": (1, 1), "groups": 1}
        return op, {"x": x, "weight": w, "bias": b}, config, result
    if op == "max_pool2d":
        pool = _dict(args[1]) or {}
        kh, kw = _int(pool, "pool_height", "pool_param"), _int(pool, "pool_width", "pool_param")
        s = _int(pool, "stride", "pool_param")
        config = {"kernel_size": (kh, kw), "stride": (s, s), "padding": (0, 0), "dilation": (1, 1), "ceil_mode": False}
        return op, {"x": _array(args[0], "x")}, config, result
    if op == "linear":
        x, w, b = (_array(a, n) for a, n in zip(args, ("x", "w", "b")))
        return op, {"x": x.reshape(x.shape[0], -1), "weight": np.ascontiguousarray(w.T), "bias": b}, {}, result
    if op == "relu":
        return op, {"x": _array(args[0], "x")}, {}, result
    if op in ("batch_norm", "layer_norm"):
        x, gamma, beta = (_array(a, n) for a, n in zip(args, ("x", "gamma", "beta")))
        param = _dict(args[3]) or {}
        if op == "batch_norm" and param.get("mode", "train") != "train":
            raise LookupError(f"{function} in mode {param.get('mode')!r} (the contract's batch_norm is the training one)")
        eps = param.get("eps", 1e-5)
        if type(eps) not in (int, float):
            raise TypeError(f"eps is {eps!r}, not a number")
        config = {"eps": float(eps)} if op == "batch_norm" else {"normalized_shape": (x.shape[-1],), "eps": float(eps)}
        return op, {"x": x, "weight": gamma, "bias": beta}, config, result
    if op == "cross_entropy":
        x, y = _array(args[0], "x"), _array(args[1], "y")
        loss = result[0] if isinstance(result, tuple) and len(result) == 2 else result
        loss = np.asarray(loss, np.float64) if type(loss) in (float, int) else loss
        return op, {"input": x, "target": y.astype(np.int64)}, {"reduction": "mean"}, loss
    raise LookupError(f"no conversion for {op}")


def _grads(op: str, arrays: dict, dout, result):
    """``(grad_output, the backward's result in the contract's order)`` of a recorded backward call."""
    if op == "linear":
        if isinstance(result, tuple) and len(result) == 3 and all(isinstance(r, np.ndarray) for r in result[:2]):
            dx, dw, db = result
            n = arrays["x"].shape[0]
            result = (dx.reshape(n, -1) if dx.size == arrays["x"].size else dx, np.ascontiguousarray(dw.T), db)
        return (dout.reshape(dout.shape[0], -1) if isinstance(dout, np.ndarray) else dout), result
    return dout, result


def layer_calls(records: list, params: list[str]) -> list[LayerCall]:
    """The ``LayerCall`` of each recorded forward (and loss), in forward order, with its backward attached."""
    calls: list[LayerCall] = []
    by_record: dict[int, LayerCall] = {}
    backward_count = 0
    for index, record in enumerate(records or []):
        kind, function, source, of, args, names, result = (list(record) + [None] * 7)[:7]
        if kind == "layer":  # a layer object, forward and backward in one record (oracle.network.objects)
            from oracle.network.objects import layer_call  # noqa: PLC0415 - it imports LayerCall from here

            calls.append(layer_call(record, len(calls) + 1))
            continue
        if kind in ("forward", "loss"):
            call = LayerCall(len(calls) + 1, function, None, str(source or ""), FORWARDS[function]["op"])
            call.params = {}
            try:
                call.op, call.arrays, call.config, call.output = _contract(function, list(args), result)
                inputs = SPECS[call.op].inputs  # the course's array arguments come first, in the contract's order
                call.params = {inputs[i]: p for i, p in enumerate((names or [])[:len(inputs)]) if p}
                if kind == "loss":
                    call.backward_function = function
                    call.backward_order = backward_count
                    backward_count += 1
                    call.arrays["grad_output"] = np.array(1.0)
                    call.grads = result[1] if isinstance(result, tuple) and len(result) == 2 else result
            except (LookupError, TypeError, ValueError, AttributeError) as exc:
                call.not_checked = str(exc)
            calls.append(call)
            by_record[index] = call
        elif kind == "backward":
            call = by_record.get(of) if isinstance(of, int) else None
            if call is None:
                continue  # a backward whose forward was not recorded: nothing to judge it against
            call.backward_function = function
            call.backward_order = backward_count
            call.source = str(source or "") or call.source  # the backward's file: it has the forward too, or imports it
            backward_count += 1
            if call.not_checked is None:
                dout = args[0] if args else None
                call.arrays["grad_output"], call.grads = _grads(call.op, call.arrays, dout, result)
    for call in calls:
        if call.not_checked is None and call.backward_function is None:
            call.not_checked = "its backward was not called in this pass"
        elif call.not_checked is None and not isinstance(call.arrays.get("grad_output"), np.ndarray):
            call.not_checked = f"its dout is a {type_name(call.arrays.get('grad_output'))}, not an array"
    return calls


def short_source(path: str) -> str:
    return Path(path).name if path else "?"

