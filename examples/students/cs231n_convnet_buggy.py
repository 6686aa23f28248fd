"""The same ``TwoConvNet`` on the buggy ``layers.py`` (``cs231n_buggy.py``: conv_backward_naive keeps the padding).

Both conv layers call the broken backward. The second conv's dx is the first wrong gradient of the backward
pass; the first conv's dW1 and db1 come out wrong from it (and its own dx is wrong too, though no layer uses it).
``bpcheck verify-network examples/students/cs231n_convnet_buggy.py --factory make_model`` names the second conv.
"""

import cs231n_buggy
from cs231n_convnet import TwoConvNet


def make_model():
    return TwoConvNet(layers=cs231n_buggy, reg=0.1)
