"""Build a counterpart: refimpl with exactly one op (its forward *and* its backward) computed another, correct way.

Each module of ``oracle.zoo.right`` defines the op's two functions, written
independently of refimpl's, and ends with::

    from oracle.zoo.right._counterpart import build
    build(__name__, "conv2d")

which fills the rest of the module's namespace with every other contract
function of refimpl. The module is then an implementation of the contract like
any other (``bpcheck verify oracle.zoo.right.conv_fft``), right everywhere, and
different from refimpl in how it computes that one op.

Argument checking is not the point of a counterpart: like the mutants of the
zoo, counterparts validate their arguments with refimpl's own checks, so they
accept and reject exactly what refimpl does. The conv2d counterparts share
those checks and the bias, which no algorithm computes differently
(``conv_config``, ``padded``, ``plus_bias``, ``bias_gradient``).
"""

from __future__ import annotations

import sys

import numpy as np

from oracle.mistakes import reference
from oracle.ops import SPECS
from refimpl.arguments import check_grad_output
from refimpl.convolution import conv2d_config

#: every function name of the contract: each op and its backward
CONTRACT_FUNCTIONS = tuple(name for spec in SPECS.values() for name in (spec.name, spec.backward_name))


def build(module: str, op: str) -> None:
    """Complete the module ``module`` (a name in ``sys.modules``) with refimpl's functions for every op but ``op``.

    ``module`` must already define ``op`` and ``op_backward`` itself: those are the counterpart's.
    """
    namespace = sys.modules[module].__dict__
    if op not in SPECS:
        raise ValueError(f"unknown op {op!r}; the contract has: {', '.join(SPECS)}")
    spec = SPECS[op]
    own = (spec.name, spec.backward_name)
    missing = [name for name in own if not callable(namespace.get(name))]
    if missing:
        raise ValueError(f"{module} must define {' and '.join(missing)} itself (the op it computes differently)")
    for name in own:
        if namespace[name] is reference(name):
            raise ValueError(f"{module}.{name} is refimpl's: a counterpart computes its op its own way")
    provided = list(own)
    for name in CONTRACT_FUNCTIONS:
        if name in own:
            continue
        fn = reference(name)
        if fn is not None:
            namespace[name] = fn
            provided.append(name)
    namespace["OP"] = op
    namespace["__all__"] = provided


# --------------------------------------------------------------------------- shared by the conv2d counterparts


def conv_config(x, weight, bias, stride, padding, dilation, groups, grad_output=None):
    """refimpl's checked conv2d configuration (``out_hw``, ``stride``, ``padding``, ``dilation``, ``groups``, ``dtype``);
    with ``grad_output``, its shape ``(N, C_out, Ho, Wo)`` and dtype checked too."""
    cfg = conv2d_config(x, weight, bias, stride, padding, dilation, groups)
    if grad_output is not None:
        check_grad_output(grad_output, (x.shape[0], weight.shape[0]) + cfg.out_hw, cfg.dtype)
    return cfg


def padded(x, cfg):
    """``Xpad``: ``x`` with ``cfg.padding`` zeros on each side of H and W."""
    (ph, pw) = cfg.padding
    return np.pad(x, [(0, 0), (0, 0), (ph, ph), (pw, pw)])


def plus_bias(z, bias):
    """``Z[n, o, ...] + b[o]`` in place (``z`` is a fresh array, any spatial rank), or ``z`` without a bias."""
    if bias is not None:
        z += bias.reshape((-1,) + (1,) * (z.ndim - 2))
    return z


def bias_gradient(grad_output, bias):
    """``db = sum of G over N and the spatial axes``, or None without a bias."""
    return None if bias is None else grad_output.sum(axis=(0,) + tuple(range(2, grad_output.ndim)))
