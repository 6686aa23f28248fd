"""Buggy layer objects: the dense layer accumulates its parameter gradients across calls and never resets them.

Everything else is the correct file's (``dense_layers.py``, imported). ``dweights += ...`` adds each
backward's gradient to the last one's: the first call is right, every later one wrong, which a training
loop turns into a network that does not learn. ``bpcheck verify --style layers
examples/students/dense_layers_buggy.toml`` reuses one layer object across calls, as training does, and FAILs.
"""

import numpy as np

from dense_layers import ReLU, Sigmoid  # noqa: F401 - the correct activations


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons):
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))
        self.dweights = np.zeros_like(self.weights)
        self.dbiases = np.zeros_like(self.biases)

    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights += self.inputs.T @ dvalues  # BUG: accumulates across calls, never reset
        self.dbiases += np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T
