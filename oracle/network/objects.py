"""The recorded layers of a list of layer objects (``oracle.untrusted.network_layers``) as the contract's ops.

Each record holds one layer object's forward and backward in the student's form, and its op and layout from the
layers style's mapping. Converted as ``oracle.untrusted.styles.layers`` converts (the other direction):

    linear         x of shape (N, d1, ..., dk) flattened to (N, D) (exact); weight = W.T for layout "in_out"
                   (W of shape (in, out)), W for "out_in"; bias and grad_bias flattened ((1, out) -> (out,));
                   grad_weight = dW.T for "in_out"; dx reshaped like the flattened x
    relu, sigmoid, tanh   x, the output, dout and dx as they are
    cross_entropy  the student's loss(scores, y) -> (loss, dscores): input = scores, target = y,
                   reduction 'mean', grad_output = 1

A record that cannot be converted keeps the reason and is reported as not checked.
"""

from __future__ import annotations

import numpy as np

from oracle.network.records import LayerCall
from oracle.untrusted.protocol import type_name


def _array(value, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{what} is a {type_name(value)}, not an array")
    return value


def _linear(call: LayerCall, layout: str, args, dout, result) -> None:
    x, w, b = (_array(a, n) for a, n in zip(args, ("x", "weight", "bias")))
    if w.ndim != 2:
        raise TypeError(f"the weight has shape {w.shape}, not (in, out) or (out, in)")
    weight = np.ascontiguousarray(w.T) if layout == "in_out" else w
    flat = x.reshape(x.shape[0], -1)
    call.arrays = {"x": flat, "weight": weight, "bias": b.reshape(-1) if b.size == weight.shape[0] else b}
    dout = _array(dout, "dout")
    call.arrays["grad_output"] = dout.reshape(dout.shape[0], -1)
    if not (isinstance(result, tuple) and len(result) == 3):
        raise TypeError("the backward's dx and parameter gradients were not recorded")
    dx, dw, db = result
    if isinstance(dx, np.ndarray) and dx.size == flat.size:
        dx = dx.reshape(flat.shape)
    if isinstance(dw, np.ndarray) and layout == "in_out" and dw.ndim == 2:
        dw = np.ascontiguousarray(dw.T)
    if isinstance(db, np.ndarray) and db.size == weight.shape[0]:
        db = db.reshape(-1)
    call.grads = (dx, dw, db)


def layer_call(record, position: int) -> LayerCall:
    """The ``LayerCall`` of one recorded layer object (or the student's loss), numbered ``position``."""
    _, label, source, op, layout, args, names, output, dout, result, order, mapped = (list(record) + [None] * 12)[:12]
    loss = op == "cross_entropy"
    call = LayerCall(position, str(label), str(label) if loss else f"{label}.backward", str(source or ""), op,
                     backward_order=order if type(order) is int else None)
    call.params = {k: v for k, v in zip(("x", "weight", "bias"), names or []) if v}
    if loss:
        call.not_alone = "a loss function is checked in the network only (the layers style has no cross_entropy)"
    elif mapped != label:
        call.not_alone = (f"its class {label} is not the mapping's {mapped} (a subclass): the mapping alone would "
                          f"check {mapped}")
    try:
        if order is None:
            raise LookupError("its backward was not called in this pass")
        if op == "linear":
            _linear(call, layout, list(args), dout, result)
        elif loss:
            scores, y = _array(args[0], "scores"), _array(args[1], "y")
            call.arrays = {"input": scores, "target": y.astype(np.int64), "grad_output": np.array(1.0)}
            call.config = {"reduction": "mean"}
            output = np.asarray(output, np.float64) if type(output) in (float, int) else output
            call.grads = result
        elif op in ("relu", "sigmoid", "tanh"):
            call.arrays = {"x": _array(args[0], "x"), "grad_output": _array(dout, "dout")}
            call.grads = result[0] if isinstance(result, tuple) and len(result) == 1 else result
        else:
            raise LookupError(f"no conversion for {op}")
        call.output = output
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        call.not_checked = str(exc)
    return call
