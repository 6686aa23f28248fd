"""Train a demo network on a synthetic task, checking every gradient against torch autograd at every step.

Two networks (``--network``):

* ``seeds`` (the default): the worked network of ``refimpl.network`` (15
  parameters) on 6x6 images holding one bar, two pixels wide and full length,
  vertical (label 1) or horizontal (label 0), at a random position off the
  border, plus Gaussian noise (``make_bars``). At every step its 15 parameter
  gradients are compared with torch autograd on the same network, parameters
  and batch (float64).
* ``lenet``: the LeNet-style CNN of ``refimpl.lenet`` (conv, batch_norm,
  max/avg pooling, ReLU, two linear layers, softmax cross-entropy; 1,500-odd
  parameters) on 12x12 images of one stroke, horizontal, vertical or along
  either diagonal (``make_strokes``). At every step every parameter gradient,
  dL/dX and dL/d of every layer's input are compared with torch autograd,
  each relative to its term scale; a deviation names the layer whose backward
  rule made it (``culprit``).

The command fails (exit code 1) if the largest deviation ever exceeds
``DEVIATION_BOUND`` (``oracle.tolerances.NETWORK_GRADIENT_BOUND``), far above
float64 rounding and far below any real mistake.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

import refimpl
from oracle.tolerances import NETWORK_GRADIENT_BOUND, chain_rounding
from refimpl import lenet, network
from refimpl.losses import EPSILON
from refimpl.softmax import softmax

HELP = (
    "train a small network on synthetic images, checking every gradient against torch at every step: "
    "the worked network (15 parameters, the default) or a LeNet-style CNN with batch_norm (--network lenet)"
)

DEVIATION_BOUND = NETWORK_GRADIENT_BOUND
"""Largest relative gradient deviation from torch accepted, sqrt(u) = 1.05e-8: float64 rounding of the chain is at
most ~2e-11 of the term scale (``oracle.tolerances.chain_rounding``; in fact ~1e-15), a real bug ~1e-4 and up.
The seeds network measures against its largest entry, which is at most its term scale: a stricter measure."""

TEST_FRACTION = 0.25
"""Share of ``--samples`` held out for the test accuracy."""


# ----------------------------------------------------------------------------- the data


def make_bars(
    n: int, rng: np.random.Generator, *, noise: float = 0.3, dtype=np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 1, 6, 6) and labels (n, 1): a bar of ones, vertical (1) or horizontal (0), plus noise.

        X[k] = ones on columns (label 1) or rows (label 0) s, s+1 with s uniform in {1, 2, 3}
               + N(0, noise^2) on every pixel

    The bar is two pixels wide and full length, and keeps off the border rows
    and columns: a single 3x3 filter then detects it at every position, which
    it cannot do for a bar on the border (the filter would need two detectors
    at once; SGD then settles for one, at ~85% accuracy).
    """
    labels = rng.integers(0, 2, size=n)
    starts = rng.integers(1, 4, size=n)
    X = rng.normal(0.0, noise, size=(n, 1, 6, 6))
    vertical = labels == 1
    for offset in (0, 1):
        X[vertical, 0, :, starts[vertical] + offset] += 1.0
        X[~vertical, 0, starts[~vertical] + offset, :] += 1.0
    return X.astype(dtype), labels.reshape(n, 1).astype(dtype)


STROKE_CLASSES = ("horizontal", "vertical", "diagonal \\", "diagonal /")
"""The classes of ``make_strokes``, by label."""


def make_strokes(
    n: int, rng: np.random.Generator, *, noise: float = 0.1, dtype=np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n, 1, 12, 12) and labels (n,) int64: one stroke of ones, of class ``STROKE_CLASSES[label]``.

        length  L uniform in {5, ..., 8}; start (r0, c0) uniform with the stroke inside the image
        label 0: pixels (r, c0 + i)           r uniform in {0, ..., 11}    horizontal
        label 1: pixels (r0 + i, c)           c uniform in {0, ..., 11}    vertical
        label 2: pixels (r0 + i, c0 + i)                                   diagonal, top left to bottom right
        label 3: pixels (r0 + i, c0 + L-1-i)                               diagonal, top right to bottom left
        for i = 0 .. L-1, + N(0, noise^2) on every pixel

    3x3 filters tell the four directions apart anywhere in the image.
    """
    size = lenet.IMAGE_SHAPE[-1]
    labels = rng.integers(0, len(STROKE_CLASSES), size=n)
    length = rng.integers(5, 9, size=n)
    r0 = rng.integers(0, size - length + 1)
    c0 = rng.integers(0, size - length + 1)
    line = rng.integers(0, size, size=n)  # the row of a horizontal stroke, the column of a vertical one
    X = rng.normal(0.0, noise, size=(n, 1, size, size))
    i = np.arange(8)[None, :]
    on = i < length[:, None]
    lab, L, r0, c0, line = (a[:, None] for a in (labels, length, r0, c0, line))
    rows = np.where(lab == 0, line, r0 + i)
    cols = np.select([lab == 0, lab == 1, lab == 2], [c0 + i, line, c0 + i], c0 + L - 1 - i)
    image = np.broadcast_to(np.arange(n)[:, None], on.shape)
    X[image[on], 0, rows[on], cols[on]] += 1.0
    return X.astype(dtype), labels.astype(np.int64)


# ----------------------------------------------------------------------------- the torch oracle


def torch_gradients(
    params: network.Params, X: np.ndarray, Y: np.ndarray, *, logits: bool = False
) -> dict[str, np.ndarray]:
    """dL/dW1, dL/dB1, dL/dW2, dL/dB2 of the same network by torch.nn.functional + autograd (float64).

    ``logits=True`` takes the loss as ``binary_cross_entropy_with_logits(Z2, Y)``
    instead of ``binary_cross_entropy(sigmoid(Z2), Y)``: the same function, but
    without BCE's clamped backward, which is wrong where A2 (1 - A2) < 1e-12
    (pytorch issue #103316).
    """
    import torch  # noqa: PLC0415 - lazy: `bpcheck --help` need not load torch
    import torch.nn.functional as tf  # noqa: PLC0415

    leaves = {name: torch.tensor(a, dtype=torch.float64, requires_grad=True) for name, a in params.as_dict().items()}
    x = torch.tensor(X, dtype=torch.float64)
    y = torch.tensor(Y, dtype=torch.float64)
    z1 = tf.conv2d(x, leaves["W1"], leaves["B1"])
    p1 = tf.max_pool2d(tf.relu(z1), kernel_size=2, stride=2)
    z2 = tf.linear(torch.flatten(p1, 1), leaves["W2"], leaves["B2"])
    if logits:
        loss = tf.binary_cross_entropy_with_logits(z2, y)
    else:
        loss = tf.binary_cross_entropy(torch.sigmoid(z2), y)
    loss.backward()
    return {name: t.grad.numpy() for name, t in leaves.items()}


def gradient_deviation(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> tuple[float, str]:
    """The largest difference of the 15 gradient entries, relative to the largest entry, and where it is.

        deviation = max_i |ours_i - reference_i| / max_i max(|ours_i|, |reference_i|)     (0 if all are 0)

    over all 15 entries together (a normwise relative error, max-norm): one
    entry that is a small difference of large terms (dB2 = sum_n (A2 - Y)_n / N,
    say) carries the rounding of those terms, not of its own size.
    """
    diff = {name: float(np.max(np.abs(ours[name] - reference[name]))) for name in reference}
    diff = {name: d if np.isfinite(d) else math.inf for name, d in diff.items()}  # a NaN gradient is a failure
    scale = max(max(float(np.max(np.abs(ours[n]))), float(np.max(np.abs(reference[n])))) for n in reference)
    where = max(diff, key=diff.get)
    if math.isinf(diff[where]):
        return math.inf, where
    return (diff[where] / scale if scale > 0 else 0.0), where


class WorstDeviation:
    """What a per-step check keeps: the steps seen, the worst deviation (and where), the worst of each epoch."""

    def __init__(self) -> None:
        self.steps = 0
        self.worst = -1.0
        self.worst_where = ""
        self.epoch_worst: dict[int, float] = {}

    def record(self, epoch: int, step: int, deviation: float, where: str) -> None:
        self.steps += 1
        self.epoch_worst[epoch] = max(self.epoch_worst.get(epoch, 0.0), deviation)
        if deviation > self.worst:
            self.worst, self.worst_where = deviation, f"step {step}, {where}"

    def notes(self) -> list[str]:
        """Lines the summary prints before the verdict."""
        return []


class GradientCheck(WorstDeviation):
    """The seeds network's ``on_step`` callback: compares each step's parameter gradients with torch."""

    def __init__(self) -> None:
        super().__init__()
        self.saturated_steps = 0  # steps compared with the logits form of torch's loss
        self.clamped_deviation = 0.0  # in those steps, how far torch's literal BCE(sigmoid) autograd was off

    def __call__(self, step: network.Step) -> None:
        A2 = step.acts.A2
        saturated = bool(np.any(A2 * (1 - A2) < EPSILON))
        ours = step.grads.params().as_dict()
        reference = torch_gradients(step.params, step.X, step.Y, logits=saturated)
        deviation, name = gradient_deviation(ours, reference)
        if saturated:
            literal = torch_gradients(step.params, step.X, step.Y, logits=False)
            self.clamped_deviation = max(self.clamped_deviation, gradient_deviation(ours, literal)[0])
        self.saturated_steps += saturated
        self.record(step.epoch, step.step, deviation, f"d{name}")

    def notes(self) -> list[str]:
        if not self.saturated_steps:
            return []
        return [
            f"  note: in {self.saturated_steps} step(s) some A2 (1 - A2) < 1e-12. There torch's BCE backward clamps "
            f"(pytorch #103316)\n  and its autograd of BCE(sigmoid(Z2)) was off by up to {self.clamped_deviation:.1e}, "
            "so those steps were checked\n  against torch's binary_cross_entropy_with_logits(Z2), the same loss "
            "without the clamp"
        ]


# ----------------------------------------------------------------------------- the LeNet: torch twin and term scales


def torch_lenet_gradients(params: dict, X: np.ndarray, T: np.ndarray) -> dict[str, np.ndarray]:
    """``refimpl.lenet.backward``'s gradients by torch.nn.functional + autograd (float64), under the same keys:
    every parameter (``'bn1.weight'``...) and the input of every layer (``'conv1'`` is dL/dX, ``'loss'`` dL/dlogits)."""
    import torch  # noqa: PLC0415 - lazy, see torch_gradients
    import torch.nn.functional as tf  # noqa: PLC0415

    w = {key: torch.tensor(a, dtype=torch.float64, requires_grad=True) for key, a in params.items()}
    inputs = {}

    def into(layer: str, t):
        t.retain_grad()
        inputs[layer] = t
        return t

    h = into("conv1", torch.tensor(X, dtype=torch.float64, requires_grad=True))
    h = into("bn1", tf.conv2d(h, w["conv1.weight"], None, padding=1))
    h = into("pool1", tf.batch_norm(h, None, None, w["bn1.weight"], w["bn1.bias"], training=True, eps=lenet.EPS))
    h = into("relu1", tf.max_pool2d(h, kernel_size=2, stride=2))
    h = into("conv2", tf.relu(h))
    h = into("bn2", tf.conv2d(h, w["conv2.weight"], None, padding=1))
    h = into("relu2", tf.batch_norm(h, None, None, w["bn2.weight"], w["bn2.bias"], training=True, eps=lenet.EPS))
    h = into("pool2", tf.relu(h))
    h = into("flat", tf.avg_pool2d(h, kernel_size=2, stride=2))
    h = into("fc1", torch.flatten(h, 1))
    h = into("relu3", tf.linear(h, w["fc1.weight"], w["fc1.bias"]))
    h = into("fc2", tf.relu(h))
    h = into(lenet.LOSS, tf.linear(h, w["fc2.weight"], w["fc2.bias"]))
    tf.cross_entropy(h, torch.tensor(T, dtype=torch.int64)).backward()
    grads = {layer: t.grad.numpy() for layer, t in inputs.items()}
    grads.update({key: t.grad.numpy() for key, t in w.items()})
    return grads


class TermScaleRules:
    """The backward rules of ``refimpl.lenet``'s layers on magnitudes: ``|J|^T |g|`` for each rule ``J^T g``.

    Run through ``lenet.backward`` (``rules=TermScaleRules``) from the top, they give
    every gradient's term scale ``M`` (``oracle.tolerances.chain_rounding``). Sums are the
    rule on absolute values (as ``oracle.magnitudes``); routes and masks (max-pool, ReLU)
    route by ``x`` itself; batch_norm and cross_entropy have their terms written out.
    """

    @staticmethod
    def cross_entropy_backward(g, z, target, *, reduction):
        """(softmax + onehot) |g| / N: the two terms of (softmax - onehot) g / N."""
        assert reduction == "mean"
        terms = softmax(z, dim=1)
        terms[np.arange(len(target)), target] += 1.0
        return terms * np.abs(g) / z.shape[0]

    @staticmethod
    def batch_norm_backward(g, x, weight, bias, *, eps):
        """inv_std (|gy| + mean|gy| + |xhat| mean|gy xhat|), gy = g gamma; sum |g xhat|; sum |g| (per channel)."""
        axes = (0, 2, 3)
        centred = x - x.mean(axis=axes, keepdims=True)
        inv_std = 1 / np.sqrt((centred**2).mean(axis=axes, keepdims=True) + eps)
        xhat = np.abs(centred * inv_std)
        gy = np.abs(g) * np.abs(weight).reshape(1, -1, 1, 1)
        grad_x = inv_std * (gy + gy.mean(axis=axes, keepdims=True) + xhat * (gy * xhat).mean(axis=axes, keepdims=True))
        return grad_x, (np.abs(g) * xhat).sum(axis=axes), np.abs(g).sum(axis=axes)

    @staticmethod
    def conv2d_backward(g, x, weight, bias, **config):
        return refimpl.conv2d_backward(np.abs(g), np.abs(x), np.abs(weight), None, **config)

    @staticmethod
    def linear_backward(g, x, weight, bias):
        return refimpl.linear_backward(np.abs(g), np.abs(x), np.abs(weight), np.abs(bias))

    @staticmethod
    def max_pool2d_backward(g, x, **config):
        return refimpl.max_pool2d_backward(np.abs(g), x, **config)

    @staticmethod
    def avg_pool2d_backward(g, x, **config):
        return refimpl.avg_pool2d_backward(np.abs(g), x, **config)

    @staticmethod
    def relu_backward(g, x):
        return refimpl.relu_backward(np.abs(g), x)

    @staticmethod
    def flatten_backward(g, x):
        return refimpl.flatten_backward(np.abs(g), x)


def term_scales(params: dict, X: np.ndarray, T: np.ndarray, fwd: lenet.Forward) -> dict[str, np.ndarray]:
    """The term scale of every gradient ``lenet.backward`` returns, under the same keys."""
    return lenet.backward(params, X, T, fwd, rules=TermScaleRules)


def lenet_fan_ins(params: dict, fwd: lenet.Forward) -> list[int]:
    """The largest number of terms each backward rule of the network sums into one result (for ``chain_rounding``).

        conv2d       max(C_out kH kW (grad_x),  N H_out W_out (grad_weight))
        batch_norm   N H W (the means) + 3 (the three terms)
        linear       max(out_features (grad_x),  N (grad_weight, grad_bias))
        pools, relu, flatten: 2;   cross_entropy: C (the softmax's sum) + 2
    """
    counts = [fwd.logits.shape[1] + 2]
    for layer in lenet.layers(fwd.logits.shape[1]):
        x = fwd.inputs[layer.name]
        if layer.op == "conv2d":
            weight = params[layer.param_key("weight")]
            counts.append(max(weight.shape[0] * weight.shape[2] * weight.shape[3], x.shape[0] * x.shape[2] * x.shape[3]))
        elif layer.op == "batch_norm":
            counts.append(x.shape[0] * x.shape[2] * x.shape[3] + 3)
        elif layer.op == "linear":
            counts.append(max(params[layer.param_key("weight")].shape[0], x.shape[0]))
        else:
            counts.append(2)
    return counts


def batch_norm_amplification(params: dict, fwd: lenet.Forward) -> float:
    """The largest ratio of a batch_norm input's term scale (the conv on magnitudes) to its channel's std."""
    ratio = 1.0
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        scale = refimpl.conv2d(np.abs(fwd.inputs[conv]), np.abs(params[f"{conv}.weight"]), None, padding=1)
        std = np.sqrt(fwd.inputs[bn].var(axis=(0, 2, 3), keepdims=True) + lenet.EPS)
        ratio = max(ratio, float(np.max(scale / std)))
    return ratio


def deviations(ours: dict, reference: dict, scales: dict) -> dict[str, float]:
    """Per gradient: ``max_i |ours_i - reference_i| / max_i M_i`` (M the term scales); inf where not finite."""
    result = {}
    for key, ref in reference.items():
        diff = float(np.max(np.abs(ours[key] - ref)))
        scale = float(np.max(scales[key]))
        if not math.isfinite(diff):
            result[key] = math.inf
        else:
            result[key] = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    return result


def describe(key: str) -> str:
    """A gradient's name for people: 'dL/dX', 'dL/dlogits', 'dL/d(input of bn2)', 'dL/d bn2.weight'."""
    if key == "conv1":
        return "dL/dX"
    if key == lenet.LOSS:
        return "dL/dlogits"
    return f"dL/d {key}" if "." in key else f"dL/d(input of {key})"


def culprit(devs: dict[str, float], classes: int, bound: float) -> tuple[str, str, str] | None:
    """``(layer, rule, gradient)`` of the first layer, from the loss down, whose backward rule made a gradient
    deviate beyond ``bound`` while the gradient it was given (its output's) was right; None if none did.

    Walking from the loss (whose seed dL/dL = 1 is exact) down to X, the first layer with a
    deviating result is the one whose rule is wrong: everything it was handed matched torch.
    """
    chain = [(lenet.LOSS, "cross_entropy", [lenet.LOSS])]
    for layer in reversed(lenet.layers(classes)):
        chain.append((layer.name, layer.op, [layer.name] + [layer.param_key(p) for p in layer.params if p]))
    for name, op, keys in chain:
        wrong = [key for key in keys if devs[key] > bound]
        if wrong:
            return name, f"{op}_backward", max(wrong, key=devs.get)
    return None


class LeNetCheck(WorstDeviation):
    """The LeNet's ``on_step`` callback: every gradient vs torch, relative to its term scale; finds the culprit."""

    def __init__(self) -> None:
        super().__init__()
        self.rounding = 0.0  # the largest chain_rounding bound over the steps
        self.first_wrong: tuple[int, str, str, str, float] | None = None  # step, layer, rule, gradient, deviation

    def __call__(self, step: lenet.Step) -> None:
        reference = torch_lenet_gradients(step.params, step.X, step.T)
        devs = deviations(step.grads, reference, term_scales(step.params, step.X, step.T, step.fwd))
        worst = max(devs, key=devs.get)
        self.record(step.epoch, step.step, devs[worst], describe(worst))
        bound = chain_rounding(lenet_fan_ins(step.params, step.fwd), batch_norm_amplification(step.params, step.fwd))
        self.rounding = max(self.rounding, bound)
        found = culprit(devs, step.fwd.logits.shape[1], DEVIATION_BOUND)
        if found and self.first_wrong is None:
            self.first_wrong = (step.step, *found, devs[found[2]])

    def notes(self) -> list[str]:
        lines = [f"  (the chain's float64 rounding bound, oracle.tolerances.chain_rounding: at most {self.rounding:.1e})"]
        if self.first_wrong:
            step, layer, rule, key, deviation = self.first_wrong
            lines.append(
                f"  first wrong at step {step}: layer {layer} ({rule}): {describe(key)} off by {deviation:.1e} "
                f"of its term scale,\n  while the gradient it was given matched torch"
            )
        return lines


# ----------------------------------------------------------------------------- the command


@dataclass(frozen=True)
class DemoNetwork:
    """What ``run`` needs of a demo network: its data, its training, its per-step check and its words."""

    title: str  # after "bpcheck demo: ", with {count} for the number of parameters
    checked: str  # what the check compares at each step, with {count}
    defaults: dict  # of the options epochs, lr, batch_size, samples, noise
    min_batch: int
    make_data: Callable  # (n, rng, noise) -> (X, labels)
    init: Callable  # rng -> params
    count: Callable  # params -> number of trainable scalars
    loss: Callable  # (params, X, labels) -> float
    accuracy: Callable  # (params, X, labels) -> float
    train: Callable  # as network.train, returning a History with .params
    new_check: Callable  # () -> WorstDeviation, the on_step callback
    steps_per_epoch: Callable  # (n_train, batch_size) -> int


NETWORKS = {
    "seeds": DemoNetwork(
        title="the worked network ({count} parameters) on 6x6 bar images, vertical (1) vs horizontal (0)",
        checked="at every step: the {count} parameter gradients vs torch autograd on the same batch (float64)",
        defaults={"epochs": 15, "lr": 0.5, "batch_size": 8, "samples": 800, "noise": 0.3},
        min_batch=1,
        make_data=lambda n, rng, noise: make_bars(n, rng, noise=noise),
        init=network.Params.init,
        count=lambda params: params.count(),
        loss=lambda params, X, Y: float(network.forward(params, X, Y).L),
        accuracy=network.accuracy,
        train=network.train,
        new_check=GradientCheck,
        steps_per_epoch=lambda n, batch_size: -(-n // batch_size),
    ),
    "lenet": DemoNetwork(
        title=(
            "a LeNet-style CNN with batch_norm ({count} parameters) on 12x12 stroke images,\n"
            f"  {len(STROKE_CLASSES)} classes: " + ", ".join(STROKE_CLASSES)
        ),
        checked=(
            "at every step: the {count} parameter gradients, dL/dX and dL/d of every layer's input vs torch autograd\n"
            "  on the same batch (float64), each relative to its term scale (accuracies: batch_norm on each set's "
            "own statistics)"
        ),
        defaults={"epochs": 4, "lr": 0.2, "batch_size": 16, "samples": 320, "noise": 0.1},
        min_batch=2,
        make_data=lambda n, rng, noise: make_strokes(n, rng, noise=noise),
        init=lambda rng: lenet.init(rng, len(STROKE_CLASSES)),
        count=lambda params: sum(a.size for a in params.values()),
        loss=lambda params, X, T: float(lenet.forward(params, X, T).L),
        accuracy=lenet.accuracy,
        train=lenet.train,
        new_check=LeNetCheck,
        steps_per_epoch=lambda n, batch_size: len(lenet.batches(np.arange(n), batch_size)),
    ),
}
"""The demo networks by ``--network`` name; the first is the default."""

OPTIONS = ("epochs", "lr", "batch_size", "samples", "noise")


def _defaults(option: str) -> str:
    return ", ".join(f"{network_name} {demo.defaults[option]}" for network_name, demo in NETWORKS.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--network", choices=tuple(NETWORKS), default=next(iter(NETWORKS)),
        help="seeds: the worked network of the derivation (15 parameters); lenet: a LeNet-style CNN with "
        "conv, batch_norm, pooling, linear layers and a softmax cross-entropy head (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, help=f"passes over the training set (default: {_defaults('epochs')})")
    parser.add_argument("--lr", type=float, help=f"SGD learning rate (default: {_defaults('lr')})")
    parser.add_argument("--batch-size", type=int, help=f"images per SGD step (default: {_defaults('batch_size')})")
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the data, the initialisation and the batch order (default: %(default)s)",
    )
    parser.add_argument(
        "--samples", type=int,
        help=f"images generated; {round(TEST_FRACTION * 100)}%% are held out for testing (default: {_defaults('samples')})",
    )
    parser.add_argument(
        "--noise", type=float, help=f"standard deviation of the pixel noise (default: {_defaults('noise')})"
    )


def _progress():
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    console = Console()
    return Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,  # no bar in a log or a pipe
    )


def _train(demo: DemoNetwork, args, rng, params, X_train, Y_train, check, total_steps):
    """Train with the progress bar, printing a line per epoch; ``check`` sees every step."""
    with _progress() as progress:
        task = progress.add_task("training", total=total_steps)

        def on_step(step) -> None:
            check(step)
            progress.advance(task)

        def on_epoch(epoch: int, params_reached, loss: float) -> None:
            acc = demo.accuracy(params_reached, X_train, Y_train)
            print(f"{epoch + 1:>5}  {loss:>8.4f}  {acc:>9.1%}  {check.epoch_worst.get(epoch, 0.0):>18.1e}")

        return demo.train(
            params, X_train, Y_train, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
            rng=rng, on_step=on_step, on_epoch=on_epoch,
        )


def _usage_error(args: argparse.Namespace, demo: DemoNetwork) -> str | None:
    for name in ("epochs", "batch_size", "samples"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
    if args.batch_size < demo.min_batch:
        return (
            f"--batch-size must be >= {demo.min_batch} for --network {args.network} "
            f"(batch_norm needs two values per channel), got {args.batch_size}"
        )
    if not (math.isfinite(args.lr) and args.lr > 0):
        return f"--lr must be a finite number > 0, got {args.lr}"
    if not (math.isfinite(args.noise) and args.noise >= 0):
        return f"--noise must be a finite number >= 0, got {args.noise}"
    least = 1 + demo.min_batch
    if args.samples < least:
        return (
            f"--samples must be >= {least} (at least {demo.min_batch} training and one held-out image), "
            f"got {args.samples}"
        )
    return None


def _split(samples: int) -> tuple[int, int]:
    """(training, held-out) image counts: ``TEST_FRACTION`` held out, at least one of each."""
    n_test = min(max(1, int(round(samples * TEST_FRACTION))), samples - 1)
    return samples - n_test, n_test


def run(args: argparse.Namespace) -> int:
    """Generate the data, train with every gradient checked, report; exit code 0, 1 (deviation) or 2 (usage)."""
    network_name = getattr(args, "network", None) or next(iter(NETWORKS))
    demo = NETWORKS[network_name]
    args = argparse.Namespace(**{**vars(args), "network": network_name})
    for option in OPTIONS:
        if getattr(args, option, None) is None:
            setattr(args, option, demo.defaults[option])
    error = _usage_error(args, demo)
    if error:
        print(f"bpcheck demo: error: {error}", file=sys.stderr)
        return 2
    n_train, n_test = _split(args.samples)
    if n_train < demo.min_batch:  # samples = 3 holds out 1: 2 left; only a guard
        print(f"bpcheck demo: error: --samples {args.samples} leaves {n_train} training images", file=sys.stderr)
        return 2

    rng = np.random.default_rng(args.seed)
    X, Y = demo.make_data(args.samples, rng, args.noise)
    X_train, Y_train, X_test, Y_test = X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]
    params = demo.init(rng)
    total_steps = demo.steps_per_epoch(n_train, args.batch_size) * args.epochs
    count = demo.count(params)

    print("bpcheck demo: " + demo.title.format(count=f"{count:,}"))
    print(
        f"  {n_train} training / {n_test} held-out images, noise {args.noise}, seed {args.seed}; "
        f"SGD lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs ({total_steps} steps)"
    )
    print("  " + demo.checked.format(count=f"{count:,}"))
    print(f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'max grad deviation':>18}")
    print(f"{0:>5}  {demo.loss(params, X_train, Y_train):>8.4f}  "
          f"{demo.accuracy(params, X_train, Y_train):>9.1%}  {'(initial)':>18}")

    import torch  # noqa: PLC0415 - lazy, see torch_gradients

    check = demo.new_check()
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of a few small images: threads only add overhead (10x on a busy machine)
    try:
        history = _train(demo, args, rng, params, X_train, Y_train, check, total_steps)
    finally:
        torch.set_num_threads(threads)
    params = history.params
    elapsed = time.perf_counter() - started

    train_acc = demo.accuracy(params, X_train, Y_train)
    test_acc = demo.accuracy(params, X_test, Y_test)
    print(f"final: train accuracy {train_acc:.1%} ({n_train} images), test accuracy {test_acc:.1%} ({n_test} images)")
    for line in check.notes():
        print(line)
    ok = check.worst <= DEVIATION_BOUND
    print(
        f"largest gradient deviation vs torch autograd over {check.steps} steps: {check.worst:.1e} "
        f"(relative, at {check.worst_where}; bound {DEVIATION_BOUND:.0e}): {'OK' if ok else 'FAIL'}"
    )
    print(f"  ({elapsed:.1f} s)")
    return 0 if ok else 1
