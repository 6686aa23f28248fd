"""Tests of refimpl.network, the worked network of the derivation, against torch autograd."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
import torch
import torch.nn.functional as tf

from refimpl import network
from refimpl.activations import sigmoid, sigmoid_backward
from refimpl.losses import binary_cross_entropy_backward
from refimpl.network import Activations, Gradients, Params, backward, forward, train

RTOL = 1e-10  # float64 rounding level; a wrong rule is off by O(1)
ATOL = 1e-15  # for entries that are exactly zero on one side and a rounding residue on the other


def batch(n: int, seed: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 1, 6, 6)).astype(dtype)
    Y = rng.integers(0, 2, size=(n, 1)).astype(dtype)
    return X, Y


def torch_network(params: Params, X: np.ndarray, Y: np.ndarray) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The same network by torch.nn.functional; returns (parameter leaves, intermediates), after backward."""
    leaves = {name: torch.tensor(a, requires_grad=True) for name, a in params.as_dict().items()}
    x = torch.tensor(X, requires_grad=True)
    inter = {}
    inter["Z1"] = tf.conv2d(x, leaves["W1"], leaves["B1"])
    inter["A1"] = tf.relu(inter["Z1"])
    inter["P1"] = tf.max_pool2d(inter["A1"], kernel_size=2, stride=2)
    inter["F"] = torch.flatten(inter["P1"], 1)
    inter["Z2"] = tf.linear(inter["F"], leaves["W2"], leaves["B2"])
    inter["A2"] = torch.sigmoid(inter["Z2"])
    for tensor in inter.values():
        tensor.retain_grad()
    inter["L"] = tf.binary_cross_entropy(inter["A2"], torch.tensor(Y))
    inter["L"].backward()
    inter["X"] = x
    return leaves, inter


def test_the_network_has_15_parameters():
    params = Params.init(np.random.default_rng(0))
    assert params.count() == 15
    assert {k: v.shape for k, v in params.as_dict().items()} == {
        "W1": (1, 1, 3, 3), "B1": (1,), "W2": (1, 4), "B2": (1,)
    }
    assert all(a.dtype == np.float64 for a in params.as_dict().values())
    assert all(a.dtype == np.float32 for a in Params.init(np.random.default_rng(0), np.float32).as_dict().values())


def test_forward_shapes():
    params = Params.init(np.random.default_rng(0))
    X, Y = batch(5, 0)
    acts = forward(params, X, Y)
    shapes = {name: getattr(acts, name).shape for name in ("Z1", "A1", "P1", "F", "Z2", "A2", "L")}
    assert shapes == {"Z1": (5, 1, 4, 4), "A1": (5, 1, 4, 4), "P1": (5, 1, 2, 2), "F": (5, 4), "Z2": (5, 1), "A2": (5, 1), "L": ()}


@pytest.mark.parametrize("seed", range(5))
def test_collapsed_dZ2_equals_the_chain_of_bce_and_sigmoid_backward(seed):
    rng = np.random.default_rng(seed)
    n = 7
    Z2 = rng.uniform(-6, 6, size=(n, 1))  # A2 away from 0 and 1: BCE's clamp is not involved
    Y = rng.integers(0, 2, size=(n, 1)).astype(float)
    A2 = sigmoid(Z2)
    dA2 = binary_cross_entropy_backward(np.array(1.0), A2, Y, reduction="mean")
    chained = sigmoid_backward(dA2, Z2)
    np.testing.assert_allclose(network.sigmoid_bce_backward(A2, Y), chained, rtol=1e-13, atol=0)
    np.testing.assert_allclose(network.sigmoid_bce_backward(A2, Y), (A2 - Y) / n, rtol=0, atol=0)


def test_collapsed_dZ2_stays_exact_where_the_chain_is_clamped():
    """At Z2 = -40, target 1, the chain underflows (pytorch #103316); the collapsed form is (A2 - 1) / N ~ -1 / N."""
    Z2 = np.array([[-40.0], [0.0]])
    Y = np.array([[1.0], [1.0]])
    A2 = sigmoid(Z2)
    chained = sigmoid_backward(binary_cross_entropy_backward(np.array(1.0), A2, Y), Z2)
    collapsed = network.sigmoid_bce_backward(A2, Y)
    assert abs(chained[0, 0]) < 1e-5  # sigmoid(-40) / 1e-12 / N = 2e-6 instead of 0.5
    np.testing.assert_allclose(collapsed[0, 0], -0.5, rtol=1e-15)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40))
@example(seed=0, n=1)
@example(seed=4, n=33)
def test_every_gradient_matches_torch_autograd(seed, n):
    """End to end, on random batches and random parameters: every intermediate and parameter gradient."""
    rng = np.random.default_rng(100 + seed)
    params = Params.init(rng)
    X, Y = batch(n, seed)
    acts = forward(params, X, Y)
    grads = backward(params, X, Y, acts)
    leaves, inter = torch_network(params, X, Y)

    for name in ("Z1", "A1", "P1", "F", "Z2", "A2"):
        np.testing.assert_allclose(getattr(acts, name), inter[name].detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(acts.L, inter["L"].item(), rtol=RTOL, err_msg="L")
    for name in ("A2", "Z2", "F", "P1", "A1", "Z1", "X"):
        np.testing.assert_allclose(
            getattr(grads, "d" + name), inter[name].grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="d" + name
        )
    for name in ("W1", "B1", "W2", "B2"):
        ours = getattr(grads, "d" + name)
        assert ours.shape == getattr(params, name).shape
        np.testing.assert_allclose(ours, leaves[name].grad.numpy(), rtol=RTOL, atol=ATOL, err_msg="d" + name)
    assert grads.params().count() == 15


def test_a_dead_relu_gives_zero_conv_gradients_like_torch():
    params = Params.init(np.random.default_rng(0))
    params.B1 = np.array([-100.0])  # every Z1 < 0
    X, Y = batch(4, 0)
    grads = backward(params, X, Y, forward(params, X, Y))
    leaves, _ = torch_network(params, X, Y)
    np.testing.assert_array_equal(grads.dW1, 0.0)
    np.testing.assert_array_equal(grads.dB1, 0.0)
    np.testing.assert_array_equal(leaves["W1"].grad.numpy(), 0.0)


def test_float32_network_stays_float32_and_is_close_to_float64():
    params64 = Params.init(np.random.default_rng(1))
    params32 = Params(**{k: v.astype(np.float32) for k, v in params64.as_dict().items()})
    X, Y = batch(8, 1)
    g64 = backward(params64, X, Y, forward(params64, X, Y))
    acts32 = forward(params32, X.astype(np.float32), Y.astype(np.float32))
    g32 = backward(params32, X.astype(np.float32), Y.astype(np.float32), acts32)
    for name in ("dW1", "dB1", "dW2", "dB2", "dZ1", "dX"):
        ours = getattr(g32, name)
        assert ours.dtype == np.float32, name
        scale = np.max(np.abs(getattr(g64, name)))
        np.testing.assert_allclose(ours, getattr(g64, name), rtol=1e-4, atol=1e-5 * scale, err_msg=name)
    assert acts32.L.dtype == np.float32


def test_inputs_are_not_modified():
    params = Params.init(np.random.default_rng(2))
    X, Y = batch(6, 2)
    saved = (params.copy(), X.copy(), Y.copy())
    acts = forward(params, X, Y)
    backward(params, X, Y, acts)
    train(params, X, Y, lr=0.1, epochs=2, batch_size=4, rng=np.random.default_rng(0))
    for name, a in saved[0].as_dict().items():
        np.testing.assert_array_equal(getattr(params, name), a)
    np.testing.assert_array_equal(X, saved[1])
    np.testing.assert_array_equal(Y, saved[2])


def bars(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A learnable task: a two-pixel-wide interior bar, vertical (1) or horizontal (0), plus noise."""
    labels = rng.integers(0, 2, size=n)
    starts = rng.integers(1, 4, size=n)
    X = rng.normal(0.0, 0.3, size=(n, 1, 6, 6))
    for k in range(n):
        rows_or_cols = slice(starts[k], starts[k] + 2)
        if labels[k]:
            X[k, 0, :, rows_or_cols] += 1.0
        else:
            X[k, 0, rows_or_cols, :] += 1.0
    return X, labels.reshape(n, 1).astype(float)


@pytest.mark.parametrize("seed", range(3))
def test_training_reduces_the_loss(seed):
    rng = np.random.default_rng(seed)
    X, Y = bars(200, rng)
    params = Params.init(rng)
    steps, epochs_seen = [], []
    history = train(
        params, X, Y, lr=0.5, epochs=5, batch_size=8, rng=rng,
        on_step=steps.append, on_epoch=lambda epoch, p, loss: epochs_seen.append((epoch, loss)),
    )
    assert len(steps) == 5 * 25 == len(history.step_losses)
    assert [s.step for s in steps] == list(range(125))
    assert [e for e, _ in epochs_seen] == list(range(5))
    assert [loss for _, loss in epochs_seen] == history.epoch_losses
    assert isinstance(steps[0], network.Step) and isinstance(steps[0].acts, Activations)
    assert isinstance(steps[0].grads, Gradients) and steps[0].X.shape == (8, 1, 6, 6)
    assert history.epoch_losses[-1] < 0.5 * history.initial_loss
    assert history.epoch_losses[-1] == pytest.approx(float(forward(history.params, X, Y).L))
    assert network.accuracy(history.params, X, Y) > 0.8


def test_a_step_is_plain_gradient_descent():
    rng = np.random.default_rng(5)
    X, Y = batch(4, 5)
    params = Params.init(rng)
    history = train(params, X, Y, lr=0.25, epochs=1, batch_size=4, rng=rng)
    grads = backward(params, X, Y, forward(params, X, Y))  # one batch = the whole set, order irrelevant to the mean
    for name in ("W1", "B1", "W2", "B2"):
        expected = getattr(params, name) - 0.25 * getattr(grads, "d" + name)
        np.testing.assert_allclose(getattr(history.params, name), expected, rtol=1e-13, atol=1e-15)


BAD = [
    ("X 3-d", lambda p, X, Y: forward(p, X[0], Y), ValueError, "X"),
    ("X 5x5", lambda p, X, Y: forward(p, X[:, :, :5, :5], Y), ValueError, "X"),
    ("Y 1-d", lambda p, X, Y: forward(p, X, Y[:, 0]), ValueError, "Y"),
    ("Y count", lambda p, X, Y: forward(p, X, Y[:2]), ValueError, "Y"),
    ("Y outside [0, 1]", lambda p, X, Y: forward(p, X, Y + 2), ValueError, "target"),
    ("X float32", lambda p, X, Y: forward(p, X.astype(np.float32), Y), TypeError, "dtype"),
    ("X list", lambda p, X, Y: forward(p, X.tolist(), Y), TypeError, "X"),
    ("W1 shape", lambda p, X, Y: forward(Params(np.ones((1, 1, 2, 2)), p.B1, p.W2, p.B2), X, Y), ValueError, "W1"),
    ("acts", lambda p, X, Y: backward(p, X, Y, {}), TypeError, "acts"),
    ("lr 0", lambda p, X, Y: train(p, X, Y, lr=0.0, epochs=1, batch_size=1, rng=np.random.default_rng()), ValueError, "lr"),
    ("lr str", lambda p, X, Y: train(p, X, Y, lr="0.1", epochs=1, batch_size=1, rng=np.random.default_rng()), TypeError, "lr"),
    ("epochs 0", lambda p, X, Y: train(p, X, Y, lr=0.1, epochs=0, batch_size=1, rng=np.random.default_rng()), ValueError, "epochs"),
    ("batch float", lambda p, X, Y: train(p, X, Y, lr=0.1, epochs=1, batch_size=2.0, rng=np.random.default_rng()), TypeError, "batch_size"),
    ("rng seed", lambda p, X, Y: train(p, X, Y, lr=0.1, epochs=1, batch_size=2, rng=0), TypeError, "rng"),
]


@pytest.mark.parametrize("call,exception,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_arguments(call, exception, words):
    params = Params.init(np.random.default_rng(0))
    X, Y = batch(3, 0)
    with pytest.raises(exception, match=words):
        call(params, X, Y)
