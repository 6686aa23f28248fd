"""The ``double_backward`` row (issue 13, section 3): the second order of torch and JAX modules, against torch's double
backward and against central differences of the implementation's own backward (``oracle.second_order``).

The adapters are tested in this process on closed-form ops; the check through the worker on the examples in
``examples/native/``, a few cases each (``--ops``, few examples: the row costs a backward call per difference).
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from oracle.cli import main
from oracle.implementation import Implementation
from oracle.ops import SPECS
from oracle.suite import Tally, build_property, optional_missing
from oracle.untrusted import native
from oracle.verify import run_unit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "native"

jax_missing = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                                 reason="jax is not installed (pip install 'bpcheck[jax]'; .ci/run installs it)")


def _closed_form_linear(x, w, g, v):
    """s = <g W, vx> + <g^T x, vw> + <sum g, vb>: ds/dg = vx W^T + x vw^T + vb, ds/dx = g vw, ds/dW = g^T vx, ds/db = 0."""
    vx, vw, vb = v
    return vx @ w.T + x @ vw.T + vb, g @ vw, g.T @ vx, np.zeros_like(vb)


def _linear_case():
    rng = np.random.default_rng(0)
    x, w, b, g = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal((2, 4))
    return x, w, b, g, (rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4))


def test_torch_double_backward_is_the_gradient_of_the_inner_product():
    impl = native.adapt(types.SimpleNamespace(linear=torch.nn.functional.linear), SPECS)
    x, w, b, g, v = _linear_case()
    for got, want in zip(impl.linear_double_backward(g, v, x, w, b), _closed_form_linear(x, w, g, v)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert impl.linear_double_backward(g, (v[0], v[1], None), x, w, None)[3] is None
    with pytest.raises(TypeError, match="v must be a tuple of 3 directions"):
        impl.linear_double_backward(g, v[0], x, w, b)


@jax_missing
def test_jax_double_backward_is_the_gradient_of_the_inner_product():
    native.jax_setup()
    impl = native.adapt_jax(types.SimpleNamespace(linear=lambda x, w, b=None: x @ w.T + (0 if b is None else b)), SPECS)
    x, w, b, g, v = _linear_case()
    for got, want in zip(impl.linear_double_backward(g, v, x, w, b), _closed_form_linear(x, w, g, v)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _run(impl, op: str, dtype: str, examples: int) -> Tally:
    """The double_backward property of ``op`` on ``examples`` derandomized cases of ``impl`` (in its worker)."""
    tally = Tally()
    quiet = settings(max_examples=examples, derandomize=True, database=None, deadline=None, report_multiple_bugs=False)
    prop = quiet(build_property(op, "double_backward", dtype, examples=()))
    prop(impl, tally)
    return tally


def test_torch_functional_passes_the_second_order():
    """torch.nn.functional's own double backward vs itself in the judge (a) and vs differences of its backward (b):
    the tolerances let a right second order through, in both dtypes, for a bilinear, a normalization and a smooth op."""
    with Implementation.load(f"torch:{EXAMPLES / 'functional.py'}") as impl:
        for dtype in ("float64", "float32"):
            for op in ("conv2d", "batch_norm", "log_softmax"):
                tally = _run(impl, op, dtype, 4)
                assert tally.ran and not tally.declined and tally.failing is None


@jax_missing
def test_jax_functional_passes_the_second_order():
    with Implementation.load(f"jax:{EXAMPLES / 'jax_functional.py'}") as impl:
        for dtype in ("float64", "float32"):
            tally = _run(impl, "conv2d", dtype, 4)
            assert tally.ran and not tally.declined and tally.failing is None


def test_a_detached_gradient_fails_on_the_smallest_case_and_is_named(capsys):
    """grad_weight returned .detach()ed: the first order passes, torch.autograd.gradgradcheck passes, the second order
    FAILs on a 1 x 1 linear and the hint names the gradient cut from the graph."""
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    detached = importlib.util.spec_from_file_location("linear_function_detached", EXAMPLES / "linear_function_detached.py")
    module = importlib.util.module_from_spec(detached)
    detached.loader.exec_module(module)
    assert torch.autograd.gradgradcheck(module.linear, (x, w))  # what bpcheck is for: this passes

    target = f"torch:{EXAMPLES / 'linear_function_detached.py'}"
    assert main(["verify", target, "--profile", "ci", "--examples", "10", "--ops", "linear", "--dtype", "float64",
                 "--shrink-time", "20"]) == 1
    out = capsys.readouterr().out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert "FAIL" in rows["double_backward"] and all("pass" in rows[c] for c in ("forward", "backward", "finite_differences"))
    assert "x=(1, 1), weight=(1, 1)" in out and "without the part through grad_weight" in out


def test_once_differentiable_is_no_double_backward_not_a_number():
    with Implementation.load(f"torch:{EXAMPLES / 'linear_function_once_differentiable.py'}") as impl:
        result = run_unit(impl, ("linear", "double_backward", "float64"), _config(3), lambda _: None)
    assert result["status"] == "not implemented"
    assert "no double backward: linear's backward is marked @once_differentiable" in result["message"]


def test_numpy_code_without_a_double_backward_is_not_implemented_at_once():
    """refimpl has no NAME_double_backward: the row is not implemented with no case drawn, and --require-full
    does not count it (the contract makes the second order optional)."""
    from oracle.coverage import incomplete  # noqa: PLC0415
    from oracle.report import Result  # noqa: PLC0415

    with Implementation.load("refimpl") as impl:
        assert optional_missing(impl, "conv2d", "double_backward") == "refimpl has no conv2d_double_backward"
        assert optional_missing(impl, "conv2d", "backward") is None
        result = run_unit(impl, ("conv2d", "double_backward", "float64"), _config(200), lambda _: None)
    assert result["status"] == "not implemented" and result["examples"] == 0
    assert result["message"] == "no conv2d_double_backward" and not incomplete(Result.from_dict(result))


def _config(examples: int) -> dict:
    return {"profile": "ci", "max_examples": examples, "derandomize": True, "seed": None, "shrink_time": 10.0}


def _numpy_linear(double_backward):
    """refimpl's linear and its backward, with a NumPy double backward (a trusted double of this process)."""
    import refimpl  # noqa: PLC0415

    return Implementation(types.SimpleNamespace(linear=refimpl.linear, linear_backward=refimpl.linear_backward,
                                                linear_double_backward=double_backward), "numpy-linear")


def _linear_double_backward(g, v, x, w, b=None, drop_dx=False):
    dg, dx, dw, db = _closed_form_linear(x, w, g, (v[0], v[1], np.zeros(w.shape[0]) if v[2] is None else v[2]))
    return dg, (0 * dx if drop_dx else dx), dw, (None if b is None else db)


@pytest.mark.parametrize("wrong", [False, True])
def test_central_differences_of_the_own_backward_decide_without_torch(monkeypatch, wrong):
    """Without torch's reference (monkeypatched away), (b) alone passes a right NumPy double backward and FAILs one
    that drops the part d/dx = g v_W."""
    from oracle import second_order  # noqa: PLC0415

    monkeypatch.setattr(second_order, "reference", lambda *args, **kwargs: None)
    impl = _numpy_linear(lambda g, v, x, w, b=None: _linear_double_backward(g, v, x, w, b, drop_dx=wrong))
    if not wrong:
        tally = _run(impl, "linear", "float64", 10)
        assert tally.ran and tally.failing is None
        return
    with pytest.raises(AssertionError, match="central differences of the implementation's own backward"):
        _run(impl, "linear", "float64", 10)
