"""refimpl: a hand-written NumPy reference of the forward and backward rules of a small CNN.

Every function of the contract (see README, "The contract") is importable from
here, so ``refimpl`` as a module is an implementation of the contract.
Pure NumPy: nothing here imports torch.
"""

# --- convolution ---
# conv2d_backward is the fast path (refimpl/fast.py): the derivation's gradients without
# materializing the stride's zeros. The rule as the derivation states it, built from the named
# steps dilate/pad/flip/correlate, is refimpl.convolution.conv2d_backward (also importable as
# conv2d_backward_by_derivation, and as the whole contract from refimpl.derivation);
# tests/test_fast_path.py pins the two together and the property suite checks both.
# conv1d and conv3d are the rank-1 and rank-3 cases of the same rules (refimpl.convolution.conv and
# conv_backward; the named steps of refimpl.correlation are stated once for any spatial rank).
from refimpl.convolution import conv1d, conv2d, conv3d
from refimpl.convolution import conv2d_backward as conv2d_backward_by_derivation
from refimpl.fast import conv1d_backward, conv2d_backward, conv3d_backward

# --- pooling ---
from refimpl.pooling import max_pool2d, max_pool2d_backward, avg_pool2d, avg_pool2d_backward
from refimpl.adaptive_pooling import adaptive_avg_pool2d, adaptive_avg_pool2d_backward

# --- transposed convolution: conv2d's rules read the other way round (refimpl/transposed.py) ---
from refimpl.transposed import conv_transpose2d, conv_transpose2d_backward

# --- dense, activations, losses ---
from refimpl.dense import linear, linear_backward
from refimpl.activations import relu, relu_backward, sigmoid, sigmoid_backward, flatten, flatten_backward
from refimpl.losses import (
    binary_cross_entropy, binary_cross_entropy_backward,
    binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
)

# --- normalization: batch_norm (training mode) and layer_norm ---
from refimpl.normalization import batch_norm, batch_norm_backward, layer_norm, layer_norm_backward

# --- more activations, softmax, losses (issue 12; softmax, log_softmax, cross_entropy, mse_loss are in CONTRACT) ---
from refimpl.activations import tanh, tanh_backward, leaky_relu, leaky_relu_backward, gelu, gelu_backward
from refimpl.softmax import softmax, softmax_backward, log_softmax, log_softmax_backward
from refimpl.losses import cross_entropy, cross_entropy_backward, mse_loss, mse_loss_backward

# --- forward mode (issue 13): NAME_jvp(primals, tangents, **config) -> (output, output_tangent), as jax.jvp;
# each next to its op's rules. Not part of CONTRACT (whose names are the forward ops).
from refimpl.convolution import conv1d_jvp, conv2d_jvp, conv3d_jvp
from refimpl.transposed import conv_transpose2d_jvp
from refimpl.pooling import max_pool2d_jvp, avg_pool2d_jvp
from refimpl.adaptive_pooling import adaptive_avg_pool2d_jvp
from refimpl.dense import linear_jvp
from refimpl.activations import relu_jvp, sigmoid_jvp, flatten_jvp, tanh_jvp, leaky_relu_jvp, gelu_jvp
from refimpl.softmax import softmax_jvp, log_softmax_jvp
from refimpl.losses import (
    binary_cross_entropy_jvp, binary_cross_entropy_with_logits_jvp, cross_entropy_jvp, mse_loss_jvp,
)
from refimpl.normalization import batch_norm_jvp, layer_norm_jvp

# --- the worked networks: the derivation's (15 parameters) and a LeNet-style CNN with batch_norm ---
from refimpl import network
from refimpl import lenet

__all__ = [
    "conv2d", "conv2d_backward", "conv2d_backward_by_derivation",
    "conv1d", "conv1d_backward", "conv3d", "conv3d_backward",
    "conv_transpose2d", "conv_transpose2d_backward",
    "max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward",
    "linear", "linear_backward", "relu", "relu_backward", "sigmoid", "sigmoid_backward",
    "flatten", "flatten_backward",
    "binary_cross_entropy", "binary_cross_entropy_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward",
    "tanh", "tanh_backward", "leaky_relu", "leaky_relu_backward", "gelu", "gelu_backward",
    "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
    # forward mode
    "conv2d_jvp", "conv1d_jvp", "conv3d_jvp", "conv_transpose2d_jvp",
    "max_pool2d_jvp", "avg_pool2d_jvp", "adaptive_avg_pool2d_jvp",
    "linear_jvp", "relu_jvp", "sigmoid_jvp", "flatten_jvp",
    "binary_cross_entropy_jvp", "binary_cross_entropy_with_logits_jvp",
    "batch_norm_jvp", "layer_norm_jvp",
    "tanh_jvp", "leaky_relu_jvp", "gelu_jvp", "softmax_jvp", "log_softmax_jvp",
    "cross_entropy_jvp", "mse_loss_jvp",
    "network", "lenet", "CONTRACT",
]

CONTRACT = (
    "conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "sigmoid", "flatten",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
    # issue 12's layers
    "conv1d", "conv3d", "conv_transpose2d", "adaptive_avg_pool2d", "batch_norm", "layer_norm",
    "tanh", "leaky_relu", "gelu", "softmax", "log_softmax", "cross_entropy", "mse_loss",
)
