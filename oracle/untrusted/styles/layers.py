"""Layer objects ("from scratch" books and NumPy libraries), through a mapping of a few lines, as the contract.

The target is ``layers:MAPPING.toml``; the mapping (read here, in the worker: it is the student's, like their
code) names the module and, per contract op, the class and where things are:

    module = "my_layers.py"          # relative to the mapping file
    relu = { new = "Relu()" }        # an activation: one line (before the [linear] table, as TOML wants)
    [linear]
    new = "Affine(W, b)"             # how to make one: W, b are the parameters in your layout; also
                                     # in_features, out_features
    layout = "in_out"                # your W is (in, out) (the contract's weight transposed); "out_in" otherwise
    weight = "W"                     # the attributes holding the parameters, set before each call
    bias = "b"
    grad_weight = "dW"               # the attributes the backward leaves the parameter gradients in
    grad_bias = "db"                 # (default: "d" + the parameter's attribute: dW, db; dweights, dbiases)

Optional keys of any op: ``forward``/``backward`` (method names; default ``forward``/``backward``),
``output``/``dx`` (the attribute the method leaves its result in, when it returns nothing: ``output``,
``dinputs``), ``zero_grad`` (a method that flushes accumulated gradients: called before each backward, as a
training loop does).

One layer object is made per op and parameter shape and reused for every call, as in training: a layer
whose gradients accumulate across calls without a ``zero_grad`` to flush them gives the second call's
gradients wrong, and is caught.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np


#: the mapping keys each op may have
KEYS = {"new", "layout", "weight", "bias", "grad_weight", "grad_bias", "forward", "backward", "output", "dx", "zero_grad"}
#: the ops a mapping may name
OPS = ("linear", "relu", "sigmoid", "tanh")


def read_mapping(path: str) -> tuple[dict, Path]:
    """The mapping at ``path`` (TOML) and the folder it is in; ValueError naming the first bad entry."""
    file = Path(path)
    with open(file, "rb") as f:
        mapping = tomllib.load(f)
    if not isinstance(mapping.get("module"), str):
        raise ValueError(f"{path}: 'module' must name your file, e.g. module = \"my_layers.py\"")
    for op, entry in mapping.items():
        if op == "module":
            continue
        if op not in OPS:
            raise ValueError(f"{path}: [{op}]: not an op layer objects can be checked as ({', '.join(OPS)})")
        if not isinstance(entry, dict) or not isinstance(entry.get("new"), str):
            raise ValueError(f"{path}: [{op}] needs new = \"YourClass(...)\"")
        unknown = set(entry) - KEYS
        if unknown:
            raise ValueError(f"{path}: [{op}]: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")
        if entry.get("layout", "out_in") not in ("out_in", "in_out"):
            raise ValueError(f"{path}: [{op}]: layout must be \"out_in\" or \"in_out\", got {entry['layout']!r}")
    return mapping, file.resolve().parent


def _result(layer, returned, attribute: str | None, what: str):
    if attribute:
        if not hasattr(layer, attribute):
            raise AttributeError(f"{what} left no attribute {attribute!r} (the mapping's entry)")
        return getattr(layer, attribute)
    return returned


class Layer:
    """One contract op made of the student's layer class, as the mapping says."""

    def __init__(self, module, op: str, entry: dict):
        self.module, self.op, self.entry = module, op, entry
        self.objects: dict = {}

    def _params(self, weight, bias):
        if weight is None:
            return None, None
        w = weight.T.copy() if self.entry.get("layout", "out_in") == "in_out" else weight.copy()
        b = bias.copy() if bias is not None else np.zeros(weight.shape[0], dtype=weight.dtype)
        return w, b

    def _layer(self, weight, bias):
        """The layer object for these parameter shapes (made once, as in training), holding these parameters."""
        key = None if weight is None else weight.shape
        w, b = self._params(weight, bias)
        if key not in self.objects:
            names = {n: getattr(self.module, n) for n in dir(self.module) if not n.startswith("_")}
            if weight is not None:
                names.update(W=w, b=b, in_features=weight.shape[1], out_features=weight.shape[0])
            self.objects[key] = eval(self.entry["new"], {"np": np}, names)  # noqa: S307 - the student's mapping
        layer = self.objects[key]
        for name, value in (("weight", w), ("bias", b)):
            attribute = self.entry.get(name)
            if attribute and value is not None:
                current = getattr(layer, attribute, None)
                shape = current.shape if isinstance(current, np.ndarray) and current.size == value.size else value.shape
                setattr(layer, attribute, value.reshape(shape).copy())
        return layer

    def forward(self, x, weight=None, bias=None):
        layer = self._layer(weight, bias)
        method = self.entry.get("forward", "forward")
        return layer, _result(layer, getattr(layer, method)(x), self.entry.get("output"), f"{method}()")

    def backward(self, grad_output, x, weight=None, bias=None):
        layer, _ = self.forward(x, weight, bias)
        if self.entry.get("zero_grad"):
            getattr(layer, self.entry["zero_grad"])()
        method = self.entry.get("backward", "backward")
        dx = _result(layer, getattr(layer, method)(grad_output), self.entry.get("dx"), f"{method}()")
        if weight is None:
            return dx
        grads = []
        for name, like in (("grad_weight", weight), ("grad_bias", bias)):
            param = self.entry.get(name.removeprefix("grad_"))
            attribute = self.entry.get(name) or (f"d{param}" if param else None)  # dW, dweights: the books' names
            if like is None:
                grads.append(None)
                continue
            if not attribute:
                raise NotImplementedError(f"the mapping's [{self.op}] names no {name} attribute")
            g = np.asarray(getattr(layer, attribute))
            if name == "grad_weight" and self.entry.get("layout", "out_in") == "in_out":
                g = g.T
            grads.append(g.reshape(like.shape) if g.size == like.size else g)
        return (dx, *grads)


def functions_from(path: str, load) -> dict:
    """The contract's functions the mapping at ``path`` makes; ``load(file)`` imports the module it names (the
    worker's ``load``)."""
    mapping, folder = read_mapping(path)
    module = load(str(folder / mapping["module"]))
    out: dict = {}
    for op in OPS:
        if op not in mapping:
            continue
        layer = Layer(module, op, mapping[op])
        if op == "linear":
            out["linear"] = lambda x, weight, bias=None, _l=layer: _l.forward(x, weight, bias)[1]
            out["linear_backward"] = lambda g, x, weight, bias=None, _l=layer: _l.backward(g, x, weight, bias)
        else:
            out[op] = lambda x, _l=layer: _l.forward(x)[1]
            out[f"{op}_backward"] = lambda g, x, _l=layer: _l.backward(g, x)
    return out


def functions(module) -> dict:
    """Not used for layer objects: the worker loads the mapping (``functions_from``), which names the module."""
    raise TypeError("layer objects are loaded from their mapping file: the target is layers:MAPPING.toml")


TEMPLATE = '''# bpcheck mapping for layer objects: bpcheck verify --style layers THIS_FILE
module = "my_layers.py"   # your file, relative to this one
relu = { new = "ReLU()" } # one line per activation (relu, sigmoid, tanh), before the [linear] table
[linear]                  # a dense layer
new = "Dense(W, b)"       # how to make one: W, b in your layout; or in_features, out_features
layout = "in_out"         # your W is (in, out); "out_in" if it is (out, in), like torch's
weight = "W"              # the parameters' attributes; their gradients' default to dW, db
bias = "b"                # (grad_weight = "...", grad_bias = "..." if named otherwise)
# forward/backward = method names; output/dx = attributes if they return nothing (output, dinputs)
# zero_grad = "zero_grad" # a method flushing accumulated gradients, called before each backward
'''
