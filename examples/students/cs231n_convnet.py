"""A small CS231n-style convolutional network (assignment 2's ``cnn.py`` shape), on the layers of a ``layers.py``.

    conv - relu - 2x2 max pool - conv - relu - 2x2 max pool - affine - softmax

``pools=(False, True)`` leaves the first pool out (conv - relu - conv - relu - pool - affine - softmax). As in the
course: the parameters live in ``self.params`` (``W1``, ``b1``, ...), ``loss(X, y)`` returns the scores without
``y`` and ``(loss, grads)`` with it, the layers are the functions of ``layers.py`` with their caches, and the
L2 regularization ``0.5 * reg * sum(W ** 2)`` is added to the loss and ``reg * W`` to each weight's gradient.
``layers`` is the module whose functions the model calls (default: the correct ``cs231n_layers.py``).

Check it with ``bpcheck verify-network examples/students/cs231n_convnet.py --model TwoConvNet``.
"""

import numpy as np

import cs231n_layers


class TwoConvNet:
    def __init__(self, input_dim=(1, 4, 4), num_filters=2, filter_size=3, num_classes=3, pools=(True, True),
                 weight_scale=0.5, reg=0.0, seed=0, layers=cs231n_layers, dtype=np.float64):
        self.input_dim, self.num_classes, self.pools, self.reg, self.layers = input_dim, num_classes, pools, reg, layers
        rng = np.random.default_rng(seed)
        c, h, w = input_dim
        f = filter_size
        self.conv_param = {"stride": 1, "pad": (f - 1) // 2}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        shrink = 2 ** sum(bool(p) for p in pools)
        self.params = {
            "W1": weight_scale * rng.standard_normal((num_filters, c, f, f)),
            "b1": 0.1 * rng.standard_normal(num_filters),
            "W2": weight_scale * rng.standard_normal((num_filters, num_filters, f, f)),
            "b2": 0.1 * rng.standard_normal(num_filters),
            "W3": weight_scale * rng.standard_normal((num_filters * (h // shrink) * (w // shrink), num_classes)),
            "b3": 0.1 * rng.standard_normal(num_classes),
        }
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}

    def loss(self, X, y=None):
        L = self.layers
        caches = []
        out = X
        for i in (1, 2):
            out, conv_cache = L.conv_forward_naive(out, self.params[f"W{i}"], self.params[f"b{i}"], self.conv_param)
            out, relu_cache = L.relu_forward(out)
            pool_cache = None
            if self.pools[i - 1]:
                out, pool_cache = L.max_pool_forward_naive(out, self.pool_param)
            caches.append((conv_cache, relu_cache, pool_cache))
        scores, affine_cache = L.affine_forward(out, self.params["W3"], self.params["b3"])
        if y is None:
            return scores

        loss, dscores = L.softmax_loss(scores, y)
        grads = {}
        dout, grads["W3"], grads["b3"] = L.affine_backward(dscores, affine_cache)
        for i in (2, 1):
            conv_cache, relu_cache, pool_cache = caches[i - 1]
            if pool_cache is not None:
                dout = L.max_pool_backward_naive(dout, pool_cache)
            dout = L.relu_backward(dout, relu_cache)
            dout, grads[f"W{i}"], grads[f"b{i}"] = L.conv_backward_naive(dout, conv_cache)
        for i in (1, 2, 3):
            W = self.params[f"W{i}"]
            loss += 0.5 * self.reg * np.sum(W * W)
            grads[f"W{i}"] += self.reg * W
        return loss, grads
