"""Correct layer objects in the style of the "from scratch" books: parameters and gradients in attributes.

``Layer_Dense`` keeps ``weights`` (n_inputs, n_neurons) and ``biases`` (1, n_neurons), leaves its output in
``self.output`` and its gradients in ``dinputs``, ``dweights``, ``dbiases``; the activations return theirs.
The mapping ``dense_layers.toml`` says so in ten lines:
``bpcheck verify --style layers examples/students/dense_layers.toml``.
"""

import numpy as np


class Layer_Dense:
    def __init__(self, n_inputs, n_neurons):
        self.weights = 0.01 * np.random.randn(n_inputs, n_neurons)
        self.biases = np.zeros((1, n_neurons))

    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Sigmoid:
    def forward(self, x):
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)
