"""The worked network of the derivation (``backprop-in-cnn.md``), built only from the contract's rules.

    X (N,1,6,6) --conv2d W1 (1,1,3,3), B1 (1,)--> Z1 (N,1,4,4) --relu--> A1
      --max_pool2d 2x2, stride 2--> P1 (N,1,2,2) --flatten--> F (N,4)
      --linear W2 (1,4), B2 (1,)--> Z2 (N,1) --sigmoid--> A2
      --binary_cross_entropy(A2, Y, 'mean')--> L

15 trainable parameters (9 + 1 + 4 + 1). ``backward`` applies the chain rule
layer by layer, from L back to X, with each layer's own backward rule, except
that the sigmoid + BCE pair is collapsed into its closed form

    dL/dZ2 = (A2 - Y) / N

(the derivation's "prediction error", divided by N for the mean). Pure NumPy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from refimpl.activations import flatten, flatten_backward, relu, relu_backward, sigmoid
from refimpl.arguments import check_array, check_positive_int, check_positive_real, check_same_dtype
from refimpl.convolution import conv2d, conv2d_backward
from refimpl.dense import linear, linear_backward
from refimpl.losses import binary_cross_entropy, binary_cross_entropy_backward
from refimpl.pooling import max_pool2d, max_pool2d_backward

IMAGE_SHAPE = (1, 6, 6)
"""(C, H, W) of one input image."""

POOL = {"kernel_size": 2, "stride": 2}
"""Configuration of the max-pooling layer."""


@dataclass
class Params:
    """The 15 trainable parameters: conv filter W1 (1,1,3,3) and bias B1 (1,), dense W2 (1,4) and B2 (1,)."""

    W1: np.ndarray
    B1: np.ndarray
    W2: np.ndarray
    B2: np.ndarray

    SHAPES = {"W1": (1, 1, 3, 3), "B1": (1,), "W2": (1, 4), "B2": (1,)}

    @classmethod
    def init(cls, rng: np.random.Generator, dtype=np.float64) -> "Params":
        """Random parameters that start training in a live regime.

            W1 ~ N(0, 2/9)          He initialisation for the 9 inputs of each conv output
            B1 = 0.1                a small positive bias, so the ReLU is not dead at the start
            W2 ~ U(-1/2, 1/2)       torch's default for a linear layer with 4 inputs: U(-1/sqrt(4), 1/sqrt(4))
            B2 = 0
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        dtype = np.dtype(dtype)
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        return cls(
            W1=(rng.standard_normal((1, 1, 3, 3)) * np.sqrt(2 / 9)).astype(dtype),
            B1=np.full((1,), 0.1, dtype=dtype),
            W2=rng.uniform(-0.5, 0.5, size=(1, 4)).astype(dtype),
            B2=np.zeros((1,), dtype=dtype),
        )

    def check(self) -> np.dtype:
        """The parameters' common dtype, after checking each is a float array of its shape."""
        for name, shape in self.SHAPES.items():
            a = check_array(getattr(self, name), name)
            if a.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        return check_same_dtype(W1=self.W1, B1=self.B1, W2=self.W2, B2=self.B2)

    def count(self) -> int:
        """Number of trainable scalars: 9 + 1 + 4 + 1 = 15."""
        return sum(getattr(self, name).size for name in self.SHAPES)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.SHAPES}

    def copy(self) -> "Params":
        return Params(**{name: a.copy() for name, a in self.as_dict().items()})


@dataclass
class Activations:
    """Every intermediate of the forward pass, named as in the derivation; L is a 0-d array."""

    Z1: np.ndarray  # conv output        (N,1,4,4)
    A1: np.ndarray  # relu(Z1)           (N,1,4,4)
    P1: np.ndarray  # maxpool(A1)        (N,1,2,2)
    F: np.ndarray  # flatten(P1)         (N,4)
    Z2: np.ndarray  # F @ W2.T + B2      (N,1)
    A2: np.ndarray  # sigmoid(Z2) = y_hat (N,1)
    L: np.ndarray  # mean BCE            ()


@dataclass
class Gradients:
    """dL/d of every intermediate (dA2 ... dZ1, and dX) and of every parameter (dW1, dB1, dW2, dB2).

    ``dA2`` is BCE's own backward rule; it is reported but not used: ``dZ2`` is
    the collapsed ``(A2 - Y) / N``.
    """

    dA2: np.ndarray
    dZ2: np.ndarray
    dF: np.ndarray
    dP1: np.ndarray
    dA1: np.ndarray
    dZ1: np.ndarray
    dX: np.ndarray
    dW1: np.ndarray
    dB1: np.ndarray
    dW2: np.ndarray
    dB2: np.ndarray

    def params(self) -> Params:
        """The parameter gradients, shaped like the parameters."""
        return Params(W1=self.dW1, B1=self.dB1, W2=self.dW2, B2=self.dB2)


def _check_batch(params: Params, X, Y=None) -> np.dtype:
    params.check()
    check_array(X, "X", ndim=4)
    if X.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"X must have shape (N, {', '.join(map(str, IMAGE_SHAPE))}), got {X.shape}")
    if Y is not None:
        check_array(Y, "Y", ndim=2)
        if Y.shape != (X.shape[0], 1):
            raise ValueError(f"Y must have shape (N, 1) = ({X.shape[0]}, 1) to match X {X.shape}, got {Y.shape}")
    return check_same_dtype(params=params.W1, X=X, Y=Y)


def _forward_to_A2(params: Params, X: np.ndarray) -> tuple[np.ndarray, ...]:
    Z1 = conv2d(X, params.W1, params.B1)
    A1 = relu(Z1)
    P1 = max_pool2d(A1, **POOL)
    F = flatten(P1)
    Z2 = linear(F, params.W2, params.B2)
    A2 = sigmoid(Z2)
    return Z1, A1, P1, F, Z2, A2


def forward(params: Params, X: np.ndarray, Y: np.ndarray) -> Activations:
    """The forward pass, keeping every intermediate.

        Z1 = conv2d(X, W1) + B1;  A1 = relu(Z1);  P1 = maxpool_2x2(A1);  F = flatten(P1)
        Z2 = F @ W2.T + B2;  A2 = sigmoid(Z2);  L = mean_n BCE(A2[n], Y[n])

    ``X`` is (N, 1, 6, 6), ``Y`` (N, 1) with labels in [0, 1], both of the parameters' dtype.
    """
    _check_batch(params, X, Y)
    Z1, A1, P1, F, Z2, A2 = _forward_to_A2(params, X)
    L = binary_cross_entropy(A2, Y, reduction="mean")
    return Activations(Z1=Z1, A1=A1, P1=P1, F=F, Z2=Z2, A2=A2, L=L)


def predict(params: Params, X: np.ndarray) -> np.ndarray:
    """The predicted probabilities A2 (N, 1) for the images ``X`` (N, 1, 6, 6)."""
    _check_batch(params, X)
    return _forward_to_A2(params, X)[-1]


def sigmoid_bce_backward(A2: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """dL/dZ2 of ``L = mean BCE(sigmoid(Z2), Y)`` in closed form: the prediction error over the count.

        dL/dZ2 = dL/dA2 * dA2/dZ2 = [(A2 - Y) / (A2 (1 - A2)) / N] * [A2 (1 - A2)] = (A2 - Y) / N

    with N = A2.size. Exact for every Z2, where chaining BCE's clamped backward
    through sigmoid underflows once A2 (1 - A2) < 1e-12.
    """
    return (A2 - Y) / A2.dtype.type(A2.size)


def backward(params: Params, X: np.ndarray, Y: np.ndarray, acts: Activations) -> Gradients:
    """The backward pass: dL/d of every intermediate and parameter, from L back to X.

        dZ2            = (A2 - Y) / N                       sigmoid + BCE, collapsed
        dF, dW2, dB2   = linear_backward(dZ2, F, W2, B2)    dF = dZ2 @ W2, dW2 = dZ2.T @ F, dB2 = sum_n dZ2
        dP1            = flatten_backward(dF, P1)           reshape back to (N,1,2,2)
        dA1            = max_pool2d_backward(dP1, A1)       routed to each window's maximum, zero elsewhere
        dZ1            = relu_backward(dA1, Z1)             dA1 * (Z1 > 0)
        dX, dW1, dB1   = conv2d_backward(dZ1, X, W1, B1)    dW1 = X correlated with dZ1, dB1 = sum dZ1

    ``acts`` must be ``forward(params, X, Y)``. ``dA2`` (BCE's own backward) is
    computed for reference only.
    """
    dtype = _check_batch(params, X, Y)
    if not isinstance(acts, Activations):
        raise TypeError(f"acts must be the Activations returned by forward, got {type(acts).__name__}")
    one = np.ones((), dtype=dtype)
    dA2 = binary_cross_entropy_backward(one, acts.A2, Y, reduction="mean")
    dZ2 = sigmoid_bce_backward(acts.A2, Y)
    dF, dW2, dB2 = linear_backward(dZ2, acts.F, params.W2, params.B2)
    dP1 = flatten_backward(dF, acts.P1)
    dA1 = max_pool2d_backward(dP1, acts.A1, **POOL)
    dZ1 = relu_backward(dA1, acts.Z1)
    dX, dW1, dB1 = conv2d_backward(dZ1, X, params.W1, params.B1)
    return Gradients(
        dA2=dA2, dZ2=dZ2, dF=dF, dP1=dP1, dA1=dA1, dZ1=dZ1, dX=dX, dW1=dW1, dB1=dB1, dW2=dW2, dB2=dB2
    )


def sgd_step(params: Params, grads: Gradients, lr: float) -> Params:
    """One gradient-descent step, returning new parameters: ``theta - lr * dL/dtheta``."""
    g = grads.params()
    return Params(**{name: p - p.dtype.type(lr) * getattr(g, name) for name, p in params.as_dict().items()})


@dataclass
class Step:
    """What ``train`` hands to ``on_step`` before each update (params are those the gradients are for)."""

    epoch: int  # 0-based
    step: int  # 0-based, counted over all epochs
    X: np.ndarray
    Y: np.ndarray
    params: Params
    acts: Activations
    grads: Gradients


@dataclass
class History:
    """What ``train`` returns: the final parameters and the losses along the way."""

    params: Params
    initial_loss: float  # loss over the whole training set before the first step
    epoch_losses: list[float] = dataclasses.field(default_factory=list)  # whole-set loss after each epoch
    step_losses: list[float] = dataclasses.field(default_factory=list)  # batch loss before each step


def train(
    params: Params,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    on_step: Callable[[Step], None] | None = None,
    on_epoch: Callable[[int, Params, float], None] | None = None,
) -> History:
    """Minibatch stochastic gradient descent on the mean BCE; ``params`` is not modified.

    Each epoch visits the training set once in an order drawn from ``rng``, in
    batches of ``batch_size`` (the last one may be smaller); each batch does

        acts = forward(theta, Xb, Yb);  grads = backward(theta, Xb, Yb, acts);  theta <- theta - lr * grads

    ``on_step(Step(...))`` is called before each update with the batch, the
    parameters, the activations and the gradients; ``on_epoch(epoch, params,
    loss)`` after each epoch with the parameters reached and their loss over
    the whole training set.
    """
    _check_batch(params, X, Y)
    lr = check_positive_real(lr, "lr")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if X.shape[0] == 0:
        raise ValueError("X must hold at least one image to train on")

    history = History(params=params, initial_loss=float(forward(params, X, Y).L))
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(X.shape[0])
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            Xb, Yb = X[batch], Y[batch]
            acts = forward(params, Xb, Yb)
            grads = backward(params, Xb, Yb, acts)
            if on_step is not None:
                on_step(Step(epoch=epoch, step=step, X=Xb, Y=Yb, params=params, acts=acts, grads=grads))
            history.step_losses.append(float(acts.L))
            params = sgd_step(params, grads, lr)
            step += 1
        history.epoch_losses.append(float(forward(params, X, Y).L))
        if on_epoch is not None:
            on_epoch(epoch, params, history.epoch_losses[-1])
    history.params = params
    return history


def accuracy(params: Params, X: np.ndarray, Y: np.ndarray) -> float:
    """Fraction of images whose prediction ``A2 > 0.5`` matches the label ``Y > 0.5``."""
    _check_batch(params, X, Y)
    if X.shape[0] == 0:
        return float("nan")
    return float(np.mean((predict(params, X) > 0.5) == (Y > 0.5)))
