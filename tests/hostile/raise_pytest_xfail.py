"""pytest.xfail() from inside the implementation: would turn a failure into an expected one."""
import pytest
from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    pytest.xfail("known")
