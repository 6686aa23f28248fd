"""Stops its own process (SIGSTOP): nothing inside it can resume it."""
import os
import signal

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    os.kill(os.getpid(), signal.SIGSTOP)
