"""pytest.skip() from inside the implementation: would turn its test into a skip."""
import pytest
from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    pytest.skip("nothing to see here")
