"""Algorithms with normwise bounds only (``oracle/tolerances.py``): FFT convolution is imprecise, never FAIL.

Each case below is the first FAIL ``oracle.zoo.right.conv_fft`` (right, but by
FFT) got from one check on the 'ci' profile before every check judged each
element with the normwise bound: windows over padding only, whose exact value is
0 and whose FFT value is rounding noise of the whole array's size. On the same
case the check is imprecise for the FFT convolution and still FAILs a wrong
rule. The last test checks the arithmetic of the bound's argument.
"""

from __future__ import annotations

import math
import textwrap

import pytest

from oracle import tolerances
from oracle.case import Case
from oracle.checks import CHECKS
from oracle.identities import IDENTITIES
from oracle.implementation import Implementation
from oracle.ops import SPECS
from oracle.verdict import FAIL, IMPRECISE


def _case(shapes: dict, config: dict, dtype: str, seed: int) -> Case:
    return Case("conv2d", shapes, config, dtype=dtype, seed=seed)


CASES = {
    "forward": _case({"x": (4, 1, 1, 8), "weight": (3, 1, 1, 3), "bias": None, "grad_output": (4, 3, 4, 2)},
                     {"stride": (2, 3), "padding": (3, 2), "dilation": (1, 3), "groups": 1}, "float32", 31838400),
    "backward": _case({"x": (1, 12, 9, 1), "weight": (4, 3, 1, 2), "bias": None, "grad_output": (1, 4, 11, 1)},
                      {"stride": (1, 2), "padding": (1, 1), "dilation": (1, 2), "groups": 4}, "float64", 362879),
    "finite_differences": _case({"x": (1, 6, 1, 12), "weight": (4, 3, 2, 1), "bias": (4,), "grad_output": (1, 4, 1, 4)},
                                {"stride": (3, 4), "padding": (2, 1), "dilation": (3, 1), "groups": 2}, "float32", 28552740),
    "adjoint": _case({"x": (1, 2, 1, 8), "weight": (6, 1, 1, 2), "bias": None, "grad_output": (1, 6, 2, 6)},
                     {"stride": (3, 2), "padding": (2, 3), "dilation": (1, 3), "groups": 2}, "float64", 4565),
    "identities": _case({"x": (4, 8, 5, 1), "weight": (12, 2, 2, 4), "bias": None, "grad_output": (4, 12, 2, 1)},
                        {"stride": (3, 1), "padding": (1, 3), "dilation": (3, 2), "groups": 4}, "float64", 3000),
}

#: a forward that pads at the end only (all 2p rows after the image): its windows read the image where they must not
PADDED_AT_END = """
    import numpy as np
    from oracle.zoo.right import conv_fft
    from oracle.zoo.right.conv_fft import *  # the rest of the contract

    def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
        ph, pw = padding
        at_end = np.pad(x, [(0, 0), (0, 0), (0, 2 * ph), (0, 0)])
        return conv_fft.conv2d(at_end, weight, bias, stride=stride, padding=(0, pw), dilation=dilation, groups=groups)
"""


def _check(name: str):
    return IDENTITIES["conv2d"] if name == "identities" else CHECKS[name]


def _wrong(name: str, tmp_path) -> Implementation:
    if name == "forward":
        path = tmp_path / "conv_padded_at_end.py"
        path.write_text(textwrap.dedent(PADDED_AT_END))
        return Implementation.load(str(path))
    return Implementation.load("oracle.zoo.conv_padding_cropped_at_end")


@pytest.mark.parametrize("check", list(CASES))
def test_fft_rounding_is_imprecise_and_a_wrong_rule_still_fails(check, tmp_path):
    case = CASES[check]
    verdict = _check(check)(Implementation.load("oracle.zoo.right.conv_fft"), SPECS["conv2d"], case)
    assert verdict.status == IMPRECISE, verdict.render()
    assert verdict.mismatch.bound is not None and verdict.mismatch.abs_error <= verdict.mismatch.bound
    wrong = _check(check)(_wrong(check, tmp_path), SPECS["conv2d"], case)
    assert wrong.status == FAIL, wrong.render()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normwise_bound_covers_the_fft_convolution_error_bound(dtype):
    """``rho(dtype, m log2 m + n) >= (t eta (2 + sqrt m) + 2.9 u + gamma_Cg)`` per unit ``||a||_F ||b||_F``,
    ``eta = 6.7 u`` (Higham, Theorem 24.2), for ``t = log2 m <= 20`` and ``Cg <= n <= 2000``."""
    u = tolerances.UNIT_ROUNDOFF[dtype]
    for t in range(21):
        m = 2 ** t
        for n in (1, 10, 100, 1000, 2000):
            needed = (t * 6.7 * u * (2 + math.sqrt(m)) + 2.9 * u + n * u / (1 - n * u))
            assert tolerances.normwise_bound(dtype, n, (1.0, m)) >= needed, (t, n)
    assert tolerances.normwise_bound(dtype, 10, None) == 0.0
    assert tolerances.normwise_bound(dtype, 10, (2.0, 64)) == 2 * tolerances.normwise_bound(dtype, 10, (1.0, 64))
