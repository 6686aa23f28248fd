"""The same network as ``dense_network.py`` with one broken layer: the output dense layer's backward computes its
dx with the weight untransposed (``dvalues @ self.weights`` over a square weight, so the shapes fit and nothing
crashes). Its own parameter gradients are right; the first dense layer's come out wrong end to end, because the
dx it hands back is the first layer's dout.

    bpcheck verify-network --style layers examples/students/dense_network_buggy.py --factory make_network \\
        --mapping examples/students/dense_layers.toml --loss softmax_cross_entropy
"""

import numpy as np

from dense_layers import Layer_Dense, ReLU
from dense_network import softmax_cross_entropy  # noqa: F401 - the correct loss


class Output_Dense(Layer_Dense):
    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights  # BUG: the weight untransposed (dvalues @ self.weights.T)


def make_network():
    np.random.seed(0)
    return [Layer_Dense(4, 3), ReLU(), Output_Dense(3, 3)]
