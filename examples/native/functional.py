"""torch.nn.functional as a ``torch:`` implementation: every op of the contract, nothing else to write.

    bpcheck verify torch:examples/native/functional.py
"""
import torch
import torch.nn.functional as F

conv2d, max_pool2d, avg_pool2d, linear, relu = F.conv2d, F.max_pool2d, F.avg_pool2d, F.linear, F.relu
sigmoid = torch.sigmoid
binary_cross_entropy, binary_cross_entropy_with_logits = F.binary_cross_entropy, F.binary_cross_entropy_with_logits


def flatten(x):
    return torch.flatten(x, 1)
