"""Oracle 1: PyTorch autograd. NumPy in, NumPy out.

The forward and the gradients of every differentiable argument for a given
output gradient, computed by ``torch.nn.functional`` + autograd on copies of
the inputs. By default in float64 (a float32 case is widened exactly, so the
answer is the float64 truth of the float32 inputs); ``dtype="float32"``
computes in float32 instead, ``device="cuda"`` (or ``BPCHECK_ORACLE_DEVICE=cuda``
for the whole run) on the GPU when there is one; asked for CUDA without one, it
raises rather than silently computing on the CPU.

torch is imported lazily: the rest of ``oracle`` (replaying a stored corpus,
say) works without it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from oracle.dtypes import storage

_configured = False

#: where the oracle computes: "cpu" (default), or "cuda" when asked with BPCHECK_ORACLE_DEVICE=cuda
DEVICE = os.environ.get("BPCHECK_ORACLE_DEVICE", "cpu")


def _torch():
    """torch, imported on first use and set to one intra-op thread.

    The oracle's cases are tiny: with several threads torch spends its time
    waking them (measured here: 0.2 ms per conv2d forward+backward on one
    thread, 6.8 ms on two threads of a busy 2-core machine).
    """
    global _configured
    import torch  # noqa: PLC0415 - deliberately lazy

    if not _configured:
        torch.set_num_threads(1)
        _configured = True
    return torch


def torch_function(op: str):
    """The torch callable for ``op``, taking the contract's positional arrays and keyword configuration."""
    torch = _torch()
    functional = torch.nn.functional
    if op == "flatten":
        return lambda x: torch.flatten(x, 1)
    if op == "batch_norm":  # training mode: the batch's own statistics, no running ones
        return lambda x, weight, bias, *, eps: functional.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    if op == "layer_norm":  # torch takes normalized_shape second, positionally
        return lambda x, weight, bias, *, normalized_shape, eps: functional.layer_norm(x, normalized_shape, weight, bias, eps)
    return getattr(functional, op)


def _numpy(t) -> np.ndarray:
    """A result tensor as a NumPy array; bfloat16 (which NumPy lacks) as float32, exactly (``oracle.dtypes``)."""
    t = t.detach().cpu()
    return (t.float() if t.dtype == _torch().bfloat16 else t).numpy()


def cuda_available() -> bool:
    try:
        return _torch().cuda.is_available()
    except ImportError:
        return False


def run(
    op: str,
    inputs: dict[str, np.ndarray | None],
    config: dict[str, Any],
    differentiable: tuple[str, ...],
    grad_output: np.ndarray | None = None,
    *,
    dtype: str = "float64",
    device: str | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
    """``(forward output, {name: gradient})`` of ``op`` computed by torch.

    ``inputs`` are the positional arrays in the op's order (``None`` for an
    absent optional one); an integer array (class indices) goes to torch as
    ``torch.long``, whatever ``dtype`` is. Gradients are returned for ``differentiable`` names,
    ``None`` for an absent input; with no ``grad_output`` only the forward runs.
    """
    torch = _torch()
    device = device or DEVICE
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("the torch oracle was asked for CUDA, but torch.cuda.is_available() is False")
    tdtype = getattr(torch, dtype)
    tensors = {}
    for name, a in inputs.items():
        if a is None:
            tensors[name] = None
            continue
        if np.asarray(a).dtype.kind in "iu":  # class indices: torch.long whatever the float dtype, never differentiated
            tensors[name] = torch.tensor(np.array(a, dtype=np.int64, copy=True), dtype=torch.long, device=device)
            continue
        t = torch.tensor(np.array(a, copy=True), dtype=tdtype, device=device)
        if grad_output is not None and name in differentiable:
            t.requires_grad_(True)
        tensors[name] = t
    out = torch_function(op)(*tensors.values(), **config)
    grads: dict[str, np.ndarray | None] = {}
    if grad_output is not None:
        out.backward(torch.tensor(np.array(grad_output, copy=True), dtype=tdtype, device=device))
        for name in differentiable:
            t = tensors[name]
            grads[name] = None if t is None else (
                _numpy(t.grad) if t.grad is not None else np.zeros(tuple(t.shape), dtype=storage(dtype))
            )
    return _numpy(out), grads


def jvp(
    op: str,
    inputs: dict[str, np.ndarray | None],
    tangents: dict[str, np.ndarray | None],
    config: dict[str, Any],
    *,
    dtype: str = "float64",
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(forward output, output tangent)`` of ``op`` by ``torch.func.jvp``, in ``dtype`` (float64 by default).

    ``inputs`` are the positional arrays in the op's order (``None`` for an absent optional one); ``tangents``
    maps each name to its tangent or ``None`` (a zero tangent; always ``None`` for class indices, which go to
    torch as ``torch.long`` and are not differentiated). Only the inputs with a tangent are differentiated.
    """
    torch = _torch()
    device = device or DEVICE
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("the torch oracle was asked for CUDA, but torch.cuda.is_available() is False")
    tdtype = getattr(torch, dtype)

    def tensor(a):
        if np.asarray(a).dtype.kind in "iu":
            return torch.tensor(np.array(a, dtype=np.int64, copy=True), dtype=torch.long, device=device)
        return torch.tensor(np.array(a, copy=True), dtype=tdtype, device=device)

    names = list(inputs)
    fixed = {n: None if a is None else tensor(a) for n, a in inputs.items()}
    moving = [n for n in names if fixed[n] is not None and tangents.get(n) is not None]
    function = torch_function(op)

    def f(*moved):
        args = dict(fixed)
        args.update(zip(moving, moved))
        return function(*[args[n] for n in names], **config)

    if not moving:  # nothing moves: the tangent is zero
        out = f()
        return _numpy(out), np.zeros(tuple(out.shape), dtype=storage(dtype))
    out, tangent = torch.func.jvp(f, tuple(fixed[n] for n in moving), tuple(tensor(tangents[n]) for n in moving))
    return _numpy(out), _numpy(tangent)
