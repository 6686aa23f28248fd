"""A student's network as a list of layer objects, in the worker: build it, set its parameters, run it, record it.

The target's spec (``oracle.network.cli.target`` with ``--style layers``) names the model's file, its ``factory``
(a function without arguments returning the list of layer objects, first layer first), the ``mapping`` (the
TOML of ``bpcheck verify --style layers``, ``oracle.untrusted.styles.layers``: which class is which op, the
attributes of the parameters and their gradients, the method names) and the ``loss``: a function of the file,
``loss(scores, y) -> (loss, dscores)``, judged as the contract's ``cross_entropy`` (softmax, mean over the batch);
without one, bpcheck's own softmax cross-entropy (mean), which is not judged.

A layer object is the mapping's op whose class (the name ``new`` calls) is its class or one of its bases. Its
parameters are named ``"{position}.{attribute}"`` (``"3.weights"``), in the student's own layout and shape.

``network_run(names, arrays, X, y, record)`` sets the parameters, runs the forward through the list, the loss,
and (with ``record``) the backward in reverse order, calling ``zero_grad`` first where the mapping names one.
With ``record`` the whole pass runs twice on the same objects and the second is the one returned: a training
loop's second step, so gradients that accumulate across steps without a ``zero_grad`` come out wrong. Without
``record`` only the loss is computed (the end-to-end check's finite differences need nothing else).

Each layer is recorded as ``("layer", label, source, op, layout, args, param names, output, dout, result, order,
mapped)``:
``args`` the forward's arrays as the student holds them (x, weight, bias), ``result`` the backward's dx and
parameter gradients as the attributes hold them, ``order`` its place in the backward pass (the loss is 0), ``mapped`` the mapping's class it was recognised by. The
judge converts them (``oracle.network.objects``). Nothing of the judge is imported here.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np

from oracle.untrusted.styles.layers import OPS, _result, read_mapping

CALLEE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")


def _class_names(mapping: dict) -> dict[str, str]:
    """The class name each op's ``new`` calls -> the op."""
    out = {}
    for op in OPS:
        entry = mapping.get(op)
        if isinstance(entry, dict):
            match = CALLEE.match(entry["new"])
            if match:
                out[match.group(1).rsplit(".", 1)[-1]] = op
    return out


def _copy(value):
    return np.array(value, copy=True) if isinstance(value, np.ndarray) else value


def softmax_cross_entropy(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """bpcheck's own loss: ``L = mean_n(-log softmax(s_n)[y_n])``, ``dL/ds = (softmax(s) - onehot(y)) / N``."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = scores.shape[0]
    dscores = np.exp(log_p)
    dscores[np.arange(n), y] -= 1
    return float(-log_p[np.arange(n), y].mean()), dscores / n


class Slot:
    """One layer object of the list and what the mapping says of it."""

    def __init__(self, position: int, layer, op: str, entry: dict, mapped: str):
        self.position, self.layer, self.op, self.entry, self.mapped = position, layer, op, entry, mapped
        self.attributes = [a for a in (entry.get("weight"), entry.get("bias")) if a] if op == "linear" else []
        if op == "linear" and len(self.attributes) != 2:
            raise ValueError(f"the mapping's [linear] must name the attributes weight and bias (layer {position})")
        for attribute in self.attributes:
            if not isinstance(getattr(layer, attribute, None), np.ndarray):
                raise TypeError(f"layer {position} ({type(layer).__name__}) has no array attribute {attribute!r}")

    def names(self) -> list[str]:
        return [f"{self.position}.{a}" for a in self.attributes]

    def grad_attributes(self) -> list[str]:
        return [self.entry.get(f"grad_{k}") or f"d{self.entry[k]}" for k in ("weight", "bias")] if self.attributes else []

    def forward(self, x):
        method = self.entry.get("forward", "forward")
        return _result(self.layer, getattr(self.layer, method)(x), self.entry.get("output"), f"{method}()")

    def backward(self, dout):
        if self.entry.get("zero_grad"):
            getattr(self.layer, self.entry["zero_grad"])()
        method = self.entry.get("backward", "backward")
        dx = _result(self.layer, getattr(self.layer, method)(dout), self.entry.get("dx"), f"{method}()")
        grads = []
        for attribute in self.grad_attributes():
            if not hasattr(self.layer, attribute):
                raise AttributeError(f"layer {self.position} ({type(self.layer).__name__}): {method}() left no "
                                     f"attribute {attribute!r} (the mapping's grad_weight/grad_bias)")
            grads.append(_copy(getattr(self.layer, attribute)))
        return dx, grads


def adapt(spec: dict, load):
    """``network_params`` and ``network_run`` (see ``oracle.untrusted.network``) of the list of layer objects."""
    if not spec.get("factory") or not isinstance(spec.get("mapping"), str):
        raise ValueError("a network of layer objects needs a factory and a mapping")
    mapping, _ = read_mapping(spec["mapping"])
    module = load(spec["file"])
    build = getattr(module, spec["factory"], None)
    if not callable(build):
        raise AttributeError(f"{spec['file']} has no function {spec['factory']!r}")
    net = build()
    if not isinstance(net, (list, tuple)) or not net:
        raise TypeError(f"{spec['factory']}() must return a non-empty list of layer objects, got {type(net).__name__}")
    loss_fn = None
    if spec.get("loss"):
        loss_fn = getattr(module, spec["loss"], None)
        if not callable(loss_fn):
            raise AttributeError(f"{spec['file']} has no function {spec['loss']!r} (--loss)")
    ops = _class_names(mapping)
    slots = []
    for position, layer in enumerate(net, 1):
        mapped = next((c.__name__ for c in type(layer).__mro__ if c.__name__ in ops), None)
        if mapped is None:
            raise TypeError(f"layer {position} is a {type(layer).__name__}, a class the mapping does not name "
                            f"(it names {', '.join(sorted(ops)) or 'none'})")
        slots.append(Slot(position, layer, ops[mapped], mapping[ops[mapped]], mapped))
    by_name = {n: (s, a) for s in slots for n, a in zip(s.names(), s.attributes)}
    dense = [s for s in slots if s.op == "linear"]

    def features(slot: Slot, which: int) -> int:
        w = getattr(slot.layer, slot.entry["weight"])
        in_out = slot.entry.get("layout", "out_in") == "in_out"
        return int(w.shape[0 if in_out == (which == 0) else 1]) if w.ndim == 2 else 0

    def network_params():
        names = list(by_name)
        arrays = [_copy(getattr(s.layer, a)) for s, a in by_name.values()]
        hints = [("input_dim", [features(dense[0], 0)] if dense and features(dense[0], 0) else None),
                 ("num_classes", features(dense[-1], 1) if dense and features(dense[-1], 1) else None)]
        return names, arrays, hints

    def source(obj) -> str:
        return str(getattr(sys.modules.get(getattr(obj, "__module__", ""), None), "__file__", "") or "")

    def one_pass(X, y, backward: bool):
        records, x = [], X
        for slot in slots:
            out = slot.forward(x)
            args = (_copy(x), *(_copy(getattr(slot.layer, a)) for a in slot.attributes))
            records.append([slot, args, _copy(out)])
            x = out
        if loss_fn is None:
            loss, dscores = softmax_cross_entropy(np.asarray(x, np.float64), y)
        else:
            result = loss_fn(x, y)
            if not isinstance(result, tuple) or len(result) != 2:
                raise TypeError(f"{spec['loss']}(scores, y) must return (loss, dscores)")
            loss, dscores = result
        loss = loss.item() if isinstance(loss, np.generic) or (isinstance(loss, np.ndarray) and loss.size == 1) else loss
        if not backward:
            return loss, {}, None
        by_position, grads, dout = {}, {}, dscores
        for order, (slot, args, output) in enumerate(reversed(records), 1 if loss_fn is not None else 0):
            dx, param_grads = slot.backward(dout)
            grads.update(zip(slot.names(), param_grads))
            by_position[slot.position] = ("layer", type(slot.layer).__name__, source(type(slot.layer)), slot.op,
                                          slot.entry.get("layout", "out_in"), args, [None, *slot.names()], output,
                                          _copy(dout), (_copy(dx), *param_grads), order, slot.mapped)
            dout = dx
        out = [by_position[p] for p in sorted(by_position)]  # forward order, as the judge numbers the layers
        if loss_fn is not None:
            out.append(("layer", loss_fn.__name__, source(loss_fn), "cross_entropy", None, (_copy(x), _copy(y)),
                        [None, None], loss, None, _copy(dscores), 0, None))
        return loss, grads, out

    def network_run(names, arrays, X, y, record=False):
        for name, array in zip(names, arrays):
            slot, attribute = by_name[name]
            setattr(slot.layer, attribute, np.array(array, copy=True))
        if record:
            one_pass(X, y, True)  # a training loop's first step; the second is the one judged
        loss, grads, records = one_pass(X, y, bool(record))
        names = list(grads)
        return loss, names, [grads[n] for n in names], records

    return types.SimpleNamespace(network_params=network_params, network_run=network_run)
