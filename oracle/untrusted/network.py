"""A student's whole model, in the worker: build it, set its parameters, run its ``loss(X, y)``, record its layers.

The target ``network:{json}`` (made by ``oracle.network.target``) names the model's file, how to build it
(``factory``: a function of the file returning the model; or ``class`` with keyword ``kwargs``) and the style of
its layers (``cs231n``: function pairs with a cache, ``oracle.untrusted.styles.calls``; ``layers``: a list of layer objects,
``oracle.untrusted.network_layers``). ``load`` gives the worker
two functions, the only ones the judge calls:

    network_params()                      -> (names, arrays, hints)   the model's ``params``, in order, and plain
                                                                       hints (``input_dim``, ``num_classes``)
    network_run(names, arrays, X, y, rec) -> (loss, grad names, grads, records)
                                             the parameters set to ``arrays``, ``model.loss(X, y)`` run;
                                             with ``rec``, every layer call it made (``Recorder``)

Recording: every function of the student's modules (those imported to build the model, outside the
installed packages) named in ``calls.RECORDED`` is replaced, in each module that holds it, by a wrapper
that calls it and keeps copies of what went in and came out: a forward's arguments (a ``conv_param`` dict
as ``("dict", [(key, value), ...])``) and output, the parameters among its arguments (by identity with
``model.params``, else by equal values), and a backward's ``dout`` and results, paired with its forward by
the cache it was handed (the same object the forward returned). Only the outermost recorded call counts
(a ``spatial_batchnorm_forward`` that calls ``batchnorm_forward`` is one layer). The cache itself never
leaves the worker. Nothing of the judge is imported here.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import types
from pathlib import Path

import numpy as np

from oracle.untrusted.styles.calls import BACKWARDS, FORWARDS, RECORDED

PREFIX = "network:"
NAMES = ("network_params", "network_run")


def is_network(target: str) -> bool:
    return target.startswith(PREFIX)


def plain(value):
    """``value`` as the protocol carries it: arrays copied, dicts as ``("dict", [(key, value), ...])``, NumPy
    scalars as Python ones; anything else as it is (it crosses by its type's name)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return ("dict", [(str(k), plain(v)) for k, v in value.items()])
    if type(value) in (tuple, list):
        return type(value)(plain(v) for v in value)
    return value


def _student_modules(before: set[str]) -> list[types.ModuleType]:
    """The modules imported since ``before`` that are the student's: not installed packages, not bpcheck's."""
    installed = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out = []
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if not path or name.startswith("oracle"):
            continue
        resolved = str(Path(path).resolve())
        if "site-packages" in resolved or any(resolved.startswith(p + "/") for p in installed):
            continue
        out.append(module)
    return out


class Recorder:
    """The layer calls of one ``loss(X, y)`` (see the module docstring); ``records`` as plain data."""

    def __init__(self):
        self.on = False
        self.records: list[tuple] = []
        self.caches: list = []  # the forward's cache per record (None for backward records), kept alive
        self.paired: set[int] = set()
        self.params: dict = {}
        self.local = threading.local()
        self.wrappers: dict[int, object] = {}

    def reset(self, params: dict, on: bool) -> None:
        self.records, self.caches, self.paired, self.params, self.on = [], [], set(), params, on

    def _param_names(self, args: tuple) -> list:
        names = []
        for a in args:
            found = None
            if isinstance(a, np.ndarray):
                found = next((n for n, p in self.params.items() if p is a), None)
                if found is None:
                    found = next((n for n, p in self.params.items() if isinstance(p, np.ndarray)
                                  and p.shape == a.shape and p.dtype == a.dtype and np.array_equal(p, a)), None)
            names.append(found)
        return names

    def _source(self, fn) -> str:
        module = sys.modules.get(getattr(fn, "__module__", ""), None)
        return str(getattr(module, "__file__", "") or "")

    def wrap(self, fn):
        """The recording wrapper of ``fn`` (one per function, however many modules hold it)."""
        if id(fn) in self.wrappers:
            return self.wrappers[id(fn)]
        name = fn.__name__
        recorder = self

        @functools.wraps(fn)
        def recorded(*args, **kwargs):
            depth = getattr(recorder.local, "depth", 0)
            if not recorder.on or depth:
                return fn(*args, **kwargs)
            recorder.local.depth = depth + 1
            given = args + tuple(kwargs[a] for a in FORWARDS.get(name, {}).get("args", ())[len(args):] if a in kwargs)
            try:
                before = plain(given[:1] if name in BACKWARDS else given)
                result = fn(*args, **kwargs)
            finally:
                recorder.local.depth = depth
            recorder._record(fn, name, given, before, result)
            return result

        recorded.__bpcheck_original__ = fn
        self.wrappers[id(fn)] = recorded
        self.wrappers[id(recorded)] = recorded
        return recorded

    def _record(self, fn, name: str, args: tuple, before, result) -> None:
        if name in FORWARDS and FORWARDS[name].get("loss"):
            self.records.append(("loss", name, self._source(fn), -1, before, self._param_names(args), plain(result)))
            self.caches.append(None)
        elif name in FORWARDS:
            out, cache = (result if isinstance(result, tuple) and len(result) == 2 else (result, None))
            self.records.append(("forward", name, self._source(fn), -1, before, self._param_names(args), plain(out)))
            self.caches.append(cache)
        else:  # a backward: (dout, cache)
            cache = args[1] if len(args) > 1 else None
            forward = BACKWARDS[name]
            of = next((i for i in range(len(self.records) - 1, -1, -1)
                       if self.records[i][0] == "forward" and self.records[i][1] == forward
                       and i not in self.paired and self.caches[i] is cache), -1)
            if of >= 0:
                self.paired.add(of)
            self.records.append(("backward", name, self._source(fn), of, before[:1], [], plain(result)))
            self.caches.append(None)

    def install(self, modules: list[types.ModuleType]) -> int:
        """Replace every recorded function in ``modules`` by its wrapper; how many bindings were replaced."""
        count = 0
        for module in modules:
            for attr, value in list(vars(module).items()):
                if isinstance(value, types.FunctionType) and value.__name__ in RECORDED \
                        and not hasattr(value, "__bpcheck_original__"):
                    setattr(module, attr, self.wrap(value))
                    count += 1
        return count


def _spec(target: str) -> dict:
    try:
        spec = json.loads(target[len(PREFIX):])
    except ValueError as exc:
        raise ValueError(f"malformed network target: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("file"), str):
        raise ValueError("a network target names the model's file")
    return spec


def _hint(model, name: str):
    value = getattr(model, name, None)
    value = plain(value)
    ok = value is None or type(value) in (int, str) or (type(value) in (tuple, list) and all(type(v) is int for v in value))
    return value if ok else None


def adapt(target: str, load) -> types.SimpleNamespace:
    """The model named by ``target`` built in this process, behind ``network_params`` and ``network_run``.

    ``load`` is the worker's own module loader (a ``.py`` path or a dotted name).
    """
    spec = _spec(target)
    if spec.get("style") == "layers":  # a list of layer objects, through the layers style's mapping
        from oracle.untrusted import network_layers  # noqa: PLC0415

        return network_layers.adapt(spec, load)
    before = set(sys.modules)
    module = load(spec["file"])
    if spec.get("factory"):
        build = getattr(module, spec["factory"], None)
        if not callable(build):
            raise AttributeError(f"{spec['file']} has no function {spec['factory']!r}")
        model = build()
    else:
        cls = getattr(module, spec.get("class") or "", None)
        if not callable(cls):
            raise AttributeError(f"{spec['file']} has no class {spec.get('class')!r}")
        model = cls(**(spec.get("kwargs") or {}))
    params = getattr(model, "params", None)
    if not isinstance(params, dict) or not callable(getattr(model, "loss", None)):
        raise TypeError("the model must have a dict `params` and a method `loss(X, y)` returning (loss, grads), "
                        f"as CS231n's model classes; got {type(model).__name__}")
    recorder = Recorder()
    recorder.install(_student_modules(before))

    def network_params():
        names = [str(n) for n in params]
        arrays = [plain(params[n]) for n in params]
        hints = [(h, _hint(model, h)) for h in ("input_dim", "num_classes")]
        return names, arrays, hints

    def network_run(names, arrays, X, y, record=False):
        for name, array in zip(names, arrays):
            model.params[name] = array
        recorder.install(_student_modules(before))  # modules the first call imported lazily
        recorder.reset(model.params, bool(record))
        try:
            result = model.loss(X, y)
        finally:
            recorder.on = False
        if not isinstance(result, tuple) or len(result) != 2:
            got = f"a tuple of {len(result)}" if isinstance(result, tuple) else type(result).__name__
            raise TypeError(f"model.loss(X, y) must return (loss, grads), got {got}")
        loss, grads = result
        if not isinstance(grads, dict):
            raise TypeError(f"model.loss(X, y) must return grads as a dict, got {type(grads).__name__}")
        grad_names = [str(n) for n in grads]
        return (plain(loss), grad_names, [plain(grads[n]) for n in grads],
                recorder.records if record else None)

    return types.SimpleNamespace(network_params=network_params, network_run=network_run)
