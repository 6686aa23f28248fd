"""Train the worked network on a synthetic bar task, checking every gradient against torch autograd.

The task: 6x6 images holding one bar, two pixels wide and full length,
vertical (label 1) or horizontal (label 0), at a random position off the
border, plus Gaussian noise (``make_bars``). The
network of ``refimpl.network`` (15 parameters) learns it by minibatch SGD. At
every step the 15 parameter gradients from ``refimpl.network.backward`` are
compared with torch autograd on the same network, parameters and batch
(float64); the command fails (exit code 1) if the largest relative deviation
ever exceeds ``DEVIATION_BOUND``, far above float64 rounding and far below
any real mistake.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from refimpl import network
from refimpl.losses import EPSILON

HELP = "train the worked network (15 parameters) on 6x6 bar images, checking every gradient against torch"

DEVIATION_BOUND = 1e-10
"""Largest relative gradient deviation from torch accepted: float64 rounding is ~1e-16, a real bug ~1e-2 and up."""

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


class GradientCheck:
    """The ``on_step`` callback: compares each step's parameter gradients with torch and keeps the worst."""

    def __init__(self) -> None:
        self.steps = 0
        self.saturated_steps = 0  # steps compared with the logits form of torch's loss
        self.clamped_deviation = 0.0  # in those steps, how far torch's literal BCE(sigmoid) autograd was off
        self.worst = -1.0
        self.worst_where = ""
        self.epoch_worst: dict[int, float] = {}

    def __call__(self, step: network.Step) -> None:
        A2 = step.acts.A2
        saturated = bool(np.any(A2 * (1 - A2) < EPSILON))
        ours = step.grads.params().as_dict()
        reference = torch_gradients(step.params, step.X, step.Y, logits=saturated)
        deviation, name = gradient_deviation(ours, reference)
        if saturated:
            literal = torch_gradients(step.params, step.X, step.Y, logits=False)
            self.clamped_deviation = max(self.clamped_deviation, gradient_deviation(ours, literal)[0])
        self.steps += 1
        self.saturated_steps += saturated
        self.epoch_worst[step.epoch] = max(self.epoch_worst.get(step.epoch, 0.0), deviation)
        if deviation > self.worst:
            self.worst, self.worst_where = deviation, f"step {step.step}, d{name}"


# ----------------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=15, help="passes over the training set (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=0.5, help="SGD learning rate (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per SGD step (default: %(default)s)")
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seed of the data, the initialisation and the batch order (default: %(default)s)",
    )
    parser.add_argument(
        "--samples", type=int, default=800,
        help=f"images generated; {round(TEST_FRACTION * 100)}%% are held out for testing (default: %(default)s)",
    )
    parser.add_argument(
        "--noise", type=float, default=0.3, help="standard deviation of the pixel noise (default: %(default)s)"
    )


def _progress():
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    console = Console()
    return Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,  # no bar in a log or a pipe
    )


def _train(args, rng, params, X_train, Y_train, check, total_steps) -> network.History:
    """Train with the progress bar, printing a line per epoch; ``check`` sees every step."""
    with _progress() as progress:
        task = progress.add_task("training", total=total_steps)

        def on_step(step: network.Step) -> None:
            check(step)
            progress.advance(task)

        def on_epoch(epoch: int, params_reached: network.Params, loss: float) -> None:
            acc = network.accuracy(params_reached, X_train, Y_train)
            print(f"{epoch + 1:>5}  {loss:>8.4f}  {acc:>9.1%}  {check.epoch_worst.get(epoch, 0.0):>18.1e}")

        history = network.train(
            params, X_train, Y_train, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
            rng=rng, on_step=on_step, on_epoch=on_epoch,
        )
    return history


def _usage_error(args: argparse.Namespace) -> str | None:
    for name in ("epochs", "batch_size", "samples"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}"
    if not (math.isfinite(args.lr) and args.lr > 0):
        return f"--lr must be a finite number > 0, got {args.lr}"
    if not (math.isfinite(args.noise) and args.noise >= 0):
        return f"--noise must be a finite number >= 0, got {args.noise}"
    if args.samples < 2:
        return f"--samples must be >= 2 (at least one training and one held-out image), got {args.samples}"
    return None


def _split(samples: int) -> tuple[int, int]:
    """(training, held-out) image counts: ``TEST_FRACTION`` held out, at least one of each."""
    n_test = min(max(1, int(round(samples * TEST_FRACTION))), samples - 1)
    return samples - n_test, n_test


def run(args: argparse.Namespace) -> int:
    """Generate the data, train with every gradient checked, report; exit code 0, 1 (deviation) or 2 (usage)."""
    error = _usage_error(args)
    if error:
        print(f"bpcheck demo: error: {error}", file=sys.stderr)
        return 2
    n_train, n_test = _split(args.samples)

    rng = np.random.default_rng(args.seed)
    X, Y = make_bars(args.samples, rng, noise=args.noise)
    X_train, Y_train, X_test, Y_test = X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]
    params = network.Params.init(rng)
    steps_per_epoch = -(-n_train // args.batch_size)
    total_steps = steps_per_epoch * args.epochs

    print(
        f"bpcheck demo: the worked network ({params.count()} parameters) on 6x6 bar images, "
        "vertical (1) vs horizontal (0)"
    )
    print(
        f"  {n_train} training / {n_test} held-out images, noise {args.noise}, seed {args.seed}; "
        f"SGD lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs ({total_steps} steps)"
    )
    print("  at every step: the 15 parameter gradients vs torch autograd on the same batch (float64)")
    print(f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  {'max grad deviation':>18}")
    print(f"{0:>5}  {float(network.forward(params, X_train, Y_train).L):>8.4f}  "
          f"{network.accuracy(params, X_train, Y_train):>9.1%}  {'(initial)':>18}")

    import torch  # noqa: PLC0415 - lazy, see torch_gradients

    check = GradientCheck()
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of a few 6x6 images: threads only add overhead (10x on a busy machine)
    try:
        history = _train(args, rng, params, X_train, Y_train, check, total_steps)
    finally:
        torch.set_num_threads(threads)
    params = history.params
    elapsed = time.perf_counter() - started

    train_acc = network.accuracy(params, X_train, Y_train)
    test_acc = network.accuracy(params, X_test, Y_test)
    print(f"final: train accuracy {train_acc:.1%} ({n_train} images), test accuracy {test_acc:.1%} ({n_test} images)")
    if check.saturated_steps:
        print(
            f"  note: in {check.saturated_steps} step(s) some A2 (1 - A2) < 1e-12. There torch's BCE backward clamps "
            f"(pytorch #103316)\n  and its autograd of BCE(sigmoid(Z2)) was off by up to {check.clamped_deviation:.1e}, "
            "so those steps were checked\n  against torch's binary_cross_entropy_with_logits(Z2), the same loss "
            "without the clamp"
        )
    ok = check.worst <= DEVIATION_BOUND
    print(
        f"largest gradient deviation vs torch autograd over {check.steps} steps: {check.worst:.1e} "
        f"(relative, at {check.worst_where}; bound {DEVIATION_BOUND:.0e}): {'OK' if ok else 'FAIL'}"
    )
    print(f"  ({elapsed:.1f} s)")
    return 0 if ok else 1
