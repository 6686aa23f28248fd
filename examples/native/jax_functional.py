"""JAX's own ops as a ``jax:`` implementation of conv2d, relu, sigmoid, linear and flatten.

    bpcheck verify jax:examples/native/jax_functional.py

The gradients checked are ``jax.vjp``'s through these functions.
"""
import jax
import jax.numpy as jnp


def conv2d(x, weight, bias=None, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    out = jax.lax.conv_general_dilated(
        x, weight, window_strides=stride, padding=[(p, p) for p in padding], rhs_dilation=dilation,
        feature_group_count=groups, dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out if bias is None else out + bias[None, :, None, None]


def linear(x, weight, bias=None):
    out = x @ weight.T
    return out if bias is None else out + bias


def relu(x):
    return jax.nn.relu(x)


def sigmoid(x):
    return jax.nn.sigmoid(x)


def flatten(x):
    return jnp.reshape(x, (x.shape[0], -1))
