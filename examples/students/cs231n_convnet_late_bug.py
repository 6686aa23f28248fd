"""A ``TwoConvNet`` whose only pool comes last (conv - relu - conv - relu - pool - affine - softmax), on a
``layers.py`` whose max-pool backward is broken (``cs231n_pool_buggy.py``).

The broken layer is the later one: its dx is wrong, so the gradients of every parameter before it (W2, b2,
W1, b1) come out wrong end to end, although both conv layers' own backward passes are right. The end-to-end
check alone points at the convolutions; ``bpcheck verify-network examples/students/cs231n_convnet_late_bug.py
--factory make_model`` names the pool.
"""

import cs231n_pool_buggy
from cs231n_convnet import TwoConvNet


def make_model():
    return TwoConvNet(pools=(False, True), layers=cs231n_pool_buggy)
