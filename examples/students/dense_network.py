"""A tiny network as a list of layer objects ("from scratch" style): dense 4 -> 5, ReLU, dense 5 -> 3, and a softmax
cross-entropy loss. The layers are ``dense_layers.py``'s, described by ``dense_layers.toml``:

    bpcheck verify-network --style layers examples/students/dense_network.py --factory make_network \\
        --mapping examples/students/dense_layers.toml --loss softmax_cross_entropy
"""

import numpy as np

from dense_layers import Layer_Dense, ReLU


def make_network():
    np.random.seed(0)
    return [Layer_Dense(4, 5), ReLU(), Layer_Dense(5, 3)]


def softmax_cross_entropy(scores, y):
    """The mean over the batch of -log softmax(scores)[y], and its gradient with respect to the scores."""
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = scores.shape[0]
    loss = -np.log(probs[np.arange(n), y]).mean()
    dscores = probs.copy()
    dscores[np.arange(n), y] -= 1
    return loss, dscores / n
