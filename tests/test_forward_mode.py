"""The ``jvp`` row (oracle.forward_mode, issue 13 section 2): forward-mode rules checked against torch.func.jvp,
finite differences of the implementation's own forward, and its own backward through <J v, w> = <v, J^T w>.

refimpl passing every jvp row in both dtypes is the property suite's job (tests/test_properties.py); here each
part of the check is shown to catch what it is for, on the smallest case, and to say what it did not check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import refimpl
from oracle import magnitudes, tolerances
from oracle.cli import main
from oracle.examples import examples_for
from oracle.forward_mode import _against_differences, _difference_calls, _plan_differences, draw_tangents, jvp, jvp_call
from oracle.implementation import Implementation, submit
from oracle.ops import SPECS, Case, positional

HERE = Path(__file__).resolve().parent / "forward_mode"
NATIVE = HERE.parent.parent / "examples" / "native"


def _verify(capsys, *args) -> tuple[int, str]:
    code = main(["verify", *args, "--profile", "ci"])
    return code, capsys.readouterr().out


def test_a_wrong_sign_in_a_jvp_is_caught_on_the_smallest_case(capsys):
    code, out = _verify(capsys, str(HERE / "linear_jvp_sign_flipped.py"), "--ops", "linear", "--dtype", "float64",
                        "--examples", "20", "--shrink-time", "60")
    assert code == 1
    assert "│ jvp " in out and "output_tangent: 1 of 1 element(s) out of tolerance" in out
    assert "x=(1, 1), weight=(1, 1), bias=None" in out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert "FAIL" in rows["jvp"]
    for row in ("forward", "backward", "finite_differences", "adjoint", "identities"):  # the reverse mode is right
        assert " pass " in rows[row], rows[row]


def test_a_custom_function_with_a_wrong_sign_in_its_jvp_is_caught(capsys):
    code, out = _verify(capsys, f"torch:{NATIVE / 'conv2d_function_jvp_buggy.py'}", "--ops", "conv2d", "--dtype",
                        "float64", "--examples", "10", "--shrink-time", "60")
    assert code == 1
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert "FAIL" in rows["jvp"] and all(" pass " in rows[r] for r in ("forward", "backward", "finite_differences"))
    assert "output_tangent: " in out  # against torch.func.jvp; the smallest case when shrinking had time enough
    if "shrinking stopped" not in out:
        assert "x=(1, 1, 1, 1), weight=(1, 1, 1, 1), bias=None" in out


def test_a_function_without_a_forward_mode_rule_is_not_implemented(capsys):
    code, out = _verify(capsys, f"torch:{HERE / 'relu_function_no_jvp.py'}", "--ops", "relu", "--examples", "10")
    assert code == 0
    row = next(line for line in out.splitlines() if "│ jvp " in line)
    assert "not implemented" in row and "FAIL" not in out


def test_a_module_without_jvps_is_not_implemented_never_pass():
    case = examples_for("relu", "float64")[0]
    with Implementation.load("oracle.zoo.relu_grad_at_zero_one") as impl:
        verdict = jvp(impl, SPECS["relu"], case)
    assert verdict.status == "not implemented" and "relu_jvp" in verdict.message


def test_the_identity_catches_a_backward_that_does_not_match_a_right_jvp():
    case = Case("linear", {"x": (1, 2), "weight": (3, 2), "bias": None, "grad_output": (1, 3)}, {}, "float32", seed=1)
    with Implementation.load(str(HERE / "linear_backward_wrong_jvp_right.py")) as impl:
        verdict = jvp(impl, SPECS["linear"], case)
    assert verdict.failed, verdict.render()
    assert verdict.mismatch.array.startswith("<v, J^T w>") and "the backward" in verdict.message


@pytest.mark.parametrize(("target", "caught"), [("refimpl", False), (str(HERE / "sigmoid_jvp_scaled.py"), True)])
def test_finite_differences_of_the_own_forward_judge_the_tangent(target, caught):
    spec = SPECS["sigmoid"]
    case = Case("sigmoid", {"x": (2, 3), "grad_output": (2, 3)}, {}, "float64", seed=4)
    plan = _plan_differences(spec, case, draw_tangents(spec, case.arrays(), case))
    calls = [("sigmoid", positional(spec, p), {}) for p in [plan["base"], *plan["noise"]]]
    with Implementation.load(target) as impl:
        running = submit(impl, [*calls, *_difference_calls(spec, case, plan, tolerances.FD_STEP)])
        mismatch = _against_differences(impl, spec, case, plan, running, 0)
    assert (mismatch is not None and not mismatch.imprecise) == caught, mismatch


def test_noise_levels_is_noise_level_per_element():
    rng = np.random.default_rng(0)
    values = 1.0 + 1e-12 * rng.standard_normal((tolerances.NOISE_POINTS, 3))
    values[:, 2] = np.inf
    levels = tolerances.noise_levels(values)
    for k in range(3):
        assert levels[k] == tolerances.noise_level(values[:, k])
    assert levels[2] == np.inf and 1e-13 < levels[0] < 1e-11


@pytest.mark.parametrize("op", list(SPECS))
def test_the_tangent_term_scale_bounds_the_tangent(op):
    """|J v| <= T_jvp elementwise (to rounding) for refimpl's JVP on the op's explicit examples, both dtypes."""
    spec = SPECS[op]
    for dtype in ("float64", "float32"):
        for case in examples_for(op, dtype):
            arrays = case.arrays()
            tangents = draw_tangents(spec, arrays, case)
            name, args, config = jvp_call(spec, arrays, tangents, case)
            try:
                with np.errstate(all="ignore"):
                    _, tangent = getattr(refimpl, name)(*args, **config)
            except (ValueError, TypeError):
                continue  # an example refimpl rejects (a field bug's bad input)
            scales = magnitudes.jvp(op, arrays, tangents, case.config)
            assert scales is not None, case
            t = np.asarray(tangent, np.float64)
            finite = np.isfinite(t) & np.isfinite(scales[0])
            slack = 1e-4 if dtype == "float32" else 1e-10
            assert np.all(np.abs(t[finite]) <= scales[0][finite] * (1 + slack) + 1e-300), (case, np.abs(t) - scales[0])
            assert np.all(scales[1] >= scales[0])
