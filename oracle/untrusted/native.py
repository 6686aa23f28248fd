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
and every later case of that shape reuses it. The drawn cases have many shapes, so a JAX run is compile-bound:
functions are compiled for a fast compilation (``FAST_COMPILE``), and the compilations are kept on disk between
runs (``jax_setup``). ``BPCHECK_JAX_TRACE=FILE`` records every call (``benchmarks/jax_compiles.py`` reads it).
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


#: the dtype the float32 arrays of the request being served stand for ("bfloat16"), or None (``carry``)
_CARRIED: str | None = None


def carry(dtype) -> None:
    """Set what the float32 arrays of the request about to be served stand for: ``"bfloat16"`` (the judge holds
    bfloat16 values in float32, NumPy having no bfloat16: ``oracle.dtypes``), anything else: themselves.

    While bfloat16 is carried, the adapters make every float32 input array a bfloat16 tensor (exact: the values
    are bfloat16 values) and bring every bfloat16 result back as float32 (exact); a float32 result is then a
    result of the wrong dtype and is refused (raised), since the judge could not tell it from a bfloat16 one.
    float64 arrays (finite differences evaluate the forward in float64) stay float64.
    """
    global _CARRIED
    _CARRIED = dtype if dtype == "bfloat16" else None


def _carried_bfloat16(a: np.ndarray) -> bool:
    return _CARRIED == "bfloat16" and a.dtype == np.float32


def _tensor(torch, a, where: str):
    if a is None:
        return None
    a = np.asarray(a)
    t = torch.from_numpy(np.array(a, copy=True))
    if _carried_bfloat16(a):
        t = t.to(torch.bfloat16)
    return t.to(where)


def _array(torch, t, what: str, where: str) -> np.ndarray:
    """A tensor the op returned, checked and brought back as an array (bfloat16 as float32, while carried)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(t).__module__}.{type(t).__qualname__}")
    if t.device.type != torch.device(where).type:
        raise TypeError(f"{what} returned a tensor on {t.device}, the inputs were on {where}")
    if t.dtype == torch.bfloat16:
        if _CARRIED != "bfloat16":
            raise TypeError(f"{what} returned a bfloat16 tensor, the inputs were not bfloat16")
        return t.detach().to("cpu").float().numpy()
    if _CARRIED == "bfloat16" and t.dtype == torch.float32:
        raise TypeError(f"{what} returned a float32 tensor, the inputs were bfloat16")
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

    Every new (op, configuration, shapes) compiles: 25 to 60 ms of CPU here with ``FAST_COMPILE`` (conv2d's
    forward and VJP; 127 and 251 ms with XLA's defaults), a call after it 0.03 to 0.5 ms. The drawn cases have
    many shapes, and every run of the derandomized ``ci`` profile draws the same ones. The persistent cache
    (``BPCHECK_JAX_CACHE``, default ``~/.cache/bpcheck/jax``; empty to turn it off) keeps each compilation on
    disk, for the other worker of a run and for the next run: one read back costs about 15 ms of CPU (JAX traces
    and lowers the function again to find it).
    """
    import jax  # noqa: PLC0415 - only a jax: target needs it

    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("BPCHECK_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "bpcheck", "jax"))
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return jax


#: XLA's options for a compilation that is fast to make, not fast to run (the CPU backend's): LLVM without its
#: optimizations and the classic elemental emitters instead of the fusion emitters. A drawn case's shapes are
#: mostly new, so nearly every call of a run compiles, and each compiled function then runs a few times on small
#: arrays: measured here, conv2d's forward compiles in 25 ms of CPU instead of 127, its VJP in 31 instead of 251.
#: The computation is the same (the same HLO, XLA's HLO passes included): results differ from an optimized build
#: by rounding at most (FMA contraction), which the tolerances allow for. ``BPCHECK_JAX_FAST_COMPILE=0``: XLA's
#: defaults.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False}


def compiler_options(jax) -> dict | None:
    """The options every ``jax:`` function is compiled with: ``FAST_COMPILE`` on the CPU backend unless
    ``BPCHECK_JAX_FAST_COMPILE=0``, else XLA's defaults (None)."""
    if os.environ.get("BPCHECK_JAX_FAST_COMPILE", "1") == "0" or jax.default_backend() != "cpu":
        return None
    return dict(FAST_COMPILE)


def _jit(jax, function):
    """``jax.jit(function)`` with the adapter's compiler options (``compiler_options``)."""
    return jax.jit(function, compiler_options=compiler_options(jax))


def _static_key(config: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in config.items()))


def _jax_array(jax, t, what: str) -> np.ndarray:
    """A jax.Array the op returned, as an array (bfloat16 as float32, while carried; see ``carry``)."""
    if not isinstance(t, jax.Array):
        raise TypeError(f"{what} must return a jax.Array, got {type(t).__module__}.{type(t).__qualname__}")
    if t.dtype == jax.numpy.bfloat16:
        if _CARRIED != "bfloat16":
            raise TypeError(f"{what} returned a bfloat16 array, the inputs were not bfloat16")
        return np.asarray(t.astype(jax.numpy.float32))
    if _CARRIED == "bfloat16" and t.dtype == jax.numpy.float32:
        raise TypeError(f"{what} returned a float32 array, the inputs were bfloat16")
    return np.asarray(t)


def _jax_in(jax, a):
    """An input array for a jitted call: as it is, or bfloat16 while carried (``carry``)."""
    a = np.asarray(a)
    return jax.numpy.asarray(a, dtype=jax.numpy.bfloat16) if _carried_bfloat16(a) else a


def jax_forward(jax, op, name: str):
    """The contract's NumPy forward ``name`` of the JAX op ``op``, jitted once per configuration."""
    compiled: dict = {}

    def run(*arrays, **config):
        present = tuple(a is not None for a in arrays)
        key = (present, _static_key(config))
        if key not in compiled:
            def call(*given, _present=present, _config=config):
                it = iter(given)
                return op(*[next(it) if p else None for p in _present], **_config)

            compiled[key] = _jit(jax, call)
        return _jax_array(jax, compiled[key](*[_jax_in(jax, a) for a in arrays if a is not None]), name)

    run.__name__ = name
    return run


def _jax_vjp(jax, op, wanted: tuple[int, ...], config: dict):
    """``vjp(g, *args)``: the gradients of ``<g, op(*args, **config)>`` with respect to the arguments at ``wanted``."""

    def vjp(g, *given):
        full = list(given)

        def of_differentiable(*diff):
            args = list(full)
            for i, d in zip(wanted, diff):
                args[i] = d
            return op(*args, **config)

        out, pullback = jax.vjp(of_differentiable, *[full[i] for i in wanted])
        return pullback(g.astype(out.dtype) if hasattr(out, "dtype") else g)

    return vjp


def jax_backward(jax, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
    """The contract's ``NAME_backward``: ``jax.vjp`` through ``op``, jitted once per configuration."""
    what = f"{name}_backward"
    compiled: dict = {}

    def run(grad_output, *arrays, **config):
        present = tuple(a is not None for a in arrays)
        wanted = tuple(i for i, input_name in enumerate(inputs[: len(arrays)]) if input_name in differentiable and present[i])
        key = (present, _static_key(config))
        if key not in compiled:
            vjp = _jax_vjp(jax, op, wanted, config)

            def call(g, *given, _present=present):
                it = iter(given)
                return vjp(g, *[next(it) if p else None for p in _present])

            compiled[key] = _jit(jax, call)
        grads = compiled[key](_jax_in(jax, grad_output), *[_jax_in(jax, a) for a in arrays if a is not None])
        by_index = dict(zip(wanted, grads))
        results = []
        for i, input_name in enumerate(inputs):
            if input_name not in differentiable:
                continue
            if i >= len(arrays) or arrays[i] is None:
                results.append(None)
                continue
            g = _jax_array(jax, by_index[i], f"{what} ({input_name})")
            if g.dtype != np.asarray(arrays[i]).dtype:
                raise TypeError(f"{what}: the gradient of {input_name} has dtype {g.dtype}, the input {np.asarray(arrays[i]).dtype}")
            results.append(g)
        return results[0] if len(results) == 1 else tuple(results)

    run.__name__ = what
    return run


#: what JAX says when asked for forward mode through a ``custom_vjp`` function
_NO_FORWARD_MODE = "can't apply forward-mode autodiff (jvp) to a custom_vjp function"


def jax_jvp(jax, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
    """The contract's ``NAME_jvp``: ``jax.jvp`` through ``op``, jitted once per (configuration, which inputs are None,
    which have a tangent), like ``jax_backward``. A ``custom_vjp`` function has no forward mode (JAX refuses it):
    the call declines (NotImplementedError, "no forward-mode rule"), as a torch Function without ``jvp`` does."""
    what = f"{name}_jvp"
    compiled: dict = {}

    def run(primals, tangents, **config):
        if len(tangents) != len(primals):
            raise ValueError(f"{what}: tangents must have one entry per primal ({len(primals)}), got {len(tangents)}")
        present = tuple(a is not None for a in primals)
        moving = tuple(i for i, input_name in enumerate(inputs[: len(primals)])
                       if input_name in differentiable and present[i] and tangents[i] is not None)
        key = (present, moving, _static_key(config))
        if key not in compiled:
            def call(*given, _present=present, _moving=moving, _config=config):
                it = iter(given[: sum(_present)])
                full = [next(it) if p else None for p in _present]
                dual = given[sum(_present):]

                def of_moving(*moved):
                    args = list(full)
                    for i, m in zip(_moving, moved):
                        args[i] = m
                    return op(*args, **_config)

                return jax.jvp(of_moving, tuple(full[i] for i in _moving), tuple(dual))

            compiled[key] = _jit(jax, call)
        given = [_jax_in(jax, a) for a in primals if a is not None]
        try:
            out, tangent = compiled[key](*given, *[_jax_in(jax, np.asarray(tangents[i]).astype(np.asarray(primals[i]).dtype))
                                                   for i in moving])
        except TypeError as exc:
            if _NO_FORWARD_MODE in str(exc):  # a custom_vjp: JAX has no forward mode through it, by design
                raise NotImplementedError(f"{name}: no forward-mode rule (a jax.custom_vjp function; "
                                          "jax.custom_jvp gives one)") from None
            raise
        output = _jax_array(jax, out, name)
        tangent = _jax_array(jax, tangent, f"{what} (output tangent)")
        if tangent.dtype != output.dtype:
            raise TypeError(f"{what}: the output tangent has dtype {tangent.dtype}, the output {output.dtype}")
        return output, tangent

    run.__name__ = what
    return run


def jax_double_backward(jax, op, name: str, inputs: tuple[str, ...], differentiable: tuple[str, ...]):
    """The contract's ``NAME_double_backward``: ``jax.grad`` of ``s = sum_i <vjp_i(g, x), v_i>`` with respect to
    ``(g, *x)`` (reverse over reverse: a ``custom_vjp``'s rule is differentiated as written), jitted once per
    configuration. Same results as the torch adapter's ``double_backward``."""
    what = f"{name}_double_backward"
    compiled: dict = {}

    def run(grad_output, v, *arrays, **config):
        if not isinstance(v, (tuple, list)) or len(v) != len(differentiable):
            raise TypeError(f"{what}: v must be a tuple of {len(differentiable)} directions ({', '.join(differentiable)}), "
                            f"got {type(v).__name__}")
        present = tuple(a is not None for a in arrays)
        wanted = tuple(i for i, input_name in enumerate(inputs[: len(arrays)]) if input_name in differentiable and present[i])
        key = (present, _static_key(config))
        if key not in compiled:
            vjp = _jax_vjp(jax, op, wanted, config)

            def second(g, directions, *given, _present=present, _wanted=wanted):
                it = iter(given)
                full = [next(it) if p else None for p in _present]

                def s(g, *diff):
                    args = list(full)
                    for i, d in zip(_wanted, diff):
                        args[i] = d
                    return sum(jax.numpy.vdot(grad, d) for grad, d in zip(vjp(g, *args), directions))

                return jax.grad(s, argnums=tuple(range(1 + len(_wanted))))(g, *[full[i] for i in _wanted])

            compiled[key] = _jit(jax, second)
        directions = tuple(_jax_in(jax, v[differentiable.index(inputs[i])]) for i in wanted)
        results = compiled[key](_jax_in(jax, grad_output), directions, *[_jax_in(jax, a) for a in arrays if a is not None])
        by_index = dict(zip(wanted, results[1:]))
        out = [_jax_array(jax, results[0], f"{what} (grad_output)")]
        for i, input_name in enumerate(inputs):
            if input_name in differentiable:
                out.append(None if i >= len(arrays) or arrays[i] is None
                           else _jax_array(jax, by_index[i], f"{what} ({input_name})"))
        return tuple(out)

    run.__name__ = what
    return run


def adapt_jax(module, specs) -> types.SimpleNamespace:
    """As ``adapt``, for a module of JAX functions."""
    jax = jax_setup()
    adapted = _contract(module, specs, lambda op, name: jax_forward(jax, op, name),
                        lambda op, name, inputs, differentiable: jax_backward(jax, op, name, inputs, differentiable),
                        lambda op, name, inputs, differentiable: jax_jvp(jax, op, name, inputs, differentiable),
                        lambda op, name, inputs, differentiable: jax_double_backward(jax, op, name, inputs, differentiable))
    trace = os.environ.get("BPCHECK_JAX_TRACE")
    if trace:
        adapted = types.SimpleNamespace(**{name: _traced(f, trace) for name, f in vars(adapted).items()})
    return adapted


def _shapes(value):
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return [_shapes(v) for v in value]
    a = np.asarray(value)
    return [list(a.shape), a.dtype.name]


#: this process in a trace (workers may each have their own PID namespace, where all are PID 3)
_PROCESS = f"{os.getpid()}-{os.urandom(4).hex()}"


def _traced(function, path: str):
    """``function``, appending one JSON line per call to ``path``: which function, the arguments' shapes and dtypes,
    the configuration, the seconds the call took and whether this process saw that signature before
    (``BPCHECK_JAX_TRACE``: where a JAX run's time goes, compile vs call; ``benchmarks/jax_compiles.py`` reads it)."""
    import json  # noqa: PLC0415
    import time  # noqa: PLC0415

    seen: set = set()

    def run(*args, **config):
        signature = json.dumps([function.__name__, _shapes(list(args)), _static_key(config)])
        started = time.perf_counter()
        try:
            return function(*args, **config)
        finally:
            seconds = time.perf_counter() - started
            with open(path, "a") as out:
                out.write(json.dumps({"process": _PROCESS, "signature": signature, "seconds": seconds,
                                      "new": signature not in seen}) + "\n")
            seen.add(signature)

    run.__name__ = function.__name__
    return run
