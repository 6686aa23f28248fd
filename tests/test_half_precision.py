"""float16 and bfloat16, on request (issue 13): drawn values, tolerances, the bfloat16 carriage, and the whole path.

bfloat16 values are held by the judge as float32 (exactly) and cross to the worker that way; its torch and JAX
adapters convert (``oracle.dtypes``, ``oracle.untrusted.native``). The tolerances are the float32 accumulation model
of ``oracle/tolerances.py``, "Half precision": torch.nn.functional passes every applicable row, a right rule that
rounds differently from torch (``examples/native/functional_float32.py``) passes, a wrong one FAILs.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from oracle import dtypes, pytest_plugin, tolerances
from oracle.case import Case
from oracle.cli import main
from oracle.implementation import Implementation
from oracle.ops import SPECS
from oracle.untrusted import native
from oracle.verify import resolve_dtypes, run_unit

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "native"
ROOT = EXAMPLES.parent.parent


def _rows(out: str) -> dict[str, str]:
    """``{check: its table row}`` of a one-op ``bpcheck verify`` table."""
    return {line.split("│")[2].strip(): line for line in out.splitlines() if line.startswith("│") and line.count("│") > 3}


def _config(examples: int, shrink_time: float = 10.0) -> dict:
    return {"profile": "ci", "max_examples": examples, "derandomize": True, "seed": None, "shrink_time": shrink_time}


# --------------------------------------------------------------------------- values and tolerances


def test_bfloat16_rounding_is_torchs_and_exact_in_float32():
    x = np.random.default_rng(0).standard_normal(4096) * np.logspace(-30, 30, 4096)
    x32 = x.astype(np.float32)
    ours = dtypes.round_to_bfloat16(x32)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, torch.from_numpy(x32).bfloat16().float().numpy())
    assert dtypes.representable(ours, "bfloat16") and not dtypes.representable(x32, "bfloat16")
    assert np.isnan(dtypes.round_to_bfloat16(np.array([np.nan]))).all()
    assert dtypes.round_to_bfloat16(np.array([3.4e38, -np.inf])).tolist() == [np.inf, -np.inf]


@pytest.mark.parametrize("dtype", dtypes.HALF)
def test_drawn_values_are_values_of_the_dtype_and_in_range(dtype):
    """Drawn in float64, brought within float16's range, rounded: the oracle's float64 inputs are the implementation's."""
    case = Case(op="sigmoid", shapes={"x": (6, 7), "grad_output": (6, 7)}, config={}, dtype=dtype, seed=3,
                values={"x": "logits_wide"})
    arrays = case.arrays()
    assert arrays["x"].dtype == dtypes.storage(dtype) == case.dtype_of("x")
    assert all(dtypes.representable(a, dtype) for a in arrays.values())
    if dtype == "float16":
        assert np.abs(arrays["x"]).max() == dtypes.MAGNITUDE_LIMIT["float16"]  # +-1e4 and 1e5 clipped, not inf
    else:
        assert np.abs(arrays["x"]).max() > 1e4  # bfloat16 has float32's range: nothing clipped


def test_half_precision_bounds_are_the_float32_accumulation_model():
    """u = 2^-11 and 2^-8; rho = 8 u + rho(float32, n), not SAFETY u sqrt(n + 1) (2.5 T in bfloat16 at n = 100)."""
    assert tolerances.UNIT_ROUNDOFF["float16"] == 2.0**-11 and tolerances.UNIT_ROUNDOFF["bfloat16"] == 2.0**-8
    for dtype in dtypes.HALF:
        u = tolerances.UNIT_ROUNDOFF[dtype]
        assert tolerances.rho(dtype, 100) == pytest.approx(8 * u + tolerances.rho("float32", 100))
        tolerance = tolerances.for_sum(dtype, 100, np.ones(3), scale=np.ones(3))
        fail_line = float(tolerance.bound(np.ones(3))[0])
        assert 9 * u < fail_line < 0.1  # a rounding of each of 8 stored values passes; a whole term does not
    assert tolerances.rho("float32", 100) == 64 * 2.0**-24 * np.sqrt(101)  # float32 and float64 unchanged
    with pytest.raises(ValueError, match="dtype must be one of"):
        tolerances.rho("float8", 3)


def test_an_exact_result_beyond_float16s_range_is_infinite_in_float16():
    held = dtypes.in_range(np.array([65504.0, 65519.0, 65520.0, -1e12, np.nan]), "float16")
    assert held[:2].tolist() == [65504.0, 65519.0] and held[2:4].tolist() == [np.inf, -np.inf] and np.isnan(held[4])
    assert dtypes.in_range(np.array([1e12]), "bfloat16").tolist() == [1e12]


def test_a_case_beyond_the_dtypes_range_is_skipped_with_the_reason():
    """BCE at p = 0: the exact gradient (1e12 G) overflows float16; batch_norm of a constant channel with eps = 1e-11:
    torch's own float16 kernel gives NaN (1/sqrt(eps) = 3e5 > 65504). Neither judges a rule; bfloat16 holds both."""
    from oracle.checks import beyond_half_range  # noqa: PLC0415

    bce = Case(op="binary_cross_entropy", shapes={"input": (1,), "target": (1,), "grad_output": ()},
               config={"reduction": "mean"}, dtype="float16", values={"input": "probabilities_edges", "target": "soft"})
    norm = Case(op="batch_norm", shapes={"x": (2, 1), "weight": None, "bias": None, "grad_output": (2, 1)},
                config={"eps": 1e-11}, dtype="float16", values={"x": "constant_channels"})
    assert bce.arrays()["input"].tolist() == [0.0]
    skipped = beyond_half_range(SPECS["binary_cross_entropy"], "backward", bce)
    assert skipped.status == "skipped" and "the exact value overflows float16: grad_input[0]" in skipped.message
    skipped = beyond_half_range(SPECS["batch_norm"], "forward", norm)
    assert skipped.status == "skipped" and "torch's own float16 kernel gives NaN/inf" in skipped.message
    assert beyond_half_range(SPECS["batch_norm"], "forward", norm.with_(dtype="bfloat16")) is None
    assert beyond_half_range(SPECS["batch_norm"], "forward", norm.with_(dtype="float32")) is None


def test_under_pytest_a_test_whose_every_case_was_skipped_is_a_skip_not_a_pass():
    """A run that checked nothing must not pass: all cases skipped (here BCE at p = 0 in float16) is a pytest skip
    with the reason; some skipped is a pass with a SomeCasesSkipped warning that counts them."""
    from oracle import suite  # noqa: PLC0415
    from oracle.checks import beyond_half_range  # noqa: PLC0415

    bce = Case(op="binary_cross_entropy", shapes={"input": (1,), "target": (1,), "grad_output": ()},
               config={"reduction": "mean"}, dtype="float16", values={"input": "probabilities_edges", "target": "soft"})
    skipped = beyond_half_range(SPECS["binary_cross_entropy"], "backward", bce)
    impl = types.SimpleNamespace(label="mymodule")
    tally = suite.Tally()
    for _ in range(3):
        assert suite.record(tally, skipped) is False
    with pytest.raises(pytest.skip.Exception, match=r"mymodule: binary_cross_entropy backward \(float16\): no case "
                       r"checked; all 3 skipped, e.g. .*overflows float16"):
        suite._report_skipped(impl, "binary_cross_entropy", "backward", tally, "float16")
    tally.ran += 5  # five cases checked besides
    with pytest.warns(suite.SomeCasesSkipped, match=r"3 of 8 cases skipped, e.g. .*overflows float16"):
        suite._report_skipped(impl, "binary_cross_entropy", "backward", tally, "float16")


# --------------------------------------------------------------------------- the worker's adapters


def test_the_torch_adapter_makes_carried_float32_bfloat16_and_back():
    seen = {}

    def relu(x):
        seen["dtype"] = x.dtype
        return torch.relu(x)

    impl = native.adapt(types.SimpleNamespace(relu=relu, sigmoid=lambda x: torch.sigmoid(x.float())), SPECS)
    x = dtypes.round_to_bfloat16(np.array([-1.5, 0.3, 2.7]))
    try:
        native.carry("bfloat16")
        out = impl.relu(x)
        assert seen["dtype"] == torch.bfloat16 and out.dtype == np.float32 and out.tolist() == [0.0, *x[1:].tolist()]
        assert impl.relu_backward(np.ones(3, np.float32), x).dtype == np.float32
        assert impl.relu(x.astype(np.float64)).dtype == np.float64  # finite differences' float64 calls stay float64
        with pytest.raises(TypeError, match="sigmoid returned a float32 tensor, the inputs were bfloat16"):
            impl.sigmoid(x)
    finally:
        native.carry(None)
    assert impl.relu(x).dtype == np.float32 and seen["dtype"] == torch.float32  # not carried: float32 is float32


# --------------------------------------------------------------------------- the whole path


@pytest.fixture(scope="module")
def functional():
    """torch.nn.functional as a torch: module, in one worker for the module's tests."""
    with Implementation.load(f"torch:{EXAMPLES / 'functional.py'}") as impl:
        yield impl


@pytest.mark.parametrize("dtype", dtypes.HALF)
def test_functional_passes_every_applicable_row(functional, dtype):
    """torch.nn.functional: forward, backward, finite differences, adjoint, identities and jvp pass; the second order
    is skipped with its reason (not checked in half precision), nothing drawn for it."""
    for check in ("forward", "backward", "finite_differences", "adjoint", "identities", "jvp"):
        result = run_unit(functional, ("linear", check, dtype), _config(8), lambda _: None)
        assert result["status"] == "pass" and result["examples"] >= 8, (check, result.get("rendered"))
    result = run_unit(functional, ("linear", "double_backward", dtype), _config(8), lambda _: None)
    assert result["status"] == "skipped" and result["examples"] == 0
    assert result["message"].startswith("not checked in half precision")


def test_a_wrong_conv2d_function_fails_in_bfloat16():
    """The grad_x-stride mistake of conv2d_function_buggy.py: drawn bfloat16 cases FAIL, and on the smallest one
    (stride 2 along w, a 1 x 3 input) the mistake is named."""
    from oracle.checks import backward  # noqa: PLC0415

    smallest = Case(op="conv2d", shapes={"x": (1, 1, 1, 3), "weight": (1, 1, 1, 1), "bias": None,
                                         "grad_output": (1, 1, 1, 2)},
                    config={"stride": (1, 2), "padding": (0, 0), "dilation": (1, 1), "groups": 1}, dtype="bfloat16")
    with Implementation.load(f"torch:{EXAMPLES / 'conv2d_function_buggy.py'}") as impl:
        result = run_unit(impl, ("conv2d", "backward", "bfloat16"), _config(30, shrink_time=0.0), lambda _: None)
        verdict = backward(impl, SPECS["conv2d"], smallest)
    assert result["status"] == "FAIL" and "dtype=bfloat16" in result["rendered"]
    assert verdict.failed and any("conv_grad_x_stride_not_dilated" in hint for hint in verdict.hints)


def test_a_right_rule_computed_in_float32_and_rounded_passes_in_bfloat16():
    """functional_float32 keeps the intermediates torch rounds to bfloat16 (softmax's saved output, the log_softmax
    inside cross_entropy) in float32: its gradients differ from torch's in the last bits, and pass."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("functional_float32", EXAMPLES / "functional_float32.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)).bfloat16().requires_grad_()
    g = torch.randn(4, 16, generator=torch.Generator().manual_seed(1)).bfloat16()
    ours = torch.autograd.grad(module.softmax(x, dim=1), x, g)[0]
    torchs = torch.autograd.grad(torch.softmax(x, dim=1), x, g)[0]
    assert ours.dtype == torch.bfloat16 and (ours != torchs).any()  # rounded differently from torch's own kernel
    with Implementation.load(f"torch:{EXAMPLES / 'functional_float32.py'}") as impl:
        for op, check in (("softmax", "backward"), ("cross_entropy", "jvp")):
            result = run_unit(impl, (op, check, "bfloat16"), _config(25), lambda _: None)
            assert result["status"] == "pass", result.get("rendered")


def test_bfloat16_needs_a_torch_or_jax_module(capsys):
    assert main(["verify", "refimpl", "--ops", "relu", "--dtype", "bfloat16"]) == 2
    err = capsys.readouterr().err
    assert "--dtype bfloat16 needs a torch: or jax: module" in err and "NumPy has no bfloat16" in err
    assert resolve_dtypes("torch:m.py", "bfloat16", None) == ["bfloat16"] == resolve_dtypes("jax:m.py", "bfloat16", None)
    assert resolve_dtypes("refimpl", "float16", None) == ["float16"]  # a NumPy dtype: offered
    assert resolve_dtypes("refimpl", None, None) == ["float64", "float32"]  # the default stays both
    with pytest.raises(ValueError, match="--dtype bfloat16 needs a torch: or jax: module"):
        resolve_dtypes("torch:m.py", "bfloat16", "cs231n")


def test_pytest_option_refuses_bfloat16_for_numpy_code(monkeypatch):
    config = types.SimpleNamespace(getoption=lambda name, default=None: "bfloat16")
    monkeypatch.setattr(pytest_plugin, "impl_target", "refimpl")
    with pytest.raises(pytest.exit.Exception) as stopped:
        pytest_plugin._dtypes(config)
    assert stopped.value.returncode == 2 and "--bpcheck-dtype bfloat16 needs a torch: or jax: module" in str(stopped.value)
    monkeypatch.setattr(pytest_plugin, "impl_target", "torch:m.py")
    assert pytest_plugin._dtypes(config) == ("bfloat16",)


def test_the_suite_is_generated_for_the_dtypes_asked():
    """With --bpcheck-dtype bfloat16 (``pytest_plugin.dtypes``, set before collection) the tests are
    test_OP_CHECK_bfloat16, none in float64 or float32."""
    code = ("import oracle.pytest_plugin as p; p.dtypes = ('bfloat16',); import oracle.suite as s; "
            "print(sorted(s.TESTS))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'test_relu_forward_bfloat16'" in done.stdout and "float64" not in done.stdout and "float32" not in done.stdout
