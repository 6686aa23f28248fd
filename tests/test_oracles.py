"""The oracles themselves: torch on request of dtype and device, tolerances, located mismatches."""

import numpy as np
import pytest

from oracle import tolerances, torch_oracle
from oracle.verdict import locate


def test_torch_oracle_float64_by_default_float32_on_request():
    x = np.linspace(-2, 2, 5, dtype=np.float32)
    out64, grads64 = torch_oracle.run("sigmoid", {"x": x}, {}, ("x",), np.ones(5, np.float32))
    out32, grads32 = torch_oracle.run("sigmoid", {"x": x}, {}, ("x",), np.ones(5, np.float32), dtype="float32")
    assert out64.dtype == grads64["x"].dtype == np.float64
    assert out32.dtype == grads32["x"].dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=1e-6)


def test_torch_oracle_refuses_cuda_it_does_not_have():
    if torch_oracle.cuda_available():
        out, _ = torch_oracle.run("relu", {"x": np.ones(2)}, {}, ("x",), device="cuda")
        np.testing.assert_array_equal(out, np.ones(2))
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            torch_oracle.run("relu", {"x": np.ones(2)}, {}, ("x",), np.ones(2), device="cuda")


def test_torch_oracle_does_not_touch_its_inputs():
    x = np.array([-1.0, 2.0])
    torch_oracle.run("relu", {"x": x}, {}, ("x",), np.ones(2))
    np.testing.assert_array_equal(x, [-1.0, 2.0])


def test_tolerance_grows_with_fan_in_and_dtype():
    e = np.ones(3)
    assert tolerances.for_sum("float64", 1000, e).rtol > tolerances.for_sum("float64", 10, e).rtol
    ratio = tolerances.for_sum("float32", 10, e).rtol / tolerances.for_sum("float64", 10, e).rtol
    assert ratio == pytest.approx(2.0**29)  # the ratio of the unit roundoffs, 2^-24 / 2^-53


def test_locate_names_the_worst_element():
    expected = np.zeros((2, 3))
    got = expected.copy()
    got[1, 2] = 0.5
    got[0, 0] = 0.1
    m = locate("grad_x", got, expected, tolerances.for_sum("float64", 1, np.ones(1)))
    assert m.index == (1, 2) and m.count == 2 and m.got == 0.5 and m.expected == 0.0


def test_locate_treats_nan_on_one_side_only_as_a_mismatch():
    tol = tolerances.for_sum("float64", 1, np.ones(2))
    assert locate("y", np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), tol) is None
    assert locate("y", np.array([np.nan, 1.0]), np.array([0.0, 1.0]), tol).index == (0,)
    assert locate("y", np.array([0.0, 1.0]), np.array([np.nan, 1.0]), tol).index == (0,)


def test_float32_slack_is_what_torch_float32_gets_wrong():
    x = np.array([5.0, 0.0], dtype=np.float32)  # sigmoid'(5) = s(1 - s) cancels in float32
    out64, g64 = torch_oracle.run("sigmoid", {"x": x}, {}, ("x",), np.ones(2, np.float32))
    _, g32 = torch_oracle.run("sigmoid", {"x": x}, {}, ("x",), np.ones(2, np.float32), dtype="float32")
    slack = tolerances.float32_slack(g32["x"] - g64["x"])
    assert slack[0] > 0 and slack.shape == (2,)
    assert np.all(tolerances.float32_slack(np.array([np.inf, np.nan])) == 0)


def test_finite_differences_use_the_step_float64_really_took():
    """At |x| = 1e4, x + 1e-6 rounds to a step 3.4e-7 longer than h: a right gelu (slope exactly 1 out there) must
    still pass, as must leaky_relu, whose slope is 1 on the positive side."""
    from dataclasses import replace  # noqa: PLC0415

    import refimpl  # noqa: PLC0415
    from oracle import checks  # noqa: PLC0415
    from oracle.case import Case  # noqa: PLC0415
    from oracle.implementation import Implementation  # noqa: PLC0415
    from oracle.ops import SPECS  # noqa: PLC0415
    from oracle.verdict import PASS  # noqa: PLC0415

    impl = Implementation(refimpl, "refimpl")
    for op, config in (("gelu", {"approximate": "none"}), ("leaky_relu", {"negative_slope": 0.01})):
        spec = replace(SPECS[op], fd_values={"x": "logits_wide"})  # +-1e4 and beyond, away from gelu's and the kink
        for seed in range(4):
            case = Case(op, {"x": (3, 4), "grad_output": (3, 4)}, config, seed=seed, values={"x": "logits_wide"})
            verdict = checks.finite_differences(impl, spec, case)
            assert verdict.status == PASS, verdict.render()
