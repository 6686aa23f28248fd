"""CS231n's ``layers.py`` (function pairs with an opaque cache, NCHW), as the contract's functions.

The course's API (assignment 2's ``layers.py``), and what each contract op calls:

    conv2d          conv_forward_naive(x, w, b, {'stride': s, 'pad': p}) -> (out, cache)
                    conv_backward_naive(dout, cache) -> (dx, dw, db)           w (F, C, HH, WW): torch's layout
    max_pool2d      max_pool_forward_naive(x, {'pool_height', 'pool_width', 'stride'}) -> (out, cache)
                    max_pool_backward_naive(dout, cache) -> dx
    linear          affine_forward(x, w, b) -> (out, cache), w (D, M) = the contract's weight transposed
                    affine_backward(dout, cache) -> (dx, dw, db)
    relu            relu_forward(x) -> (out, cache); relu_backward(dout, cache) -> dx
    batch_norm      batchnorm_forward(x, gamma, beta, bn_param) for x (N, D),
                    spatial_batchnorm_forward(...) for x (N, C, H, W); bn_param = {'mode': 'train', 'eps',
                    'momentum', 'running_mean', 'running_var'}; *_backward(dout, cache) -> (dx, dgamma, dbeta)
    layer_norm      layernorm_forward(x, gamma, beta, {'eps'}) on x reshaped to (-1, prod(normalized_shape))
                    (layer norm over trailing axes is a row-wise op: the reshape is exact)
    cross_entropy   softmax_loss(x, y) -> (loss, dx): the mean over the batch; the backward is dx * G

An absent bias, gamma or beta is passed as zeros / ones (exactly the op without it) and its gradient
dropped (None), as the contract asks.
"""

from __future__ import annotations

import math

import numpy as np

from oracle.untrusted.styles import expressible_or_decline
from oracle.untrusted.styles._common import as_array, found, pair, several, shapes_of, two

STYLE = "cs231n"


def _zeros(n: int, like: np.ndarray) -> np.ndarray:
    return np.zeros(n, dtype=like.dtype)


def _conv(module):
    fns = found(module, "conv_forward_naive")
    if not fns:
        return {}
    (fwd,) = fns

    def forward_with_cache(x, weight, bias, config):
        expressible_or_decline(STYLE, "conv2d", config, shapes_of(x=x, weight=weight))
        b = bias if bias is not None else _zeros(weight.shape[0], weight)
        conv_param = {"stride": pair(config.get("stride"), 1)[0], "pad": pair(config.get("padding"), 0)[0]}
        return two(fwd(x, weight, b, conv_param), "conv_forward_naive")

    def conv2d(x, weight, bias=None, **config):
        return forward_with_cache(x, weight, bias, config)[0]

    out = {"conv2d": conv2d}
    back = found(module, "conv_backward_naive")
    if back:
        def conv2d_backward(grad_output, x, weight, bias=None, **config):
            _, cache = forward_with_cache(x, weight, bias, config)
            dx, dw, db = several(back[0](grad_output, cache), 3, "conv_backward_naive", "dx, dw, db")
            return dx, dw, (db if bias is not None else None)

        out["conv2d_backward"] = conv2d_backward
    return out


def _max_pool(module):
    fns = found(module, "max_pool_forward_naive")
    if not fns:
        return {}

    def forward_with_cache(x, config):
        expressible_or_decline(STYLE, "max_pool2d", config, shapes_of(x=x))
        kh, kw = pair(config.get("kernel_size"))
        pool_param = {"pool_height": kh, "pool_width": kw, "stride": pair(config.get("stride"), (kh, kw))[0]}
        return two(fns[0](x, pool_param), "max_pool_forward_naive")

    def max_pool2d(x, **config):
        return forward_with_cache(x, config)[0]

    out = {"max_pool2d": max_pool2d}
    back = found(module, "max_pool_backward_naive")
    if back:
        def max_pool2d_backward(grad_output, x, **config):
            return back[0](grad_output, forward_with_cache(x, config)[1])

        out["max_pool2d_backward"] = max_pool2d_backward
    return out


def _affine(module):
    fns = found(module, "affine_forward")
    if not fns:
        return {}

    def forward_with_cache(x, weight, bias):
        b = bias if bias is not None else _zeros(weight.shape[0], weight)
        return two(fns[0](x, np.ascontiguousarray(weight.T), b), "affine_forward")

    def linear(x, weight, bias=None):
        return forward_with_cache(x, weight, bias)[0]

    out = {"linear": linear}
    back = found(module, "affine_backward")
    if back:
        def linear_backward(grad_output, x, weight, bias=None):
            _, cache = forward_with_cache(x, weight, bias)
            dx, dw, db = several(back[0](grad_output, cache), 3, "affine_backward", "dx, dw, db")
            dw = np.ascontiguousarray(np.asarray(dw).T) if isinstance(dw, np.ndarray) else dw
            return dx, dw, (db if bias is not None else None)

        out["linear_backward"] = linear_backward
    return out


def _relu(module):
    fns = found(module, "relu_forward")
    if not fns:
        return {}
    out = {"relu": lambda x: two(fns[0](x), "relu_forward")[0]}
    back = found(module, "relu_backward")
    if back:
        out["relu_backward"] = lambda grad_output, x: back[0](grad_output, two(fns[0](x), "relu_forward")[1])
    return out


def _affine_params(weight, bias, c: int, like: np.ndarray):
    gamma = weight if weight is not None else np.ones(c, dtype=like.dtype)
    beta = bias if bias is not None else np.zeros(c, dtype=like.dtype)
    return gamma, beta


def _batch_norm(module):
    flat, spatial = found(module, "batchnorm_forward"), found(module, "spatial_batchnorm_forward")
    if not (flat or spatial):
        return {}

    def forward_with_cache(x, weight, bias, eps):
        c = x.shape[1]
        gamma, beta = _affine_params(weight, bias, c, x)
        bn_param = {"mode": "train", "eps": eps, "momentum": 0.9,
                    "running_mean": np.zeros(c, dtype=x.dtype), "running_var": np.zeros(c, dtype=x.dtype)}
        if x.ndim == 2:
            if not flat:
                raise NotImplementedError("the module has no batchnorm_forward (for x of shape (N, D))")
            return "batchnorm", two(flat[0](x, gamma, beta, bn_param), "batchnorm_forward")
        if not spatial:
            raise NotImplementedError("the module has no spatial_batchnorm_forward (for x of shape (N, C, H, W))")
        return "spatial_batchnorm", two(spatial[0](x, gamma, beta, bn_param), "spatial_batchnorm_forward")

    def batch_norm(x, weight=None, bias=None, *, eps):
        return forward_with_cache(x, weight, bias, eps)[1][0]

    def batch_norm_backward(grad_output, x, weight=None, bias=None, *, eps):
        which, (_, cache) = forward_with_cache(x, weight, bias, eps)
        back = found(module, f"{which}_backward")
        if not back:
            raise NotImplementedError(f"the module has no {which}_backward")
        dx, dgamma, dbeta = several(back[0](grad_output, cache), 3, f"{which}_backward", "dx, dgamma, dbeta")
        return dx, (dgamma if weight is not None else None), (dbeta if bias is not None else None)

    out = {"batch_norm": batch_norm}
    if found(module, "batchnorm_backward") or found(module, "spatial_batchnorm_backward"):
        out["batch_norm_backward"] = batch_norm_backward
    return out


def _layer_norm(module):
    fns = found(module, "layernorm_forward")
    if not fns:
        return {}

    def forward_with_cache(x, weight, bias, normalized_shape, eps):
        d = math.prod(normalized_shape)
        gamma, beta = _affine_params(None if weight is None else weight.reshape(d),
                                     None if bias is None else bias.reshape(d), d, x)
        out, cache = two(fns[0](x.reshape(-1, d), gamma, beta, {"eps": eps}), "layernorm_forward")
        return (out.reshape(x.shape) if isinstance(out, np.ndarray) and out.size == x.size else out), cache

    def layer_norm(x, weight=None, bias=None, *, normalized_shape, eps):
        return forward_with_cache(x, weight, bias, normalized_shape, eps)[0]

    out = {"layer_norm": layer_norm}
    back = found(module, "layernorm_backward")
    if back:
        def layer_norm_backward(grad_output, x, weight=None, bias=None, *, normalized_shape, eps):
            _, cache = forward_with_cache(x, weight, bias, normalized_shape, eps)
            d = math.prod(normalized_shape)
            dx, dgamma, dbeta = several(back[0](grad_output.reshape(-1, d), cache), 3, "layernorm_backward",
                                        "dx, dgamma, dbeta")
            shaped = [a.reshape(s) if isinstance(a, np.ndarray) and a.size == math.prod(s) else a
                      for a, s in ((dx, x.shape), (dgamma, tuple(normalized_shape)), (dbeta, tuple(normalized_shape)))]
            return shaped[0], (shaped[1] if weight is not None else None), (shaped[2] if bias is not None else None)

        out["layer_norm_backward"] = layer_norm_backward
    return out


def _softmax_loss(module):
    fns = found(module, "softmax_loss")
    if not fns:
        return {}

    def loss_and_dx(x, target, config):
        expressible_or_decline(STYLE, "cross_entropy", config, shapes_of(input=x))
        return several(fns[0](x, target), 2, "softmax_loss", "loss, dx")

    def cross_entropy(input, target, **config):
        return as_array(loss_and_dx(input, target, config)[0], input.dtype)

    def cross_entropy_backward(grad_output, input, target, **config):
        dx = loss_and_dx(input, target, config)[1]
        return dx * grad_output if isinstance(dx, np.ndarray) else dx

    return {"cross_entropy": cross_entropy, "cross_entropy_backward": cross_entropy_backward}


def functions(module) -> dict:
    """The contract's functions ``module`` (a CS231n-style ``layers.py``) makes possible."""
    out: dict = {}
    for part in (_conv, _max_pool, _affine, _relu, _batch_norm, _layer_norm, _softmax_loss):
        out.update(part(module))
    return out
