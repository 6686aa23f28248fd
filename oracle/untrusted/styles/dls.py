"""The deep-learning specialization's "Convolution model: Step by Step" (channels-last function pairs), as the contract.

The course's API, and what each contract op calls (layouts converted both ways):

    conv2d      conv_forward(A_prev, W, b, {'stride': s, 'pad': p}) -> (Z, cache)
                A_prev (m, n_H_prev, n_W_prev, n_C_prev) = x.transpose(0, 2, 3, 1);
                W (f, f, n_C_prev, n_C) = weight.transpose(2, 3, 1, 0); b (1, 1, 1, n_C)
                conv_backward(dZ, cache) -> (dA_prev, dW, db), converted back to NCHW and torch's weight layout
    max_pool2d  pool_forward(A_prev, {'f': f, 'stride': s}, 'max') -> (A, cache);
                pool_backward(dA, cache, 'max') -> dA_prev
    avg_pool2d  the same with mode 'average'
    relu        relu(Z) -> (A, cache); relu_backward(dA, cache) -> dZ       (course 1's helpers)
    sigmoid     sigmoid(Z) -> (A, cache); sigmoid_backward(dA, cache) -> dZ

The course's max-pool backward (``create_mask_from_window``: ``x == np.max(x)``) sends the gradient to every
tied maximum of a window; the judge checks that convention by default (``oracle.course``).
"""

from __future__ import annotations

import numpy as np

from oracle.untrusted.styles import expressible_or_decline
from oracle.untrusted.styles._common import found, pair, several, shapes_of, two

STYLE = "dls"


def _nhwc(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if isinstance(a, np.ndarray) and a.ndim == 4 else a


def _conv(module):
    fns = found(module, "conv_forward")
    if not fns:
        return {}

    def forward_with_cache(x, weight, bias, config):
        expressible_or_decline(STYLE, "conv2d", config, shapes_of(x=x, weight=weight))
        c_out = weight.shape[0]
        b = (bias if bias is not None else np.zeros(c_out, dtype=weight.dtype)).reshape(1, 1, 1, c_out)
        hparameters = {"stride": pair(config.get("stride"), 1)[0], "pad": pair(config.get("padding"), 0)[0]}
        w = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))
        return two(fns[0](_nhwc(x), w, b, hparameters), "conv_forward")

    def conv2d(x, weight, bias=None, **config):
        return _nchw(forward_with_cache(x, weight, bias, config)[0])

    out = {"conv2d": conv2d}
    back = found(module, "conv_backward")
    if back:
        def conv2d_backward(grad_output, x, weight, bias=None, **config):
            _, cache = forward_with_cache(x, weight, bias, config)
            da, dw, db = several(back[0](_nhwc(grad_output), cache), 3, "conv_backward", "dA_prev, dW, db")
            if isinstance(dw, np.ndarray) and dw.ndim == 4:
                dw = np.ascontiguousarray(dw.transpose(3, 2, 0, 1))
            if isinstance(db, np.ndarray) and db.size == weight.shape[0]:
                db = db.reshape(weight.shape[0])
            return _nchw(da), dw, (db if bias is not None else None)

        out["conv2d_backward"] = conv2d_backward
    return out


def _pool(module, op: str, mode: str):
    fns = found(module, "pool_forward")
    if not fns:
        return {}

    def forward_with_cache(x, config):
        expressible_or_decline(STYLE, op, config, shapes_of(x=x))
        f = pair(config.get("kernel_size"))[0]
        hparameters = {"f": f, "stride": pair(config.get("stride"), f)[0]}
        return two(fns[0](_nhwc(x), hparameters, mode), "pool_forward")

    def pool(x, **config):
        return _nchw(forward_with_cache(x, config)[0])

    out = {op: pool}
    back = found(module, "pool_backward")
    if back:
        def pool_backward(grad_output, x, **config):
            _, cache = forward_with_cache(x, config)
            return _nchw(back[0](_nhwc(grad_output), cache, mode))

        out[f"{op}_backward"] = pool_backward
    return out


def _activation(module, op: str):
    fns = found(module, op)
    if not fns:
        return {}
    out = {op: lambda x: two(fns[0](x), op)[0]}
    back = found(module, f"{op}_backward")
    if back:
        out[f"{op}_backward"] = lambda grad_output, x: back[0](grad_output, two(fns[0](x), op)[1])
    return out


def functions(module) -> dict:
    """The contract's functions ``module`` (a "Step by Step" assignment file) makes possible."""
    out: dict = {}
    out.update(_conv(module))
    out.update(_pool(module, "max_pool2d", "max"))
    out.update(_pool(module, "avg_pool2d", "average"))
    out.update(_activation(module, "relu"))
    out.update(_activation(module, "sigmoid"))
    return out
