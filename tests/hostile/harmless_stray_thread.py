"""Correct, but leaves a non-daemon thread running forever."""
import threading
import time

from refimpl import relu, relu_backward as _relu_backward  # noqa: F401

threading.Thread(target=lambda: time.sleep(10**6), daemon=False).start()


def relu_backward(grad_output, x):
    return _relu_backward(grad_output, x)
