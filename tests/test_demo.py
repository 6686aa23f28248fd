"""Tests of ``bpcheck demo`` (oracle.demo) through the CLI entry point ``oracle.cli.main``."""

from __future__ import annotations

import re

import numpy as np
import pytest

from oracle import cli, demo
from refimpl import network

SMALL = ["demo", "--epochs", "4", "--samples", "240", "--seed", "3"]


def run_demo(capsys, argv):
    code = cli.main(argv)
    out = capsys.readouterr().out
    return code, out


def parse(out: str) -> tuple[float, float, float]:
    train = float(re.search(r"train accuracy ([\d.]+)%", out).group(1))
    test = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    deviation = float(re.search(r"largest gradient deviation vs torch autograd over \d+ steps: (\S+)", out).group(1))
    return train, test, deviation


def test_demo_learns_and_every_gradient_matches_torch(capsys):
    code, out = run_demo(capsys, SMALL)
    assert code == 0, out
    train, test, deviation = parse(out)
    assert train > 80.0 and test > 80.0, out  # chance is 50%
    assert deviation < demo.DEVIATION_BOUND
    assert deviation < 1e-12, out  # in fact float64 rounding
    assert out.count("\n") >= 4 + 4  # header, one line per epoch, the verdict
    assert re.search(r"^\s+4\s+[\d.]+\s+[\d.]+%\s+\S+e-\d+$", out, re.M), out  # the line of epoch 4
    assert "OK" in out


def test_demo_is_reproducible(capsys):
    _, first = run_demo(capsys, SMALL)
    _, second = run_demo(capsys, SMALL)
    strip = lambda text: re.sub(r"\([\d.]+ s\)", "", text)  # noqa: E731 - the elapsed time differs
    assert strip(first) == strip(second)


def test_demo_fails_when_a_gradient_is_wrong(capsys, monkeypatch):
    """The check is real: forgetting the 1/N of the mean in dL/dZ2 makes the demo exit 1."""
    monkeypatch.setattr(network, "sigmoid_bce_backward", lambda A2, Y: A2 - Y)
    code, out = run_demo(capsys, ["demo", "--epochs", "1", "--samples", "40", "--batch-size", "4"])
    assert code == 1
    assert "FAIL" in out
    assert parse(out)[2] > 0.1


def test_saturated_steps_are_checked_against_the_logits_form():
    """Where A2 (1 - A2) < 1e-12 torch's BCE backward clamps (pytorch #103316): not a failure of ours."""
    rng = np.random.default_rng(0)
    X, Y = demo.make_bars(6, rng)
    params = network.Params.init(rng)
    params.W2 = np.full((1, 4), 40.0)  # Z2 ~ 40 + for every image: A2 = 1 - 4e-18
    params.B2 = np.array([5.0])
    Y[:] = 0.0  # and all wrong, so the true gradient is large
    acts = network.forward(params, X, Y)
    assert np.all(acts.A2 * (1 - acts.A2) < 1e-12)
    grads = network.backward(params, X, Y, acts)
    literal = demo.torch_gradients(params, X, Y)
    exact = demo.torch_gradients(params, X, Y, logits=True)
    ours = grads.params().as_dict()
    assert demo.gradient_deviation(ours, literal)[0] > 0.5  # torch's clamped chain is far off
    assert demo.gradient_deviation(ours, exact)[0] < 1e-14

    check = demo.GradientCheck()
    check(network.Step(epoch=0, step=0, X=X, Y=Y, params=params, acts=acts, grads=grads))
    assert check.saturated_steps == 1 and check.worst < 1e-14 and check.clamped_deviation > 0.5


def test_gradient_deviation_is_relative_to_the_largest_entry():
    ours = {"W1": np.array([1.0, 2.0]), "B1": np.array([0.0])}
    ref = {"W1": np.array([1.0, 2.0]), "B1": np.array([1e-3])}
    assert demo.gradient_deviation(ours, ref) == (pytest.approx(5e-4), "B1")
    zeros = {"W1": np.zeros(2), "B1": np.zeros(1)}
    assert demo.gradient_deviation(zeros, zeros)[0] == 0.0


def test_make_bars():
    X, Y = demo.make_bars(50, np.random.default_rng(0), noise=0.0)
    assert X.shape == (50, 1, 6, 6) and Y.shape == (50, 1)
    for image, label in zip(X[:, 0], Y[:, 0]):
        lines = image.sum(axis=0 if label == 1 else 1)  # column sums for a vertical bar
        assert sorted(lines) == [0, 0, 0, 0, 6, 6]
        on = np.flatnonzero(lines)
        assert on[1] == on[0] + 1 and 1 <= on[0] <= 3  # two adjacent lines, off the border


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: bpcheck" in out
    if "demo" in argv:
        for option in ("--epochs", "--lr", "--batch-size", "--seed", "--samples"):
            assert option in out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("option", [["--epochs", "0"], ["--lr", "-1"], ["--batch-size", "0"], ["--samples", "1"], ["--lr", "nan"]])
def test_bad_options_are_usage_errors(capsys, option):
    assert cli.main(["demo", *option]) == 2
    assert "error" in capsys.readouterr().err


def test_subcommands_table():
    names = [name for name, _ in cli.SUBCOMMANDS]
    assert names[0] == "demo" and len(set(names)) == len(names)
    for _, module in cli.SUBCOMMANDS:
        assert callable(module.add_arguments) and callable(module.run) and module.HELP


def test_a_nan_gradient_is_an_infinite_deviation():
    ours = {"W1": np.array([1.0, np.nan]), "B1": np.array([0.0])}
    ref = {"W1": np.array([1.0, 2.0]), "B1": np.array([0.0])}
    assert demo.gradient_deviation(ours, ref) == (float("inf"), "W1")
