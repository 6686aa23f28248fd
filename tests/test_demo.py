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


# ----------------------------------------------------------------------------- --network lenet

import types  # noqa: E402

import refimpl  # noqa: E402
from oracle.mistakes import MISTAKES  # noqa: E402
from oracle.tolerances import chain_rounding  # noqa: E402
from refimpl import lenet  # noqa: E402

LENET = ["demo", "--network", "lenet"]


def epoch_losses(out: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"^\s+\d+\s+([\d.]+)\s+[\d.]+%", out, re.M)]


def test_lenet_learns_and_every_gradient_matches_torch(capsys):
    code, out = run_demo(capsys, LENET)
    assert code == 0, out
    losses = epoch_losses(out)
    assert len(losses) == 1 + 4, out  # the initial loss and one per epoch
    assert losses[-1] < losses[0] / 3, out  # ln 4 = 1.39 at chance; the loss falls by more than 3x
    train, test, deviation = parse(out)
    assert train > 70.0 and test > 70.0, out  # chance is 25%
    assert deviation < 1e-13, out  # in fact float64 rounding
    assert "60 steps" in out and "OK" in out and "1,584 parameters" in out


def a_step(seed: int = 0, n: int = 16):
    rng = np.random.default_rng(seed)
    X, T = demo.make_strokes(n, rng)
    params = lenet.init(rng, len(demo.STROKE_CLASSES))
    fwd = lenet.forward(params, X, T)
    return params, X, T, fwd


def test_lenet_checks_every_gradient_and_the_bound_covers_the_chains_rounding():
    params, X, T, fwd = a_step()
    ours = lenet.backward(params, X, T, fwd)
    reference = demo.torch_lenet_gradients(params, X, T)
    layers = [layer.name for layer in lenet.layers(4)]
    assert set(ours) == set(reference) == set(layers) | {"loss"} | set(params)  # dL/dX is ours["conv1"]
    scales = demo.term_scales(params, X, T, fwd)
    for key, g in ours.items():
        assert np.all(np.abs(g) <= scales[key] * (1 + 1e-12)), key  # a term scale bounds its result
    devs = demo.deviations(ours, reference, scales)
    assert max(devs.values()) < 1e-14
    assert demo.culprit(devs, 4, demo.DEVIATION_BOUND) is None
    rounding = chain_rounding(demo.lenet_fan_ins(params, fwd), demo.batch_norm_amplification(params, fwd))
    assert rounding < demo.DEVIATION_BOUND / 100


RIGHT_BATCH_NORM_BACKWARD = refimpl.batch_norm_backward  # the mutants below call it; one test patches refimpl's


def with_rule(name: str, rule) -> types.SimpleNamespace:
    """refimpl's rules with ``name`` replaced: a network built on a mutant rule."""
    return types.SimpleNamespace(**{**vars(refimpl), name: rule})


def bn_without_mean_terms(g, x, weight, bias, *, eps):
    """batch_norm's grad_x as if the statistics were constants: gamma * g * inv_std."""
    _, gw, gb = RIGHT_BATCH_NORM_BACKWARD(g, x, weight, bias, eps=eps)
    inv_std = 1 / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
    return g * weight.reshape(1, -1, 1, 1) * inv_std, gw, gb


def bn_unbiased_variance(g, x, weight, bias, *, eps):
    """batch_norm's grad_x with the unbiased variance sum (x - mean)^2 / (m - 1) in inv_std and xhat."""
    _, gw, gb = RIGHT_BATCH_NORM_BACKWARD(g, x, weight, bias, eps=eps)
    axes, m = (0, 2, 3), x.size // x.shape[1]
    centred = x - x.mean(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt((centred**2).sum(axis=axes, keepdims=True) / (m - 1) + eps)
    xhat, gy = centred * inv_std, g * weight.reshape(1, -1, 1, 1)
    grad_x = inv_std * (gy - gy.mean(axis=axes, keepdims=True) - xhat * (gy * xhat).mean(axis=axes, keepdims=True))
    return grad_x, gw, gb


def ce_mean_not_divided(g, z, target, *, reduction):
    """cross_entropy's gradient for 'mean' without the 1/N."""
    return refimpl.cross_entropy_backward(g, z, target, reduction=reduction) * z.shape[0]


HAND_WRITTEN = [
    ("batch_norm_backward", bn_without_mean_terms, "bn2"),
    ("batch_norm_backward", bn_unbiased_variance, "bn2"),
    ("cross_entropy_backward", ce_mean_not_divided, "loss"),
]
FIRST_LAYER = {"conv2d": "conv2", "batch_norm": "bn2", "max_pool2d": "pool1", "avg_pool2d": "pool2",
               "relu": "relu3", "linear": "fc2", "flatten": "flat"}
ZOO = [name for name, mistake in MISTAKES.items() if mistake.op in FIRST_LAYER]


@pytest.mark.parametrize("rule, wrong, layer", HAND_WRITTEN, ids=[w.__name__ for _, w, _ in HAND_WRITTEN])
def test_a_wrong_rule_is_caught_and_named_by_layer(rule, wrong, layer):
    params, X, T, fwd = a_step()
    rules = with_rule(rule, wrong)
    ours = lenet.backward(params, X, T, fwd, rules=rules)
    devs = demo.deviations(ours, demo.torch_lenet_gradients(params, X, T), demo.term_scales(params, X, T, fwd))
    found = demo.culprit(devs, 4, demo.DEVIATION_BOUND)
    assert found is not None and found[:2] == (layer, rule), found
    assert devs[found[2]] > 1e-4  # a whole term off, far beyond the bound


@pytest.mark.parametrize("mistake", ZOO)
def test_every_zoo_mistake_the_network_can_see_is_named_by_layer(mistake):
    """Each classic mistake of the zoo on the network's ops: caught at the first layer using the op, or
    identical to refimpl's rule on this network's configurations (stride = kernel, no dilation...)."""
    op = MISTAKES[mistake].op
    params, X, T, fwd = a_step()
    ours = lenet.backward(params, X, T, fwd, rules=with_rule(f"{op}_backward", MISTAKES[mistake].backward))
    right = lenet.backward(params, X, T, fwd)
    scales = demo.term_scales(params, X, T, fwd)
    devs = demo.deviations(ours, demo.torch_lenet_gradients(params, X, T), scales)
    found = demo.culprit(devs, 4, demo.DEVIATION_BOUND)
    if found is None:  # the same rule here, to rounding (the zoo's mutants start from the derivation's conv rule)
        assert max(demo.deviations(ours, right, scales).values()) < 1e-13, mistake
    else:
        assert found[:2] == (FIRST_LAYER[op], f"{op}_backward"), found


def test_lenet_demo_fails_and_names_the_layer(capsys, monkeypatch):
    """Through the CLI: refimpl's batch_norm_backward replaced in-process makes the demo exit 1, naming bn2."""
    monkeypatch.setattr(refimpl, "batch_norm_backward", bn_without_mean_terms)
    code, out = run_demo(capsys, [*LENET, "--epochs", "1", "--samples", "40"])
    assert code == 1, out
    assert "FAIL" in out
    assert re.search(r"first wrong at step 0: layer bn2 \(batch_norm_backward\)", out), out


def test_lenet_demo_is_reproducible(capsys):
    argv = [*LENET, "--epochs", "1", "--samples", "48"]
    strip = lambda text: re.sub(r"\([\d.]+ s\)", "", text)  # noqa: E731
    assert strip(run_demo(capsys, argv)[1]) == strip(run_demo(capsys, argv)[1])


def test_make_strokes():
    X, T = demo.make_strokes(200, np.random.default_rng(0), noise=0.0)
    assert X.shape == (200, 1, 12, 12) and T.shape == (200,) and T.dtype == np.int64
    assert set(T) == {0, 1, 2, 3}
    for image, label in zip(X[:, 0], T):
        rows, cols = np.nonzero(image)
        assert 5 <= len(rows) <= 8 and np.all(image[rows, cols] == 1.0)
        d_rows, d_cols = np.diff(rows), np.diff(cols)  # np.nonzero walks row-major
        expected = {0: (0, 1), 1: (1, 0), 2: (1, 1), 3: (1, -1)}[label]
        assert np.all(d_rows == expected[0]) and np.all(d_cols == expected[1]), label


@pytest.mark.parametrize("option", [["--batch-size", "1"], ["--samples", "2"], ["--network", "nope"]])
def test_lenet_bad_options_are_usage_errors(capsys, option):
    argv = [*LENET[:1], *(option if option[0] == "--network" else [*LENET[1:], *option])]
    if option[0] == "--network":
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    else:
        assert cli.main(argv) == 2
        assert "error" in capsys.readouterr().err


def test_the_network_sees_a_zoo_mistake_of_each_of_its_ops():
    """The zoo test above could pass with every mutant invisible: at least one per op must be caught."""
    params, X, T, fwd = a_step()
    reference, scales = demo.torch_lenet_gradients(params, X, T), demo.term_scales(params, X, T, fwd)
    caught = set()
    for mistake in ZOO:
        op = MISTAKES[mistake].op
        ours = lenet.backward(params, X, T, fwd, rules=with_rule(f"{op}_backward", MISTAKES[mistake].backward))
        if demo.culprit(demo.deviations(ours, reference, scales), 4, demo.DEVIATION_BOUND):
            caught.add(op)
    assert caught == set(FIRST_LAYER)
