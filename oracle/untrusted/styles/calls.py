"""The layer functions of a CS231n-style ``layers.py``, as plain data: which forward pairs with which backward,
what their arguments and results are, and which contract op each is.

Shared, like ``constraints``, by both sides of the boundary and importing nothing: the worker
(``oracle.untrusted.network``) wraps the functions named here to record the calls a student's model makes; the
judge (``oracle.network.records``) turns each recorded call into the contract op's arguments and results. The
conversions themselves (the layout of ``affine_forward``'s ``w``, ``conv_param``'s one stride and pad) are the
ones the style's adapter (``oracle.untrusted.styles.cs231n``) makes in the other direction.

``FORWARDS[name]``: ``op`` (the contract op, or None where the contract has none: the call is recorded and
reported as not checked), ``args`` (the forward's positional arguments), ``backwards`` (the function names that
take its cache), ``grads`` (what they return). A *loss* (``softmax_loss(x, y) -> (loss, dx)``) is forward and
backward in one call: ``loss=True``, no backward.
"""

from __future__ import annotations

_CONV = {"op": "conv2d", "args": ("x", "w", "b", "conv_param"), "grads": ("dx", "dw", "db")}
_POOL = {"op": "max_pool2d", "args": ("x", "pool_param"), "grads": ("dx",)}
_BN = {"op": "batch_norm", "args": ("x", "gamma", "beta", "bn_param"), "grads": ("dx", "dgamma", "dbeta")}

FORWARDS: dict[str, dict] = {
    **{f"conv_forward_{kind}": {**_CONV, "backwards": (f"conv_backward_{kind}",)}
       for kind in ("naive", "fast", "im2col", "strides")},
    **{f"max_pool_forward_{kind}": {**_POOL, "backwards": (f"max_pool_backward_{kind}",)}
       for kind in ("naive", "fast", "reshape", "im2col")},
    "affine_forward": {"op": "linear", "args": ("x", "w", "b"), "backwards": ("affine_backward",),
                       "grads": ("dx", "dw", "db")},
    "relu_forward": {"op": "relu", "args": ("x",), "backwards": ("relu_backward",), "grads": ("dx",)},
    "batchnorm_forward": {**_BN, "backwards": ("batchnorm_backward", "batchnorm_backward_alt")},
    "spatial_batchnorm_forward": {**_BN, "backwards": ("spatial_batchnorm_backward",)},
    "layernorm_forward": {"op": "layer_norm", "args": ("x", "gamma", "beta", "ln_param"),
                          "backwards": ("layernorm_backward",), "grads": ("dx", "dgamma", "dbeta")},
    "dropout_forward": {"op": None, "args": ("x", "dropout_param"), "backwards": ("dropout_backward",),
                        "grads": ("dx",)},
    "softmax_loss": {"op": "cross_entropy", "args": ("x", "y"), "loss": True, "grads": ("dx",)},
    "svm_loss": {"op": None, "args": ("x", "y"), "loss": True, "grads": ("dx",)},
}

#: backward function name -> the forward whose cache it takes
BACKWARDS: dict[str, str] = {b: f for f, entry in FORWARDS.items() for b in entry.get("backwards", ())}

#: every function name the worker records
RECORDED = frozenset(FORWARDS) | frozenset(BACKWARDS)
