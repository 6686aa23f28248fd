"""refimpl with sigmoid_jvp's tangent off by a factor 1.001: a derivative slightly wrong (finite differences see it)."""
from refimpl import *  # noqa: F403
from refimpl import sigmoid_jvp as _right


def sigmoid_jvp(primals, tangents):
    y, dy = _right(primals, tangents)
    return y, dy * 1.001
