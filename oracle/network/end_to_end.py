"""The model's parameter gradients vs central differences of its own loss, ``L(params)`` on the batch.

Per parameter tensor ``W``, ``phi(t) = L(W + t v)`` along each direction ``v``: every element (``e_k``) for a tensor of
at most ``ELEMENTWISE_LIMIT`` elements, as the course notebooks' ``eval_numerical_gradient`` does, else
``checks.FD_DIRECTIONS`` random directions. The step and the noise are handled exactly as the per-op
finite-differences check handles them (``oracle.checks``, ``oracle.tolerances``, "Finite differences"): the loss's
noise measured first along a random direction (Moré-Wild), the quiet step ``FD_STEP`` for a loss right to rounding,
a larger one and a wider allowance (noise / h, the measured truncation) for a noisy one, and the tolerance
``tolerances.for_finite_differences`` per element.

A model's loss has kinks a layer check draws its values away from (relu at 0, max-pool ties): a central difference
whose two points fall on both sides of one measures a mix of two slopes, not the gradient. An element out of
tolerance is therefore re-run at both points with the layers recorded, and if a relu input changed sign or a
max-pool window's maximum moved between them, the element is *not judged* (counted as "kink"), never a FAIL.

``rel_error`` is the notebooks' ``max |a - n| / max(1e-8, |a| + |n|)``, shown next to the verdict: the notebooks read
below ~1e-7 as right, but that line is not derived (a small gradient reads large, a wrong one over large
entries reads small); the verdict is bpcheck's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oracle import tolerances
from oracle.checks import FD_DIRECTIONS, _fd_estimates, _fd_steps, _noise_ts
from oracle.network.records import layer_calls
from oracle.verdict import FAIL, Mismatch, locate, status_of

#: tensors up to this many elements are differenced element by element
ELEMENTWISE_LIMIT = 128
#: at most this many out-of-tolerance elements of one tensor are re-run to look for a kink
KINK_PROBES = 6


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """The course notebooks' relative error: ``max |x - y| / max(1e-8, |x| + |y|)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))) if x.size else 0.0


@dataclass
class ParamResult:
    name: str
    shape: tuple
    status: str
    mismatch: Mismatch | None = None
    rel_error: float | None = None
    how: str = ""            # "every element" / "3 random directions"
    note: str = ""
    kinks: int = 0           # elements not judged: a kink between the two points


class Model:
    """The model in its worker, seen as ``L(params)``: the arrays of the batch and the base parameters."""

    def __init__(self, impl, names: list[str], params: dict, X: np.ndarray, y: np.ndarray):
        self.impl, self.names, self.params, self.X, self.y = impl, names, params, X, y

    def submit(self, points: list[dict], record: bool = False):
        """``network_run`` at each point (a dict of parameter arrays), in one request."""
        return self.impl.submit([("network_run", [self.names, [p[n] for n in self.names], self.X, self.y, record], {})
                                 for p in points])


def _loss(value) -> float:
    loss = value[0]
    if type(loss) not in (float, int) or not math.isfinite(loss):
        raise TypeError(f"model.loss(X, y) returned a loss of type {type(loss).__name__} ({loss!r}), expected a finite float")
    return float(loss)


def kink_signature(records: list, names: list[str]) -> list[np.ndarray]:
    """Where the loss is not smooth, as arrays that change when a point crosses a kink: each relu's input sign,
    each max-pool window's arg-max (torch's indices, on the recorded input)."""
    import torch  # noqa: PLC0415 - the judge's oracle

    out = []
    for call in layer_calls(records, names):
        if call.not_checked is not None and call.op not in ("relu", "max_pool2d"):
            continue
        x = call.arrays.get("x")
        if call.op == "relu" and isinstance(x, np.ndarray):
            out.append(x > 0)
        elif call.op == "max_pool2d" and isinstance(x, np.ndarray):
            cfg = call.config
            _, idx = torch.nn.functional.max_pool2d(torch.from_numpy(np.array(x, np.float64)), cfg["kernel_size"],
                                                    cfg["stride"], return_indices=True)
            out.append(idx.numpy())
    return out


def _crosses_kink(model: Model, point_plus: dict, point_minus: dict, base: list[np.ndarray]) -> bool:
    both = model.submit([point_plus, point_minus], record=True).results()
    for value in both:
        signature = kink_signature(value[3], model.names)
        if len(signature) != len(base) or any(a.shape != b.shape or not np.array_equal(a, b) for a, b in zip(signature, base)):
            return True
    return False


def check(model: Model, grads: dict, fan_in: int, base_records: list, seed: int) -> list[ParamResult]:
    """One ``ParamResult`` per parameter of the model, in ``model.names`` order."""
    rng = np.random.default_rng(seed ^ 0x5EED)
    noise_rng = np.random.default_rng(seed ^ 0x401E)
    base = model.params
    plans = {}
    for name in model.names:
        x = base[name]
        probe = noise_rng.standard_normal(x.shape)
        directions = ([np.eye(1, x.size, k).reshape(x.shape) for k in range(x.size)] if x.size <= ELEMENTWISE_LIMIT
                      else [rng.standard_normal(x.shape) for _ in range(FD_DIRECTIONS)])
        plans[name] = (probe, directions)

    def moved(name: str, pairs) -> list[dict]:
        return [{**base, name: base[name] + t * v} for v, t in pairs]

    points = []
    for name in model.names:
        probe, directions = plans[name]
        points += moved(name, [(probe, t) for t in _noise_ts()])
        points += moved(name, [(v, t) for v in directions for t in _fd_steps(tolerances.FD_STEP)])
    running = model.submit(points)
    signature = kink_signature(base_records, model.names)
    results, position = [], 0
    for name in model.names:
        x = base[name]
        probe, directions = plans[name]
        noise_values = [_loss(running.result(position + i)) for i in range(len(_noise_ts()))]
        position += len(_noise_ts())
        quiet_count = len(directions) * len(_fd_steps(tolerances.FD_STEP))
        magnitude = abs(noise_values[len(noise_values) // 2])
        noise = tolerances.noise_level(np.array(noise_values))
        h = tolerances.fd_step(noise, magnitude)
        if h == tolerances.FD_STEP:
            values = [_loss(running.result(position + i)) for i in range(quiet_count)]
        else:
            values = [_loss(v) for v in model.submit(moved(name, [(v, t) for v in directions for t in _fd_steps(h)])).results()]
        position += quiet_count
        how = "every element" if x.size <= ELEMENTWISE_LIMIT else f"{len(directions)} random directions"
        results.append(_judge(model, name, x, grads.get(name), directions, values, h, noise, magnitude, fan_in,
                              signature, how, seed))
    return results


def _judge(model: Model, name: str, x: np.ndarray, grad, directions, values, h, noise, magnitude, fan_in, signature,
           how: str, seed: int) -> ParamResult:
    if not isinstance(grad, np.ndarray):
        return ParamResult(name, x.shape, FAIL, how=how, note=f"grads has no array for {name}")
    if grad.shape != x.shape:
        return ParamResult(name, x.shape, FAIL, how=how, note=f"grads[{name!r}] has shape {grad.shape}, the parameter {x.shape}")
    estimates = _fd_estimates([np.array(v) for v in values], np.float64(1.0), len(directions), h)
    taken = [((x + h * v) - (x - h * v)) / (2 * h) for v in directions]
    quiet = h == tolerances.FD_STEP
    note = "" if quiet else (f"the loss is noisy: {noise:.2g} measured along a random direction against |L| = "
                             f"{magnitude:.3g}, so step h = {h:.2g} and a wider allowance")
    grad64 = grad.astype(np.float64)
    elementwise = x.size <= ELEMENTWISE_LIMIT
    if elementwise:
        numerical = np.array([value / taken[k].flat[k] for k, (value, _) in enumerate(estimates)]).reshape(x.shape)
        analytical = grad64
        extra = np.array([0.0 if quiet else tolerances.fd_error(noise, h, t) for _, t in estimates]).reshape(x.shape)
        array = f"grad {name}"
    else:
        numerical = np.array([value for value, _ in estimates])
        analytical = np.array([float(np.sum(grad64 * t)) for t in taken])
        extra = np.array([0.0 if quiet else tolerances.fd_error(noise, h, t) for _, t in estimates])
        array = f"<grad {name}, v> (random directions v, seed {seed ^ 0x5EED})"
    tol = tolerances.for_finite_differences("float64", fan_in, numerical, extra=extra)
    kinks = 0
    mismatch = locate(array, analytical, numerical, tol)
    if mismatch is not None and not mismatch.imprecise:
        bad = np.flatnonzero(np.abs(analytical - numerical) > tol.bound(numerical))
        for k in bad[:KINK_PROBES]:
            v = directions[k] if elementwise else directions[int(k)]
            if _crosses_kink(model, {**model.params, name: x + h * v}, {**model.params, name: x - h * v}, signature):
                numerical.flat[k] = analytical.flat[k]  # not judged: two slopes mixed
                kinks += 1
            else:
                break  # a smooth element out of tolerance: the gradient is wrong
        mismatch = locate(array, analytical, numerical, tol)
    if kinks:
        note = "; ".join(n for n in (note, f"{kinks} element(s) not judged: a relu input or a max-pool arg-max "
                                     "changed between the two points (a kink)") if n)
    return ParamResult(name, x.shape, status_of(mismatch), mismatch, rel_error(analytical, numerical), how, note, kinks)

