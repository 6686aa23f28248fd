"""relu and linear as JAX ``custom_vjp`` functions, their backward rules written by hand.

    bpcheck verify jax:examples/native/jax_custom_vjp.py

``jax_custom_vjp_buggy.py`` is the same with a classic mistake in relu's rule.
"""
import jax
import jax.numpy as jnp

#: relu'(0): torch's and JAX's convention is 0
AT_ZERO_PASSES = False


@jax.custom_vjp
def relu(x):
    return jnp.maximum(x, 0)


def _relu_fwd(x):
    return relu(x), x


def _relu_bwd(x, g):
    mask = (x >= 0) if AT_ZERO_PASSES else (x > 0)
    return (jnp.where(mask, g, jnp.zeros_like(g)),)


relu.defvjp(_relu_fwd, _relu_bwd)


@jax.custom_vjp
def _affine(x, weight, bias):
    return x @ weight.T + bias


def _affine_fwd(x, weight, bias):
    return _affine(x, weight, bias), (x, weight)


def _affine_bwd(saved, g):
    x, weight = saved
    return g @ weight, g.T @ x, g.sum(0)


_affine.defvjp(_affine_fwd, _affine_bwd)


def linear(x, weight, bias=None):
    return _affine(x, weight, jnp.zeros(weight.shape[0], x.dtype) if bias is None else bias)
