"""torch.nn.functional computed in float32 and rounded to the inputs' dtype: every op right, rounded differently.

    bpcheck verify torch:examples/native/functional_float32.py --dtype bfloat16

What a mixed-precision library does: float16 / bfloat16 tensors in and out, everything in between in float32.
Each op upcasts its half-precision tensors to float32 (exact), runs ``examples/native/functional.py``'s op there
and rounds the result once to the inputs' dtype; autograd differentiates through the two casts, so the backward
(and the forward-mode rule) is float32's, rounded once too, and keeps the forward's intermediates in float32.
torch's own half-precision ops round those intermediates to the dtype (the output a softmax, sigmoid or tanh
saves for its backward, the log_softmax inside cross_entropy), so the results differ from torch's in the last
bits, and bpcheck's half-precision tolerances (``oracle/tolerances.py``, "Half precision") must pass them, as they
must pass any right rule. float64 and float32 inputs are passed through unchanged.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import functional as _functional  # noqa: E402

_HALF = (torch.float16, torch.bfloat16)


def _wide(a):
    """A half-precision tensor as float32 (exact); anything else (None, class indices, float64) as it is."""
    return a.float() if isinstance(a, torch.Tensor) and a.dtype in _HALF else a


def _in_float32(op):
    def run(*args, **config):
        dtype = next((a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()), None)
        out = op(*[_wide(a) for a in args], **config)
        return out.to(dtype) if dtype in _HALF else out

    run.__name__ = op.__name__
    return run


_OPS = ("conv1d", "conv2d", "conv3d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "linear",
        "relu", "leaky_relu", "gelu", "softmax", "log_softmax", "sigmoid", "tanh", "binary_cross_entropy",
        "binary_cross_entropy_with_logits", "cross_entropy", "mse_loss", "flatten", "batch_norm", "layer_norm")
globals().update({name: _in_float32(getattr(_functional, name)) for name in _OPS})
