"""A LeNet-style CNN with batch normalization and a softmax cross-entropy head, built only from the contract's rules.

    X (N,1,12,12)
      --conv1  conv2d W (4,1,3,3), padding 1, no bias ---> (N,4,12,12)
      --bn1    batch_norm weight, bias (4,) -------------> (N,4,12,12)
      --pool1  max_pool2d 2x2, stride 2 -----------------> (N,4,6,6)
      --relu1  relu
      --conv2  conv2d W (8,4,3,3), padding 1, no bias ---> (N,8,6,6)
      --bn2    batch_norm weight, bias (8,)
      --relu2  relu
      --pool2  avg_pool2d 2x2, stride 2 -----------------> (N,8,3,3)
      --flat   flatten ----------------------------------> (N,72)
      --fc1    linear W (16,72), b (16,) ----------------> (N,16)
      --relu3  relu
      --fc2    linear W (C,16), b (C,) ------------------> (N,C) logits
      --loss   cross_entropy(logits, T, 'mean') ---------> L

The convolutions have no bias: batch_norm subtracts each channel's mean, so a
bias before it changes nothing and its gradient is exactly 0 (a sum of
rounding residues, nothing to check). The first stage pools before its ReLU:
max and relu commute (both are monotone), so the function is the usual
conv-bn-relu-pool, but the gradient between the two is then unique; with relu
first, a window of negative values is a tie of zeros, where two right
max-pool rules may route the gradient to different places (relu kills it
afterwards). The second stage averages, so it keeps the usual order.

``backward`` applies the chain rule layer by layer, from L back to X, with each
layer's own backward rule of the contract, looked up by name in ``rules``
(the ``refimpl`` module unless told otherwise), so a network built on a
mutant rule is ``backward(..., rules=<namespace with that rule replaced>)``.
Pure NumPy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import refimpl  # the rules are looked up on use (``rules.<op>``): refimpl is still importing when this module is
from refimpl.arguments import check_array, check_class_target, check_positive_int, check_positive_real

IMAGE_SHAPE = (1, 12, 12)
"""(C, H, W) of one input image."""

EPS = 1e-5
"""batch_norm's eps, torch's default."""


@dataclass(frozen=True)
class Layer:
    """One layer: its name, the contract's op, its parameters after x (None: an absent bias) and its configuration."""

    name: str
    op: str
    params: tuple[str | None, ...] = ()
    config: dict = field(default_factory=dict)

    def param_key(self, param: str) -> str:
        return f"{self.name}.{param}"


def layers(classes: int) -> tuple[Layer, ...]:
    """The network's layers in forward order, for ``classes`` output classes."""
    pool = {"kernel_size": 2, "stride": 2}
    return (
        Layer("conv1", "conv2d", ("weight", None), {"padding": 1}),
        Layer("bn1", "batch_norm", ("weight", "bias"), {"eps": EPS}),
        Layer("pool1", "max_pool2d", (), pool),
        Layer("relu1", "relu"),
        Layer("conv2", "conv2d", ("weight", None), {"padding": 1}),
        Layer("bn2", "batch_norm", ("weight", "bias"), {"eps": EPS}),
        Layer("relu2", "relu"),
        Layer("pool2", "avg_pool2d", (), pool),
        Layer("flat", "flatten"),
        Layer("fc1", "linear", ("weight", "bias")),
        Layer("relu3", "relu"),
        Layer("fc2", "linear", ("weight", "bias")),
    )


LOSS = "loss"
"""The name of the cross-entropy head (a layer without parameters, after the last of ``layers``)."""


def shapes(classes: int) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter, keyed ``'<layer>.<param>'`` as torch's ``state_dict`` names them."""
    _check_classes(classes)
    return {
        "conv1.weight": (4, 1, 3, 3), "bn1.weight": (4,), "bn1.bias": (4,),
        "conv2.weight": (8, 4, 3, 3), "bn2.weight": (8,), "bn2.bias": (8,),
        "fc1.weight": (16, 72), "fc1.bias": (16,),
        "fc2.weight": (classes, 16), "fc2.bias": (classes,),
    }


def _check_classes(classes) -> int:
    if isinstance(classes, (bool, np.bool_)) or not isinstance(classes, numbers.Integral):
        raise TypeError(f"classes must be an int, got {type(classes).__name__} {classes!r}")
    if classes < 2:
        raise ValueError(f"classes must be >= 2, got {classes}")
    return int(classes)


def init(rng: np.random.Generator, classes: int, dtype=np.float64) -> dict[str, np.ndarray]:
    """Random parameters, as torch's layers start:

        conv W ~ N(0, 2 / fan_in)                       He initialisation, fan_in = C_in * 3 * 3
        bn weight = 1, bias = 0                         torch's BatchNorm2d
        fc W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))    torch's Linear
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    params = {}
    for key, shape in shapes(classes).items():
        layer, kind = key.split(".")
        if layer.startswith("conv"):
            fan_in = int(np.prod(shape[1:]))
            value = rng.standard_normal(shape) * np.sqrt(2 / fan_in)
        elif layer.startswith("bn"):
            value = np.ones(shape) if kind == "weight" else np.zeros(shape)
        else:
            bound = 1 / np.sqrt(shapes(classes)[f"{layer}.weight"][1])
            value = rng.uniform(-bound, bound, size=shape)
        params[key] = value.astype(dtype)
    return params


def _check_batch(params: dict, X, T=None) -> int:
    """The number of classes, after checking the parameters, the images ``X`` and the labels ``T``."""
    if not isinstance(params, dict) or "fc2.bias" not in params:
        raise TypeError(f"params must be the dict of arrays returned by lenet.init, got {type(params).__name__}")
    classes = check_array(params["fc2.bias"], "params['fc2.bias']", ndim=1).shape[0]
    expected = shapes(classes)
    if set(params) != set(expected):
        raise ValueError(f"params must hold exactly {sorted(expected)}, got {sorted(params)}")
    for key, shape in expected.items():
        if check_array(params[key], f"params[{key!r}]").shape != shape:
            raise ValueError(f"params[{key!r}] must have shape {shape}, got {params[key].shape}")
        if params[key].dtype != params["fc2.bias"].dtype:
            raise TypeError(f"params must share one dtype, got {params[key].dtype} and {params['fc2.bias'].dtype}")
    check_array(X, "X", ndim=4)
    if X.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"X must have shape (N, {', '.join(map(str, IMAGE_SHAPE))}), got {X.shape}")
    if X.dtype != params["fc2.bias"].dtype:
        raise TypeError(f"X must have the parameters' dtype {params['fc2.bias'].dtype}, got {X.dtype}")
    if T is not None:
        try:
            check_class_target(T, X.shape[0], classes)
        except (TypeError, ValueError) as error:
            raise type(error)(f"T, the labels: {error}") from None
    return classes


def _arguments(layer: Layer, params: dict) -> list:
    return [None if p is None else params[layer.param_key(p)] for p in layer.params]


@dataclass
class Forward:
    """Every intermediate of the forward pass: ``inputs[name]`` is the input of layer ``name``
    (``inputs['conv1']`` is X, ``inputs['loss']`` the logits), and ``L`` the mean cross-entropy (0-d)."""

    inputs: dict[str, np.ndarray]
    L: np.ndarray

    @property
    def logits(self) -> np.ndarray:
        return self.inputs[LOSS]


def logits(params: dict, X: np.ndarray, *, rules=refimpl) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(the input of every layer, the logits (N, C)): the forward pass up to the head, each layer ``rules.<op>``."""
    classes = _check_batch(params, X)
    inputs, a = {}, X
    for layer in layers(classes):
        inputs[layer.name] = a
        a = getattr(rules, layer.op)(a, *_arguments(layer, params), **layer.config)
    return inputs, a


def forward(params: dict, X: np.ndarray, T: np.ndarray, *, rules=refimpl) -> Forward:
    """The forward pass, keeping every intermediate; ``X`` (N,1,12,12), ``T`` (N,) class indices.

        a_0 = X;  a_k = layer_k(a_{k-1});  L = cross_entropy(a_K, T, 'mean') = mean_n -log softmax(a_K)[n, T_n]
    """
    _check_batch(params, X, T)
    inputs, z = logits(params, X, rules=rules)
    inputs[LOSS] = z
    return Forward(inputs=inputs, L=rules.cross_entropy(z, T, reduction="mean"))


def predict(params: dict, X: np.ndarray) -> np.ndarray:
    """The predicted class (N,) of every image: the arg-max of the logits."""
    return np.argmax(logits(params, X)[1], axis=1)


def backward(params: dict, X: np.ndarray, T: np.ndarray, fwd: Forward, *, rules=refimpl) -> dict[str, np.ndarray]:
    """The backward pass: dL/d of every layer's input and of every parameter, from L back to X.

        g = dL/dlogits               = cross_entropy_backward(1, logits, T)        (softmax - onehot) / N
        g, dW, db = dL/d fc2's input = linear_backward(g, a, W, b)                  g @ W, g.T @ a, sum_n g
        ...                                                                         each layer k, last to first:
        g, *d params_k               = <op_k>_backward(g, a_{k-1}, *params_k)       its own rule
        dL/dX                        = conv1's grad_x

    Returns ``{'<layer>': dL/d(its input), '<layer>.<param>': dL/d param}``
    (``grads['conv1']`` is dL/dX, ``grads['loss']`` dL/dlogits). ``fwd`` must
    be ``forward(params, X, T)``.
    """
    classes = _check_batch(params, X, T)
    if not isinstance(fwd, Forward):
        raise TypeError(f"fwd must be the Forward returned by lenet.forward, got {type(fwd).__name__}")
    one = np.ones((), dtype=X.dtype)
    g = rules.cross_entropy_backward(one, fwd.logits, T, reduction="mean")
    grads = {LOSS: g}
    for layer in reversed(layers(classes)):
        out = getattr(rules, layer.op + "_backward")(g, fwd.inputs[layer.name], *_arguments(layer, params), **layer.config)
        g, *param_grads = out if isinstance(out, tuple) else (out,)
        for p, dp in zip(layer.params, param_grads):
            if p is not None:
                grads[layer.param_key(p)] = dp
        grads[layer.name] = g
    return grads


def param_grads(grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The parameter gradients of ``backward``'s result (keys with a dot)."""
    return {key: g for key, g in grads.items() if "." in key}


def sgd_step(params: dict, grads: dict, lr: float) -> dict[str, np.ndarray]:
    """One gradient-descent step, returning new parameters: ``theta - lr * dL/dtheta``."""
    return {key: p - p.dtype.type(lr) * grads[key] for key, p in params.items()}


@dataclass
class Step:
    """What ``train`` hands to ``on_step`` before each update (params are those the gradients are for)."""

    epoch: int
    step: int
    X: np.ndarray
    T: np.ndarray
    params: dict
    fwd: Forward
    grads: dict


@dataclass
class History:
    """What ``train`` returns: the final parameters and the losses along the way."""

    params: dict
    initial_loss: float
    epoch_losses: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)


def train(
    params: dict,
    X: np.ndarray,
    T: np.ndarray,
    *,
    lr: float,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    on_step: Callable[[Step], None] | None = None,
    on_epoch: Callable[[int, dict, float], None] | None = None,
    rules=refimpl,
) -> History:
    """Minibatch SGD on the mean cross-entropy; ``params`` is not modified.

    As ``refimpl.network.train``: each epoch visits the training set once in an
    order drawn from ``rng``, in batches of ``batch_size`` (the last one may be
    smaller, but never a single image: batch_norm needs two values per channel,
    so a last batch of one joins the one before); each batch does
    ``theta <- theta - lr * backward(theta, forward(theta, batch))``.
    ``on_step`` sees every step before its update, ``on_epoch(epoch, params,
    loss)`` the parameters after each epoch and their loss over the whole set
    (batch statistics of the whole set).
    """
    _check_batch(params, X, T)
    lr = check_positive_real(lr, "lr")
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (batch_norm needs two values per channel), got {batch_size}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if X.shape[0] < 2:
        raise ValueError(f"X must hold at least two images to train on (batch_norm), got {X.shape[0]}")

    history = History(params=params, initial_loss=float(forward(params, X, T, rules=rules).L))
    step = 0
    for epoch in range(epochs):
        for batch in batches(rng.permutation(X.shape[0]), batch_size):
            Xb, Tb = X[batch], T[batch]
            fwd = forward(params, Xb, Tb, rules=rules)
            grads = backward(params, Xb, Tb, fwd, rules=rules)
            if on_step is not None:
                on_step(Step(epoch=epoch, step=step, X=Xb, T=Tb, params=params, fwd=fwd, grads=grads))
            history.step_losses.append(float(fwd.L))
            params = sgd_step(params, grads, lr)
            step += 1
        history.epoch_losses.append(float(forward(params, X, T, rules=rules).L))
        if on_epoch is not None:
            on_epoch(epoch, params, history.epoch_losses[-1])
    history.params = params
    return history


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``order`` cut into batches of ``batch_size``; a last batch of one image joins the one before."""
    cuts = list(range(0, len(order), batch_size))
    if len(cuts) > 1 and len(order) - cuts[-1] == 1:
        cuts.pop()
    return [order[start:end] for start, end in zip(cuts, cuts[1:] + [len(order)])]


def accuracy(params: dict, X: np.ndarray, T: np.ndarray) -> float:
    """Fraction of images whose predicted class is ``T`` (batch statistics of ``X`` as a whole)."""
    _check_batch(params, X, T)
    return float(np.mean(predict(params, X) == T))
