"""``torch:MODULE``: a module of torch ops checked as it is, its gradients taken by torch autograd (issue 13, section 1).

The adapter (``oracle.untrusted.native``) is tested in this process on purpose-built torch ops for what only the
native side can see; the whole path (worker, checks, verdicts, diagnosis) through ``bpcheck verify`` and
``pytest --impl`` on the examples in ``examples/native/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from oracle.cli import main
from oracle.ops import SPECS
from oracle.torch_oracle import cuda_available
from oracle.untrusted import native

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "native"
ROOT = EXAMPLES.parent.parent


def _adapted(**ops):
    return native.adapt(types.SimpleNamespace(**ops), SPECS)


def test_backward_is_torch_autograd_through_the_op():
    impl = _adapted(relu=torch.relu, linear=torch.nn.functional.linear)
    x = np.array([[-1.0, 2.0, 0.5]])
    w = np.arange(6.0).reshape(2, 3)
    g = np.array([[1.0, -2.0]])
    gx, gw, gb = impl.linear_backward(g, x, w, None)
    np.testing.assert_array_equal(gx, g @ w)
    np.testing.assert_array_equal(gw, g.T @ x)
    assert gb is None
    np.testing.assert_array_equal(impl.relu_backward(np.ones(3), np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 1.0])
    assert impl.relu(np.array([-1.0], np.float32)).dtype == np.float32


def test_a_module_backward_of_its_own_is_ignored():
    def relu_backward(g, x):  # what autograd runs is what is checked, not a NumPy backward next to it
        return np.full_like(x, 42.0)

    impl = native.adapt(types.SimpleNamespace(relu=torch.relu, relu_backward=relu_backward), SPECS)
    assert impl.relu_backward(np.ones(2), np.array([1.0, -1.0])).tolist() == [1.0, 0.0]
    assert not hasattr(impl, "conv2d")


def test_an_input_the_output_does_not_use_gets_zeros():
    impl = _adapted(linear=lambda x, w, b=None: x @ w.T)  # the bias is dropped: autograd's gradient of it is "unused"
    _, _, gb = impl.linear_backward(np.ones((1, 2)), np.ones((1, 3)), np.ones((2, 3)), np.ones(2))
    np.testing.assert_array_equal(gb, np.zeros(2))


def test_a_result_that_is_not_a_tensor_is_named():
    impl = _adapted(relu=lambda x: x.detach().numpy())
    with pytest.raises(TypeError, match="relu must return a torch.Tensor, got numpy.ndarray"):
        impl.relu(np.ones(2))
    with pytest.raises(TypeError, match="relu must return a torch.Tensor"):
        impl.relu_backward(np.ones(2), np.ones(2))


def test_an_output_cut_from_the_graph_is_named():
    impl = _adapted(relu=lambda x: torch.relu(x).detach())
    with pytest.raises(RuntimeError, match="cut from the autograd graph"):
        impl.relu_backward(np.ones(2), np.ones(2))


def test_a_result_on_another_device_is_named():
    impl = _adapted(relu=lambda x: torch.relu(x).to("meta"))
    with pytest.raises(TypeError, match="relu returned a tensor on meta, the inputs were on cpu"):
        impl.relu(np.ones(2))


def test_a_gradient_of_the_wrong_dtype_is_refused():
    class Relu(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return (g * (x > 0)).float()  # float32 for a float64 input: torch casts it back, or we say so

    impl = _adapted(relu=Relu.apply)
    got = impl.relu_backward(np.ones(2), np.array([1.0, -1.0]))
    assert got.dtype == np.float64 and got.tolist() == [1.0, 0.0]


def test_integer_inputs_stay_integer():
    seen = {}

    def conv2d(x, weight, bias=None, **config):
        seen["dtypes"] = (x.dtype, weight.dtype)
        return torch.nn.functional.conv2d(x, weight, bias, **config)

    impl = _adapted(conv2d=conv2d)
    impl.conv2d(np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 1, 1), np.float32), None)
    assert seen["dtypes"] == (torch.float32, torch.float32)
    assert native._tensor(torch, np.array([1, 2]), "cpu").dtype == torch.int64


def test_functional_passes_every_check_in_both_dtypes(capsys):
    """torch.nn.functional through the adapter: optional inputs given and None, integer class indices, tuples of
    every rank (the whole contract runs through examples/torch_contract.py in tests/test_third_party.py)."""
    ops = "conv1d,conv_transpose2d,max_pool2d,batch_norm,layer_norm,cross_entropy"
    assert main(["verify", f"torch:{EXAMPLES / 'functional.py'}", "--profile", "ci", "--examples", "10", "--ops", ops]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "OK: 78 op/check/dtype results: 78 pass" in out


def test_a_custom_function_that_is_right_passes(capsys):
    target = f"torch:{EXAMPLES / 'conv2d_function.py'}"
    assert main(["verify", target, "--profile", "ci", "--examples", "15", "--ops", "conv2d"]) == 0
    assert "FAIL" not in capsys.readouterr().out


def test_a_custom_function_with_a_classic_mistake_is_caught_and_named(capsys):
    target = f"torch:{EXAMPLES / 'conv2d_function_buggy.py'}"
    assert main(["verify", target, "--profile", "ci", "--examples", "40", "--ops", "conv2d", "--dtype", "float64",
                 "--shrink-time", "20"]) == 1
    out = capsys.readouterr().out
    assert "conv_grad_x_stride_not_dilated" in out


def test_pytest_impl_takes_a_torch_module():
    target = f"torch:{EXAMPLES / 'conv2d_function_buggy.py'}"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", str(ROOT / "tests" / "test_properties.py"),
         f"--impl={target}", "-k", "conv2d and backward and float64"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "BPCHECK_PROFILE": "ci"},
    )
    assert done.returncode == 1, done.stdout[-3000:]
    assert "grad_x" in done.stdout


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA: the refusal is for machines without one")
def test_device_cuda_without_a_gpu_checks_nothing_and_says_so(capsys):
    assert main(["verify", f"torch:{EXAMPLES / 'functional.py'}", "--device", "cuda"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def test_device_is_for_torch_modules_only(capsys):
    assert main(["verify", "refimpl", "--device", "cuda"]) == 2
    assert "torch:MODULE implementations only" in capsys.readouterr().err


@pytest.mark.skipif(not cuda_available(), reason="no CUDA device here (torch.cuda.is_available() is False)")
def test_functional_passes_on_cuda(capsys):
    assert main(["verify", f"torch:{EXAMPLES / 'functional.py'}", "--profile", "ci", "--examples", "10",
                 "--device", "cuda"]) == 0


# --------------------------------------------------------------------------- jax:MODULE

jax_missing = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None,
    reason="jax is not installed (pip install 'bpcheck[jax]'; .ci/run installs it)")


#: jaxlib 0.10.2's XLA aborts (a CHECK in its algebraic simplifier, SIGABRT) compiling conv2d's VJP at some
#: configurations, e.g. stride (2, 4), padding (1, 0), dilation (1, 2), x (1, 1, 4, 7), weight (1, 1, 2, 4) (README)
XLA_ABORT = "crashed: the worker crashed (signal SIGABRT) during conv2d_backward"


@jax_missing
def test_jax_ops_pass_every_check(capsys, tmp_path):
    """JAX's own ops pass every check, except where jaxlib's compiler aborts the process (a real crash of the code
    as shipped: reported as such, on the configuration that causes it, never as a wrong gradient)."""
    target = f"jax:{EXAMPLES / 'jax_functional.py'}"
    report = tmp_path / "report.json"
    code = main(["verify", target, "--profile", "ci", "--examples", "10", "--ops", "conv2d,linear,sigmoid",
                 "--json", str(report)])
    capsys.readouterr()
    results = json.loads(report.read_text())["results"]
    assert len(results) == 38
    failing = [r for r in results if r["status"] != "pass"]
    assert all(r["op"] == "conv2d" and r["status"] == "FAIL" and r["message"].startswith(XLA_ABORT)
               for r in failing), [(r["op"], r["check"], r["dtype"], r["status"], r["message"]) for r in failing]
    assert code == (1 if failing else 0)


@jax_missing
def test_jax_custom_vjp_right_passes_and_buggy_is_named(capsys):
    assert main(["verify", f"jax:{EXAMPLES / 'jax_custom_vjp.py'}", "--profile", "ci", "--examples", "20"]) == 0
    capsys.readouterr()
    assert main(["verify", f"jax:{EXAMPLES / 'jax_custom_vjp_buggy.py'}", "--profile", "ci", "--examples", "50",
                 "--ops", "relu", "--dtype", "float64"]) == 1
    assert "relu_grad_at_zero_one" in capsys.readouterr().out


@jax_missing
def test_jax_backward_is_the_vjp_and_keeps_the_dtype():
    jax = native.jax_setup()
    impl = native.adapt_jax(types.SimpleNamespace(linear=lambda x, w, b=None: x @ w.T), SPECS)
    x = np.array([[1.0, 2.0]], np.float32)
    w = np.array([[3.0, 4.0]], np.float32)
    gx, gw, gb = impl.linear_backward(np.ones((1, 1), np.float32), x, w, None)
    assert gx.dtype == np.float32 and gx.tolist() == [[3.0, 4.0]] and gw.tolist() == [[1.0, 2.0]] and gb is None
    assert jax.config.jax_enable_x64
    assert impl.linear(x.astype(np.float64), w.astype(np.float64)).dtype == np.float64


@jax_missing
def test_a_jax_result_that_is_not_an_array_is_named():
    impl = native.adapt_jax(types.SimpleNamespace(relu=lambda x: [x]), SPECS)
    with pytest.raises(TypeError, match="relu must return a jax.Array, got builtins.list"):
        impl.relu(np.ones(2))


def test_jvp_is_torch_forward_ad_through_the_op():
    impl = _adapted(linear=torch.nn.functional.linear, cross_entropy=torch.nn.functional.cross_entropy)
    x, w, dx, dw = np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]), np.array([[0.5, -1.0]]), np.array([[1.0, 1.0]])
    y, dy = impl.linear_jvp((x, w, None), (dx, dw, None))
    assert y.tolist() == [[11.0]] and dy.tolist() == [[(dx @ w.T + x @ dw.T).item()]]
    _, none = impl.linear_jvp((x, w, None), (None, None, None))  # nothing moves: a zero tangent
    assert none.tolist() == [[0.0]]
    _, dloss = impl.cross_entropy_jvp((np.zeros((1, 2)), np.array([1])), (np.array([[1.0, 0.0]]), None), reduction="sum")
    assert dloss == pytest.approx(0.5)  # softmax . dx - dx[target]


@jax_missing
def test_jax_jvp_is_jax_jvp_and_keeps_the_dtype():
    native.jax_setup()
    impl = native.adapt_jax(types.SimpleNamespace(linear=lambda x, w, b=None: x @ w.T), SPECS)
    x, w = np.array([[1.0, 2.0]], np.float32), np.array([[3.0, 4.0]], np.float32)
    y, dy = impl.linear_jvp((x, w, None), (np.ones_like(x), None, None))
    assert y.dtype == dy.dtype == np.float32 and dy.tolist() == [[7.0]]



@jax_missing
def test_jax_functions_are_compiled_for_a_fast_compilation(monkeypatch):
    """Issue 13: a jax: run is compile-bound (nearly every drawn case has new shapes), so every function is compiled
    with XLA's fast-compile options on the CPU (LLVM unoptimized, the classic emitters: conv2d's VJP in 31 ms of CPU
    instead of 251), with the same results; BPCHECK_JAX_FAST_COMPILE=0 keeps XLA's defaults."""
    jax = native.jax_setup()
    seen = []
    real_jit = jax.jit

    def jit(function, **options):
        seen.append(options.get("compiler_options"))
        return real_jit(function, **options)

    monkeypatch.setattr(jax, "jit", jit)
    impl = native.adapt_jax(types.SimpleNamespace(linear=lambda x, w, b=None: x @ w.T), SPECS)
    x, w, g = np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]), np.array([[1.0]])
    assert impl.linear(x, w).tolist() == [[11.0]]
    assert [a.tolist() for a in impl.linear_backward(g, x, w, None)[:2]] == [[[3.0, 4.0]], [[1.0, 2.0]]]
    assert impl.linear_jvp((x, w, None), (x, None, None))[1].tolist() == [[11.0]]
    assert seen == [native.FAST_COMPILE] * 3 and native.FAST_COMPILE["xla_backend_optimization_level"] == 0
    monkeypatch.setenv("BPCHECK_JAX_FAST_COMPILE", "0")
    assert native.adapt_jax(types.SimpleNamespace(relu=jax.nn.relu), SPECS).relu(-x).tolist() == [[0.0, 0.0]]
    assert seen[-1] is None
