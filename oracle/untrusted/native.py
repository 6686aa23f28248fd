"""Kernels where they live: a torch or JAX module's ops, called as the contract's NumPy functions, in the worker.

``bpcheck verify torch:MODULE`` (and ``pytest --impl torch:MODULE``, ``bpcheck
replay torch:MODULE``) checks a module whose contract ops take and return torch
tensors: a module wrapping a custom ``torch.autograd.Function``, a C++/CUDA
extension op, or ``torch.nn.functional`` itself. The author writes no
``_backward`` functions: ``NAME_backward(grad_output, *inputs, **config)`` is
the vector-Jacobian product torch's autograd computes through *their* op,

    grads = torch.autograd.grad(op(*inputs, **config), differentiable inputs, grad_output)

so whatever backward they registered (``Function.backward``, a derivative
formula, an extension's kernel) is what is checked. ``NAME_double_backward``
(the second order, ``double_backward``) differentiates that backward once more
with ``create_graph=True``, as a Hessian-vector product or a gradient penalty
does.

This runs in the worker, like any code under test: the judge sees only the
NumPy arrays that come back, and validates them as it does any
implementation's. What only the native side can see is checked here and
raised as a failure of the call, with the reason: a result that is not a
tensor, a tensor on another device, an output cut from the autograd graph (no
``grad_fn``: nothing to differentiate), a gradient of the wrong dtype or
device. Inputs are made on ``BPCHECK_DEVICE`` (``cpu`` by default; the
``--device`` option of ``bpcheck verify`` and pytest sets it), with the case's
dtype; integer arrays (class indices) stay integer (``torch.long``).

``NAME_jvp(primals, tangents, **config)`` is torch's forward-mode AD through the op (dual tensors,
``torch.autograd.forward_ad``): a custom Function's ``jvp`` staticmethod is what the ``jvp`` check sees, and a
Function without one declines ("no forward-mode rule"), which the check reports as not implemented.

``jax:MODULE`` is the same for a module of JAX functions (a ``custom_vjp``, a
Pallas kernel, ``jax.nn`` itself): ``NAME_backward`` is ``jax.vjp`` through
the op, ``NAME_jvp`` is ``jax.jvp``, float64 enabled (``jax_enable_x64``) before
the module is imported. Each (op, configuration, which inputs are None) gets one
``jax.jit`` of its forward, one of its VJP and one of its JVP, so XLA compiles once per shape and configuration
and every later case of that shape reuses it.
"""

from __future__ import annotations

import os
import types

import numpy as np

#: the prefix of a target whose ops are torch functions
PREFIX = "torch:"
#: the prefix of a target whose ops are JAX functions
JAX_PREFIX = "jax:"


def device() -> str:
    """Where the native ops run: ``BPCHECK_DEVICE`` (``cpu`` when unset)."""
    return os.environ.get("BPCHECK_DEVICE", "cpu") or "cpu"


def is_native(target: str) -> bool:
    return target.startswith((PREFIX, JAX_PREFIX))


def framework(target: str) -> str | None:
    """``torch``, ``jax`` or None (NumPy functions) for a target."""
    return "torch" if target.startswith(PREFIX) else "jax" if target.startswith(JAX_PREFIX) else None


def module_of(target: str) -> str:
    """The module (dotted name or ``.py`` path) of a ``torch:MODULE`` or ``jax:MODULE`` target."""
    return target.split(":", 1)[1] if is_native(target) else target


def _torch():
    import torch  # noqa: PLC0415 - only a torch: target needs it

    return torch


def _tensor(torch, a, where: str):
    if a is None:
        return None
    a = np.asarray(a)
    t = torch.from_numpy(np.array(a, copy=True))
    return t.to(where)


def _array(torch, t, what: str, where: str) -> np.ndarray:
    """A tensor the op returned, checked and brought back as an array."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(t).__module__}.{type(t).__qualname__}")
    if t.device.type != torch.device(where).type:
        raise TypeError(f"{what} returned a tensor on {t.device}, the inputs were on {where}")
    if t.dtype == torch.bfloat16:
        raise TypeError(f"{what} returned a bfloat16 tensor, the inputs were not bfloat16")
    return t.detach().to("cpu").numpy()


def forward(torch, op, name: str):
    """The contract's NumPy forward ``name`` of the torch op ``op``."""

    def run(*arrays, **config):
        where = device()
        tensors = [_tensor(torch, a, where) for a in arrays]
        return _array(torch, op(*tensors, **config), name, where)

    run.__name__ = name
    return run


def backward(torch, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
    """The contract's ``NAME_backward``: torch autograd's vector-Jacobian product through the torch op ``op``.

    Returns the gradient of each differentiable input in order (one array alone, several as a tuple), ``None``
    for an input given as ``None``, zeros for one the output does not depend on (autograd's ``None``).
    """
    what = f"{name}_backward"

    def run(grad_output, *arrays, **config):
        where = device()
        tensors = [_tensor(torch, a, where) for a in arrays]
        wanted = [i for i, input_name in enumerate(inputs[: len(tensors)])
                  if input_name in differentiable and tensors[i] is not None]
        for i in wanted:
            tensors[i].requires_grad_(True)
        with torch.enable_grad():
            out = op(*tensors, **config)
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"{name} must return a torch.Tensor, got {type(out).__module__}.{type(out).__qualname__}")
            if not out.requires_grad:
                raise RuntimeError(
                    f"{name}'s output does not require grad although its inputs do: the op's result is cut from the "
                    "autograd graph (a .detach(), a NumPy round trip, torch.no_grad, or a Function without backward)")
            grads = torch.autograd.grad(out, [tensors[i] for i in wanted], _tensor(torch, grad_output, where),
                                        allow_unused=True)
        by_index = dict(zip(wanted, grads))
        results = []
        for i, input_name in enumerate(inputs):
            if input_name not in differentiable:
                continue
            if i >= len(tensors) or tensors[i] is None:
                results.append(None)
                continue
            g = by_index.get(i)
            if g is None:  # autograd's "unused": the output does not depend on this input
                results.append(np.zeros(tuple(tensors[i].shape), dtype=np.asarray(arrays[i]).dtype))
                continue
            if g.dtype != tensors[i].dtype:
                raise TypeError(f"{what}: the gradient of {input_name} has dtype {g.dtype}, the input {tensors[i].dtype}")
            results.append(_array(torch, g, f"{what} ({input_name})", where))
        return results[0] if len(results) == 1 else tuple(results)

    run.__name__ = what
    return run


def jvp(torch, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
    """The contract's ``NAME_jvp(primals, tangents, **config) -> (output, output_tangent)``: torch's forward-mode AD
    through ``op`` (``torch.autograd.forward_ad`` dual tensors), so a custom Function's ``jvp`` staticmethod, or the
    forward-mode formula of a built-in op, is what is checked.

    A tangent is given only for differentiable inputs (None elsewhere); an output that does not depend on any
    dual input has a zero tangent. A Function without a forward-mode rule declines the call (NotImplementedError,
    "no forward-mode rule"): the check is then not implemented, not failed.
    """
    what = f"{name}_jvp"
    from torch.autograd import forward_ad  # noqa: PLC0415

    def run(primals, tangents, **config):
        where = device()
        if len(tangents) != len(primals):
            raise ValueError(f"{what}: tangents must have one entry per primal ({len(primals)}), got {len(tangents)}")
        tensors = [_tensor(torch, a, where) for a in primals]
        with forward_ad.dual_level():
            args = list(tensors)
            for i, (input_name, t) in enumerate(zip(inputs, tangents)):
                if t is not None and tensors[i] is not None and input_name in differentiable:
                    args[i] = forward_ad.make_dual(tensors[i], _tensor(torch, t, where))
            try:
                out = op(*args, **config)
            except NotImplementedError as exc:
                raise NotImplementedError(f"{name}: no forward-mode rule ({exc})") from None
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"{name} must return a torch.Tensor, got {type(out).__module__}.{type(out).__qualname__}")
            primal, tangent = forward_ad.unpack_dual(out)
            output = _array(torch, primal, name, where)
            if tangent is None:
                return output, np.zeros_like(output)
            if tangent.dtype != primal.dtype:
                raise TypeError(f"{what}: the output tangent has dtype {tangent.dtype}, the output {primal.dtype}")
            return output, _array(torch, tangent, f"{what} (output tangent)", where)

    run.__name__ = what
    return run


#: what torch says when a backward cannot be differentiated (``@once_differentiable``, a derivative not implemented)
_NO_DOUBLE_BACKWARD = ("differentiate twice", "once_differentiable", "not implemented", "is not differentiable twice")


def _once_differentiable(grads) -> bool:
    """Whether a ``@once_differentiable`` backward produced any of ``grads``: its outputs hang off torch's ``Error``
    node (``DelayedError``), which raises only if the engine runs it, and ``torch.autograd.grad(s, inputs)`` never
    does (its inputs are fresh leaves): the second order through it would silently be 0."""
    seen, stack = set(), [g.grad_fn for g in grads if g is not None and g.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name() in ("torch::autograd::Error", "DelayedError", "Error"):
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def double_backward(torch, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
    """The contract's ``NAME_double_backward(grad_output, v, *inputs, **config)`` through torch autograd.

    With ``B(g, x) = torch.autograd.grad(op(x), x, g, create_graph=True)`` (the first-order gradients, one per
    differentiable input) and ``s = sum_i <B_i, v_i>``, returns ``(ds/dg, ds/dx_1, ...)``: ``torch.autograd.grad(s,
    (g, *x))``, zeros where ``s`` does not depend on one (autograd's "unused"), None for an input given as None.
    A first-order gradient the backward returned cut from the graph (``.detach()``, ``torch.no_grad``, a NumPy round
    trip) contributes nothing, exactly as it does in the user's own ``create_graph=True`` code: the judge compares the
    result with a reference and finds it wrong. A backward marked ``@once_differentiable``, or a derivative torch
    says it does not implement, raises NotImplementedError ("no double backward").
    """
    what = f"{name}_double_backward"

    def run(grad_output, v, *arrays, **config):
        where = device()
        if not isinstance(v, (tuple, list)) or len(v) != len(differentiable):
            raise TypeError(f"{what}: v must be a tuple of {len(differentiable)} directions ({', '.join(differentiable)}), "
                            f"got {type(v).__name__}")
        tensors = [_tensor(torch, a, where) for a in arrays]
        wanted = [i for i, input_name in enumerate(inputs[: len(tensors)])
                  if input_name in differentiable and tensors[i] is not None]
        for i in wanted:
            tensors[i].requires_grad_(True)
        g = _tensor(torch, grad_output, where).requires_grad_(True)
        directions = {i: _tensor(torch, v[differentiable.index(inputs[i])], where) for i in wanted}
        with torch.enable_grad():
            out = op(*tensors, **config)
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                raise RuntimeError(f"{name}'s output is not a tensor in the autograd graph: nothing to differentiate")
            try:
                grads = torch.autograd.grad(out, [tensors[i] for i in wanted], g, create_graph=True, allow_unused=True)
            except RuntimeError as exc:
                if any(s in str(exc) for s in _NO_DOUBLE_BACKWARD):
                    raise NotImplementedError(f"no double backward: torch says: {exc}") from None
                raise
            if _once_differentiable(grads):
                raise NotImplementedError(f"no double backward: {name}'s backward is marked @once_differentiable")
            terms = [(grad * directions[i]).sum() for i, grad in zip(wanted, grads)
                     if grad is not None and grad.requires_grad and directions[i] is not None]
            targets = [g, *[tensors[i] for i in wanted]]
            second = [None] * len(targets)
            if terms:
                try:
                    second = torch.autograd.grad(sum(terms), targets, allow_unused=True)
                except RuntimeError as exc:
                    if any(s in str(exc) for s in _NO_DOUBLE_BACKWARD):
                        raise NotImplementedError(f"no double backward: torch says: {exc}") from None
                    raise
        names = ["grad_output", *[inputs[i] for i in wanted]]
        by_name = {}
        for input_name, target, result in zip(names, targets, second):
            if result is None:
                result = torch.zeros_like(target)
            if result.dtype != target.dtype:
                raise TypeError(f"{what}: the second-order gradient of {input_name} has dtype {result.dtype}, "
                                f"the input {target.dtype}")
            by_name[input_name] = _array(torch, result, f"{what} ({input_name})", where)
        return (by_name["grad_output"], *[by_name.get(n) for n in differentiable])

    run.__name__ = what
    return run


def adapt(module, specs) -> types.SimpleNamespace:
    """The contract's NumPy functions for every op of ``specs`` (``oracle.ops.SPECS``) that ``module`` defines.

    A ``NAME_backward`` or ``NAME_jvp`` the module defines itself is ignored: what autograd runs is what is checked.
    """
    torch = _torch()
    return _contract(module, specs, lambda op, name: forward(torch, op, name),
                     lambda op, name, inputs, differentiable: backward(torch, op, name, inputs, differentiable),
                     lambda op, name, inputs, differentiable: jvp(torch, op, name, inputs, differentiable),
                     lambda op, name, inputs, differentiable: double_backward(torch, op, name, inputs, differentiable))


def _contract(module, specs, make_forward, make_backward, make_jvp, make_double_backward) -> types.SimpleNamespace:
    """``NAME``, ``NAME_backward``, ``NAME_jvp`` and ``NAME_double_backward`` made by the ``make_*`` for each op
    ``module`` defines."""
    functions = {}
    for spec in specs.values():
        op = getattr(module, spec.name, None)
        if callable(op):
            functions[spec.name] = make_forward(op, spec.name)
            functions[spec.backward_name] = make_backward(op, spec.name, spec.inputs, spec.differentiable)
            functions[spec.jvp_name] = make_jvp(op, spec.name, spec.inputs, spec.differentiable)
            functions[spec.double_backward_name] = make_double_backward(op, spec.name, spec.inputs, spec.differentiable)
    return types.SimpleNamespace(**functions)


# --------------------------------------------------------------------------- JAX


def jax_setup():
    """jax with float64 enabled and XLA's compilations kept on disk: to be called before the module under test is
    imported.

    Every new (op, configuration, shapes) compiles (XLA, 30 to 250 ms of CPU here), a call after it takes 0.05 to
    0.5 ms; the drawn cases have many shapes, and every worker of a run (and every run of the derandomized ``ci``
    profile) draws the same ones. The persistent cache (``BPCHECK_JAX_CACHE``, default ``~/.cache/bpcheck/jax``;
    empty to turn it off) shares each compilation between them: a compilation read back costs ~15 ms of CPU
    (tracing and lowering the function again, reading the executable).
    """
    import jax  # noqa: PLC0415 - only a jax: target needs it

    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("BPCHECK_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "bpcheck", "jax"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return jax


def _static_key(config: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.items()))


def _jax_array(jax, t, what: str) -> np.ndarray:
    if not isinstance(t, jax.Array):
        raise TypeError(f"{what} must return a jax.Array, got {type(t).__module__}.{type(t).__qualname__}")
    return np.asarray(t)


def _struct(a) -> tuple:
    a = np.asarray(a)
    return tuple(a.shape), a.dtype.str


#: what JAX says when asked for forward mode through a ``custom_vjp`` function
_NO_FORWARD_MODE = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"

#: the parts a compiled function of an op computes besides the op's output: its VJP, its JVP, its double backward
VJP, JVP, SECOND = "vjp", "jvp", "second"


class JaxOp:
    """One op of a ``jax:`` module, compiled for what the checks call: its forward, ``jax.vjp``, ``jax.jvp`` and
    the double backward, as the contract's NumPy functions (``forward``, ``backward``, ``jvp``, ``double_backward``).

    XLA compiles once per (function, configuration, shapes), and the drawn cases have many shapes: a run is
    compile-bound. A check calls several of these functions on one case (finite differences: the forward and the
    backward; the jvp check: the JVP, the forward and the backward; the double-backward check: the double backward
    and the backward), so one compiled function computes all that a request needs at those shapes, and each
    later call at the same shapes is served by any compiled function that computes what it asks for:

    * every compiled function also returns the op's output, ``op(*inputs)`` traced as it is (not the primal
      output of ``jax.vjp``/``jax.jvp``, which a ``custom_vjp``/``custom_jvp`` rule computes itself), so a
      forward call is served by a compiled backward or JVP, the other parts given zeros;
    * the double backward returns the first-order gradients it differentiates (``jax.vjp`` of the op, as the
      backward computes them), so the backward calls of the double-backward check reuse it.

    ``plan(calls)`` (``plan_request``) says what a request will call before its first call runs. A combined
    function whose first call raises (a ``custom_vjp`` has no forward mode, a backward that raises) is not tried
    again at those shapes: each call then gets a function of its own and raises what it raises alone.
    Each function is ``jax.jit``'d once per (parts, which inputs are None, which have a tangent, configuration).
    """

    def __init__(self, jax, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
        self.jax, self.op, self.name, self.inputs, self.differentiable = jax, op, name, inputs, differentiable
        self.jitted: dict = {}
        """(parts, present, moving, configuration) -> the jitted function"""
        self.compiled: dict = {}
        """shapes key -> {(parts, moving): the extra arguments' structures} of the functions called there"""
        self.failed: set = set()
        """(shapes key, parts, moving) whose first call raised"""
        self.planned: dict = {}
        """shapes key -> (parts, moving, extra structures): what the request being served calls there"""
        self.no_forward_mode = False
        """JAX refused a JVP of this op (a ``custom_vjp``): requests plan none"""

    # ------------------------------------------------------------------ keys

    @staticmethod
    def key(arrays, config: dict) -> tuple:
        """The shapes key of a call: which inputs are None, the configuration, each input's shape and dtype."""
        return (tuple(a is not None for a in arrays), _static_key(config),
                tuple(_struct(a) for a in arrays if a is not None))

    def wanted(self, present: tuple) -> tuple[int, ...]:
        """The positions of the differentiable inputs given (not None)."""
        return tuple(i for i, input_name in enumerate(self.inputs[: len(present)])
                     if input_name in self.differentiable and present[i])

    def moving(self, primals, tangents) -> tuple[int, ...]:
        """The positions of the differentiable inputs given with a tangent."""
        return tuple(i for i, input_name in enumerate(self.inputs[: len(primals)])
                     if input_name in self.differentiable and primals[i] is not None and tangents[i] is not None)

    # ------------------------------------------------------------------ compiled functions

    def function(self, parts: frozenset, present: tuple, moving: tuple, config: dict):
        """``kernel(given, g, dual, directions) -> {"y", "grads", "jvp", "second"}``, jitted: the op's output on the
        given inputs and, for each of ``parts``, its VJP with cotangent ``g``, its JVP with tangents ``dual`` at
        ``moving``, its double backward with directions ``directions`` (the first-order gradients with it)."""
        jitted_key = (parts, present, moving, _static_key(config))
        if jitted_key in self.jitted:
            return self.jitted[jitted_key]
        jax, op, wanted = self.jax, self.op, self.wanted(present)

        def full(given):
            it = iter(given)
            return [next(it) if p else None for p in present]

        def replaced(args, at, values):
            args = list(args)
            for i, value in zip(at, values):
                args[i] = value
            return args

        def first_order(g, args):
            out, pullback = jax.vjp(lambda *diff: op(*replaced(args, wanted, diff), **config), *[args[i] for i in wanted])
            return pullback(g.astype(out.dtype) if hasattr(out, "dtype") else g)

        def kernel(given, g, dual, directions):
            args = full(given)
            result = {"y": op(*args, **config)}
            if VJP in parts:
                result["grads"] = first_order(g, args)
            if JVP in parts:
                result["jvp"] = jax.jvp(lambda *moved: op(*replaced(args, moving, moved), **config),
                                        tuple(args[i] for i in moving), tuple(dual))
            if SECOND in parts:
                def s(g, *diff):
                    grads = first_order(g, replaced(args, wanted, diff))
                    return sum(jax.numpy.vdot(grad, d) for grad, d in zip(grads, directions)), grads

                second, grads = jax.grad(s, argnums=tuple(range(1 + len(wanted))), has_aux=True)(
                    g, *[args[i] for i in wanted])
                result["second"] = second
                result.setdefault("grads", grads)
            return result

        options = ({"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
                   if os.environ.get("BPCHECK_JAX_FAST_COMPILE") == "1" else None)
        self.jitted[jitted_key] = jax.jit(kernel, compiler_options=options)
        return self.jitted[jitted_key]

    def run(self, need: str, arrays, config: dict, extras: dict, moving: tuple = ()) -> dict:
        """The result of a compiled function that computes ``need`` (None: the output alone; or VJP, JVP, SECOND)
        on ``arrays``: one already called at these shapes, else the request's plan there, else one of its own.
        ``extras``: this call's ``g``, ``dual``, ``directions`` (the others are zeros of the structure known)."""
        key = self.key(arrays, config)
        present = key[0]
        given = [np.asarray(a) for a in arrays if a is not None]
        choices = [(parts, m) for parts, m in self.compiled.get(key, {}) if _serves(parts, m, need, moving)]
        if choices:
            parts, m = min(choices, key=lambda c: len(c[0]))
            return self._call(key, parts, m, config, given, self.compiled[key][(parts, m)], extras)
        plan = self.planned.get(key)
        if plan is not None:
            parts, m, structures = plan
            if JVP in parts and self.no_forward_mode:
                parts, m = parts - {JVP}, ()
            if _serves(parts, m, need, moving) and (key, parts, m) not in self.failed:
                try:
                    return self._call(key, parts, m, config, given, structures, extras)
                except Exception as exc:  # noqa: BLE001 - the combination fails: each call alone says why
                    self.failed.add((key, parts, m))
                    if JVP in parts and _NO_FORWARD_MODE in str(exc):  # a custom_vjp: the rest may combine
                        self.no_forward_mode = True
                        return self.run(need, arrays, config, extras, moving)
        parts = frozenset([need] if need else [])
        return self._call(key, parts, moving if need == JVP else (), config, given, {}, extras)

    def _call(self, key, parts, moving, config, given, structures: dict, extras: dict) -> dict:
        """Call the function of ``parts`` at ``key``, with ``extras`` and zeros of ``structures`` for the rest."""
        present = key[0]
        args = {}
        for part, names in ((VJP, ("g",)), (SECOND, ("g", "directions")), (JVP, ("dual",))):
            if part in parts:
                for n in names:
                    args[n] = extras[n] if n in extras else _zeros(structures[n])
        result = self.function(parts, present, moving, config)(
            given, args.get("g"), args.get("dual", ()), args.get("directions", ()))
        known = self.compiled.setdefault(key, {})
        if (parts, moving) not in known:
            known[(parts, moving)] = {n: _structures(v) for n, v in args.items()}
        return result

    # ------------------------------------------------------------------ the contract's functions

    def forward(self, *arrays, **config):
        return _jax_array(self.jax, self.run(None, arrays, config, {})["y"], self.name)

    def backward(self, grad_output, *arrays, **config):
        what = f"{self.name}_backward"
        result = self.run(VJP, arrays, config, {"g": np.asarray(grad_output)})
        by_index = dict(zip(self.wanted(tuple(a is not None for a in arrays)), result["grads"]))
        results = []
        for i, input_name in enumerate(self.inputs):
            if input_name not in self.differentiable:
                continue
            if i >= len(arrays) or arrays[i] is None:
                results.append(None)
                continue
            g = _jax_array(self.jax, by_index[i], f"{what} ({input_name})")
            if g.dtype != np.asarray(arrays[i]).dtype:
                raise TypeError(f"{what}: the gradient of {input_name} has dtype {g.dtype}, the input "
                                f"{np.asarray(arrays[i]).dtype}")
            results.append(g)
        return results[0] if len(results) == 1 else tuple(results)

    def jvp(self, primals, tangents, **config):
        what = f"{self.name}_jvp"
        if len(tangents) != len(primals):
            raise ValueError(f"{what}: tangents must have one entry per primal ({len(primals)}), got {len(tangents)}")
        moving = self.moving(primals, tangents)
        dual = tuple(np.asarray(tangents[i]).astype(np.asarray(primals[i]).dtype) for i in moving)
        try:
            out, tangent = self.run(JVP, primals, config, {"dual": dual}, moving)["jvp"]
        except TypeError as exc:
            if _NO_FORWARD_MODE in str(exc):  # a custom_vjp: JAX has no forward mode through it, by design
                self.no_forward_mode = True  # later requests do not plan a JVP into their compilations
                raise NotImplementedError(f"{self.name}: no forward-mode rule (a jax.custom_vjp function; "
                                          "jax.custom_jvp gives one)") from None
            raise
        output = _jax_array(self.jax, out, self.name)
        tangent = _jax_array(self.jax, tangent, f"{what} (output tangent)")
        if tangent.dtype != output.dtype:
            raise TypeError(f"{what}: the output tangent has dtype {tangent.dtype}, the output {output.dtype}")
        return output, tangent

    def double_backward(self, grad_output, v, *arrays, **config):
        what = f"{self.name}_double_backward"
        differentiable = self.differentiable
        if not isinstance(v, (tuple, list)) or len(v) != len(differentiable):
            raise TypeError(f"{what}: v must be a tuple of {len(differentiable)} directions "
                            f"({', '.join(differentiable)}), got {type(v).__name__}")
        wanted = self.wanted(tuple(a is not None for a in arrays))
        directions = tuple(np.asarray(v[differentiable.index(self.inputs[i])]) for i in wanted)
        results = self.run(SECOND, arrays, config, {"g": np.asarray(grad_output), "directions": directions})["second"]
        by_index = dict(zip(wanted, results[1:]))
        out = [_jax_array(self.jax, results[0], f"{what} (grad_output)")]
        for i, input_name in enumerate(self.inputs):
            if input_name in differentiable:
                out.append(None if i >= len(arrays) or arrays[i] is None
                           else _jax_array(self.jax, by_index[i], f"{what} ({input_name})"))
        return tuple(out)

    # ------------------------------------------------------------------ planning a request

    def need(self, kind: str, args: list, config: dict) -> tuple | None:
        """``(shapes key, part, moving, extra structures)`` of a call of ``kind`` with ``args`` (None: not one of
        this op's calls as the contract makes them)."""
        if kind == "forward":
            return self.key(args, config), None, (), {}
        if kind == "backward" and args:
            return self.key(args[1:], config), VJP, (), {"g": _structures(np.asarray(args[0]))}
        if kind == "jvp" and len(args) == 2 and len(args[0]) == len(args[1]):
            primals, tangents = args
            moving = self.moving(primals, tangents)
            dual = tuple(np.asarray(tangents[i]).astype(np.asarray(primals[i]).dtype) for i in moving)
            return self.key(primals, config), JVP, moving, {"dual": _structures(dual)}
        if kind == "double_backward" and len(args) >= 2 and isinstance(args[1], (tuple, list)):
            arrays = args[2:]
            wanted = self.wanted(tuple(a is not None for a in arrays))
            if len(args[1]) != len(self.differentiable):
                return None
            directions = tuple(np.asarray(args[1][self.differentiable.index(self.inputs[i])]) for i in wanted)
            return (self.key(arrays, config), SECOND, (),
                    {"g": _structures(np.asarray(args[0])), "directions": _structures(directions)})
        return None


def _serves(parts: frozenset, moving: tuple, need: str | None, wanted_moving: tuple) -> bool:
    """Whether a function computing ``parts`` (its JVP at ``moving``) computes what a call of ``need`` asks for:
    any gives the output; the double backward gives the first-order gradients too."""
    if need is None:
        return True
    if need == VJP:
        return VJP in parts or SECOND in parts
    if need == JVP:
        return JVP in parts and moving == wanted_moving
    return need in parts


def _structures(value):
    """The shapes and dtypes of an array or a tuple of arrays (``_zeros`` makes them back)."""
    if isinstance(value, tuple):
        return tuple(_structures(v) for v in value)
    return _struct(value)


def _zeros(structure):
    """Zeros of a structure ``_structures`` made: an array, or a tuple of them."""
    if len(structure) == 2 and isinstance(structure[1], str):
        return np.zeros(structure[0], structure[1])
    return tuple(_zeros(s) for s in structure)


#: the attribute of an adapted ``jax:`` module that holds its ``JaxOp`` per op name
_OPS = "_bpcheck_jax_ops"


def plan_request(module, calls: list[tuple[str, list, dict]]) -> None:
    """Tell the ``JaxOp`` of an adapted ``jax:`` module what a request will call (``(function name, args,
    kwargs)`` each), so that the first call at some shapes compiles one function for all the request's calls
    there. A request's plan replaces the last one; a module that is not an adapted ``jax:`` one is left alone."""
    ops = getattr(module, _OPS, None) if isinstance(module, types.SimpleNamespace) else None
    if not isinstance(ops, dict):
        return
    _REQUESTS[0] += 1
    for op, _ in ops.values():
        op.planned = {}
    wanted: dict = {}
    for name, args, config in calls:
        found = ops.get(name)
        if found is None:
            continue
        op, kind = found
        need = op.need(kind, list(args), dict(config))
        if need is None:
            continue
        key, part, moving, structures = need
        if part == JVP and op.no_forward_mode:
            continue
        entry = wanted.setdefault((id(op), key), [op, set(), None, {}])
        if part is not None:
            if part == JVP:
                if entry[2] is not None and entry[2] != moving:
                    continue  # one JVP per compiled function: the first one the request makes
                entry[2] = moving
            entry[1].add(part)
            entry[3].update(structures)
    for (_, key), (op, parts, moving, structures) in wanted.items():
        if parts:
            op.planned[key] = (frozenset(parts), moving or (), structures)


def adapt_jax(module, specs) -> types.SimpleNamespace:
    """As ``adapt``, for a module of JAX functions: one ``JaxOp`` per op ``module`` defines."""
    jax = jax_setup()
    functions, ops = {}, {}
    for spec in specs.values():
        op = getattr(module, spec.name, None)
        if not callable(op):
            continue
        compiled = JaxOp(jax, op, spec.name, spec.inputs, spec.differentiable)
        for kind, name in (("forward", spec.name), ("backward", spec.backward_name), ("jvp", spec.jvp_name),
                           ("double_backward", spec.double_backward_name)):
            function = getattr(compiled, kind)

            def run(*args, _function=function, **config):
                return _function(*args, **config)

            run.__name__ = name
            functions[name] = run
            ops[name] = (compiled, kind)
    trace = os.environ.get("BPCHECK_JAX_TRACE")
    if trace:
        functions = {k: _traced(f, trace) for k, f in functions.items()}
    adapted = types.SimpleNamespace(**functions)
    setattr(adapted, _OPS, ops)
    return adapted


def _shapes(value):
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return [_shapes(v) for v in value]
    a = np.asarray(value)
    return [list(a.shape), a.dtype.name]


def _traced(function, path: str):
    """``function``, appending one JSON line per call to ``path``: which function, the arguments' shapes and dtypes,
    the configuration, the seconds the call took and whether this process saw that signature before
    (``BPCHECK_JAX_TRACE``: where a JAX run's time goes, compile vs call; ``benchmarks/jax_compiles.py`` reads it)."""
    import json  # noqa: PLC0415
    import time  # noqa: PLC0415

    seen: set = set()
    process = _PROCESS

    def run(*args, **config):
        signature = json.dumps([function.__name__, _shapes(list(args)), _static_key(config)])
        started = time.perf_counter()
        try:
            return function(*args, **config)
        finally:
            seconds = time.perf_counter() - started
            with open(path, "a") as out:
                out.write(json.dumps({"process": process, "signature": signature, "seconds": seconds,
                                      "new": signature not in seen, "request": _REQUESTS[0]}) + "\n")
            seen.add(signature)

    run.__name__ = function.__name__
    return run


#: requests planned so far in this process (the trace's request number)
_REQUESTS = [0]
#: this process in a trace (workers may each have their own PID namespace, where all are PID 3)
_PROCESS = f"{os.getpid()}-{os.urandom(4).hex()}"
