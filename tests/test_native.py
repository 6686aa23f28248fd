"""``torch:MODULE``: a module of torch ops checked as it is, its gradients taken by torch autograd (issue 13, section 1).

The adapter (``oracle.untrusted.native``) is tested in this process on purpose-built torch ops for what only the
native side can see; the whole path (worker, checks, verdicts, diagnosis) through ``bpcheck verify`` and
``pytest --impl`` on the examples in ``examples/native/``.
"""

from __future__ import annotations

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


@jax_missing
def test_jax_ops_pass_every_check(capsys):
    target = f"jax:{EXAMPLES / 'jax_functional.py'}"
    assert main(["verify", target, "--profile", "ci", "--examples", "10", "--ops", "conv2d,linear,sigmoid"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "OK: 38 op/check/dtype results: 38 pass" in out


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
def test_one_jax_compilation_serves_a_requests_calls_at_the_same_shapes():
    """Issue 13: a JAX run is compile-bound (one XLA compilation per function and shapes). The finite-difference
    check's request (the forward, the backward, the forward again at the same shapes) compiles one function, and a
    custom_vjp's forward served by it is the op's own output, not the one its rule computes."""
    jax = native.jax_setup()

    @jax.custom_vjp
    def relu(x):
        return jax.numpy.maximum(x, 0)

    relu.defvjp(lambda x: (2 * relu(x), x), lambda x, g: (jax.numpy.where(x > 0, g, 0),))  # a wrong primal in fwd
    impl = native.adapt_jax(types.SimpleNamespace(relu=relu), SPECS)
    x, g = np.array([[-1.0, 2.0, 3.0]]), np.array([[1.0, 1.0, -1.0]])
    native.plan_request(impl, [("relu", [x], {}), ("relu_backward", [g, x], {}), ("relu", [x + 1], {})])
    assert impl.relu(x).tolist() == [[0.0, 2.0, 3.0]]  # relu(x), though the compiled function is the VJP's
    assert impl.relu_backward(g, x).tolist() == [[0.0, 1.0, -1.0]]
    assert impl.relu(x + 1).tolist() == [[0.0, 3.0, 4.0]]
    op = getattr(impl, native._OPS)["relu"][0]
    assert [sorted(parts) for parts, *_ in op.jitted] == [["vjp"]]  # one function compiled for the three calls
    with pytest.raises(NotImplementedError, match="no forward-mode rule"):  # a custom_vjp: no JVP, as before
        impl.relu_jvp((x,), (g,))
    y, dy = native.adapt_jax(types.SimpleNamespace(relu=jax.nn.relu), SPECS).relu_jvp((x,), (g,))
    assert y.tolist() == [[0.0, 2.0, 3.0]] and dy.tolist() == [[0.0, 1.0, -1.0]]


@jax_missing
def test_the_worker_plans_a_jax_request(tmp_path, monkeypatch):
    """The worker tells the jax: adapter what a request will call before its first call (``native.plan_request``):
    the double-backward check's request (the double backward, then backwards at the same shapes) runs on one
    compilation, and the results are the separate functions' ones."""
    from oracle.implementation import Implementation  # noqa: PLC0415

    trace = tmp_path / "trace.jsonl"
    monkeypatch.setenv("BPCHECK_JAX_TRACE", str(trace))
    monkeypatch.setenv("BPCHECK_JAX_CACHE", "")
    x, w, g = np.array([[1.0, 2.0]]), np.array([[3.0, 4.0], [5.0, 6.0]]), np.array([[1.0, -1.0]])
    v = (np.ones_like(x), np.ones_like(w), None)
    with Implementation.load(f"jax:{EXAMPLES / 'jax_functional.py'}") as impl:
        results = impl.submit([("linear_double_backward", [g, v, x, w, None], {}), ("linear_backward", [g, x, w, None], {}),
                               ("linear_backward", [2 * g, x, w, None], {})]).results()
    second, first, twice = results
    vx, vw = v[:2]  # s = <g w, vx> + <g^T x, vw>: ds/dg = vx w^T + x vw^T, ds/dx = g vw, ds/dw = g^T vx
    expected = [vx @ w.T + x @ vw.T, g @ vw, g.T @ vx]
    assert [a.tolist() for a in second[:3]] == [e.tolist() for e in expected] and second[3] is None
    assert first[0].tolist() == (g @ w).tolist() and first[1].tolist() == (g.T @ x).tolist() and first[2] is None
    assert twice[0].tolist() == (2 * g @ w).tolist()
    rows = [__import__("json").loads(line) for line in trace.read_text().splitlines()]
    assert [row["request"] for row in rows] == [1, 1, 1]  # planned as one request
