"""``dense_network.py``'s network on ``dense_layers_buggy.py``, whose dense layer accumulates its parameter
gradients across calls (``dweights += ...``, never reset). A training loop's first step is right and every later
one wrong; verify-network runs the pass twice on the same objects, as training does, and judges the second:

    bpcheck verify-network --style layers examples/students/dense_network_accumulating.py --factory make_network \\
        --mapping examples/students/dense_layers_buggy.toml
"""

import numpy as np

from dense_layers_buggy import Layer_Dense, ReLU


def make_network():
    np.random.seed(0)
    return [Layer_Dense(4, 5), ReLU(), Layer_Dense(5, 3)]
