"""Blocks SIGALRM, then sleeps: an in-process alarm can never fire."""
import signal
import time

from refimpl import relu  # noqa: F401


def relu_backward(grad_output, x):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(10_000)
