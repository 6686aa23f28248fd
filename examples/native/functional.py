"""torch.nn.functional as a ``torch:`` implementation: every op of the contract, nothing else to write.

    bpcheck verify torch:examples/native/functional.py
"""
import torch
import torch.nn.functional as F

conv1d, conv2d, conv3d, conv_transpose2d = F.conv1d, F.conv2d, F.conv3d, F.conv_transpose2d
max_pool2d, avg_pool2d, adaptive_avg_pool2d = F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d
linear, relu, leaky_relu, gelu, softmax, log_softmax = F.linear, F.relu, F.leaky_relu, F.gelu, F.softmax, F.log_softmax
sigmoid, tanh = torch.sigmoid, torch.tanh
binary_cross_entropy, binary_cross_entropy_with_logits = F.binary_cross_entropy, F.binary_cross_entropy_with_logits
cross_entropy, mse_loss = F.cross_entropy, F.mse_loss


def flatten(x):
    return torch.flatten(x, 1)


def batch_norm(x, weight=None, bias=None, *, eps):
    if weight is None and bias is not None:  # torch 2.13's double backward raises without a weight when there is a bias
        weight = torch.ones_like(bias)
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)


def layer_norm(x, weight=None, bias=None, *, normalized_shape, eps):
    if weight is None and bias is not None:  # as batch_norm: torch 2.13's double backward needs the weight
        weight = torch.ones_like(bias)
    return F.layer_norm(x, normalized_shape, weight, bias, eps)
