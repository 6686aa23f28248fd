"""Kernels where they live: a torch module's ops, called as the contract's NumPy functions, in the worker.

``bpcheck verify torch:MODULE`` (and ``pytest --impl torch:MODULE``, ``bpcheck
replay torch:MODULE``) checks a module whose contract ops take and return torch
tensors: a module wrapping a custom ``torch.autograd.Function``, a C++/CUDA
extension op, or ``torch.nn.functional`` itself. The author writes no
``_backward`` functions: ``NAME_backward(grad_output, *inputs, **config)`` is
the vector-Jacobian product torch's autograd computes through *their* op,

    grads = torch.autograd.grad(op(*inputs, **config), differentiable inputs, grad_output)

so whatever backward they registered (``Function.backward``, a derivative
formula, an extension's kernel) is what is checked.

This runs in the worker, like any code under test: the judge sees only the
NumPy arrays that come back, and validates them as it does any
implementation's. What only the native side can see is checked here and
raised as a failure of the call, with the reason: a result that is not a
tensor, a tensor on another device, an output cut from the autograd graph (no
``grad_fn``: nothing to differentiate), a gradient of the wrong dtype or
device. Inputs are made on ``BPCHECK_DEVICE`` (``cpu`` by default; the
``--device`` option of ``bpcheck verify`` and pytest sets it), with the case's
dtype; integer arrays (class indices) stay integer (``torch.long``).
"""

from __future__ import annotations

import os
import types

import numpy as np

#: the prefix of a target whose ops are torch functions
PREFIX = "torch:"


def device() -> str:
    """Where the native ops run: ``BPCHECK_DEVICE`` (``cpu`` when unset)."""
    return os.environ.get("BPCHECK_DEVICE", "cpu") or "cpu"


def is_native(target: str) -> bool:
    return target.startswith(PREFIX)


def module_of(target: str) -> str:
    """The module (dotted name or ``.py`` path) of a ``torch:MODULE`` target."""
    return target[len(PREFIX):]


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


def adapt(module, specs) -> types.SimpleNamespace:
    """The contract's NumPy functions for every op of ``specs`` (``oracle.ops.SPECS``) that ``module`` defines.

    A ``NAME_backward`` the module defines itself is ignored: the backward checked is the one autograd runs.
    """
    torch = _torch()
    functions = {}
    for spec in specs.values():
        op = getattr(module, spec.name, None)
        if not callable(op):
            continue
        functions[spec.name] = forward(torch, op, spec.name)
        functions[spec.backward_name] = backward(torch, op, spec.name, spec.inputs, spec.differentiable)
    return types.SimpleNamespace(**functions)
