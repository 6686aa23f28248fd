"""refimpl with one forward-mode rule wrong: linear_jvp's tangent of the weight term has the wrong sign.

    dY = dX W^T - X dW^T + db        (right: dX W^T + X dW^T + db)

Right wherever dW is zero (a weight held fixed); the jvp row must FAIL it on the smallest case.
"""
import numpy as np

from refimpl import *  # noqa: F403 - every function of the contract, forward mode included
from refimpl import linear, linear_jvp as _right_jvp


def linear_jvp(primals, tangents):
    x, weight, *rest = primals
    dx, dw, *drest = tangents
    y, _ = _right_jvp(primals, tangents)
    dy = np.zeros_like(y)
    if dx is not None:
        dy += linear(dx, weight)
    if dw is not None:
        dy -= linear(x, dw)
    if drest and drest[0] is not None:
        dy += drest[0]
    return y, dy
