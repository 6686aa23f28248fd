"""A backward that is not deterministic between two identical calls: said, not failed, unless --strict (issue 13 §1).

``oracle.determinism`` compares two results value for value; the backward check calls the backward twice in one
request. A NumPy linear whose grad_weight sums the batch in an order that changes each call (each call rounds
differently, every result within tolerance; the order alternates, so a derandomized run's outcome is fixed)
passes with the note and fails with ``--strict`` / ``--bpcheck-strict``; refimpl gets no note.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from oracle.cli import main
from oracle.determinism import NOT_DETERMINISTIC, difference, of_results

RANDOM_ORDER = """
    import math

    import numpy as np

    from refimpl.dense import linear, linear_backward as _exact


    CALLS = [0]


    def linear_backward(grad_output, x, weight, bias=None):
        grad_x, _, grad_bias = _exact(grad_output, x, weight, bias)
        rows = math.prod(x.shape[:-1])
        g2, x2 = grad_output.reshape(rows, weight.shape[0]), x.reshape(rows, weight.shape[1])
        grad_weight = np.zeros_like(weight)
        CALLS[0] += 1  # first to last on one call, last to first on the next: two calls never sum alike
        for n in range(rows) if CALLS[0] % 2 else reversed(range(rows)):
            grad_weight = grad_weight + np.outer(g2[n], x2[n])
        return grad_x, grad_weight, grad_bias
"""


def _module(tmp_path: Path) -> Path:
    path = tmp_path / "changing_order_linear.py"
    path.write_text(textwrap.dedent(RANDOM_ORDER))
    return path


def test_identical_results_do_not_differ_nan_included():
    a = np.array([1.0, np.nan, -0.0])
    assert difference([a, None], [a.copy(), None], ["grad_x", "grad_bias"]) is None
    assert difference([a], [np.array([1.0, np.nan, 0.0])], ["grad_x"]) is None  # -0 == 0


def test_a_difference_is_located_in_ulps_of_the_dtype():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = a.copy()
    b[1, 0] = np.nextafter(b[1, 0], np.float32(10), dtype=np.float32)
    b[1, 0] = np.nextafter(b[1, 0], np.float32(10), dtype=np.float32)
    text = difference([a], [b], ["grad_w"])
    assert text == (f"{NOT_DETERMINISTIC}: two identical calls of the backward differ by up to 4.77e-07 (2 ulps of "
                    "float32) at grad_w[1, 0] (1 of 4 element(s) differ)")


def test_nan_on_one_side_and_none_on_one_side_differ():
    assert "inf" not in difference([np.array([np.nan])], [np.array([1.0])], ["grad_x"])  # no ulps to count
    assert "at grad_x[0]" in difference([np.array([np.nan])], [np.array([1.0])], ["grad_x"])
    assert "grad_bias is None in one of two" in difference([None], [np.zeros(2)], ["grad_bias"])


def test_results_that_are_not_gradients_are_not_compared():
    assert of_results("garbage", np.zeros(2), ["grad_x", "grad_w"]) is None
    assert of_results(np.zeros(2), np.ones(2), ["grad_x"]).startswith(NOT_DETERMINISTIC)


def _verify(capsys, *args) -> tuple[int, str]:
    code = main(["verify", *args, "--ops", "linear", "--dtype", "float64", "--profile", "ci", "--examples", "3"])
    return code, capsys.readouterr().out


def test_a_changing_order_sum_passes_with_the_note_and_fails_with_strict(tmp_path, capsys):
    path = _module(tmp_path)
    out_json = tmp_path / "out.json"
    code, out = _verify(capsys, str(path), "--json", str(out_json))
    assert code == 0, out
    assert "pass, not deterministic" in out and "differ by up to" in out and "imprecise" not in out
    document = json.loads(out_json.read_text())
    assert [r["check"] for r in document["not_deterministic"]] == ["backward"]
    assert document["not_deterministic"][0]["status"] == "pass" and document["summary"]["not_deterministic"] == 1
    code, out = _verify(capsys, str(path), "--strict")
    assert code == 1 and "(--strict: 1 not deterministic)" in out, out


def test_refimpl_is_deterministic(capsys):
    code, out = _verify(capsys, "refimpl")
    assert code == 0 and NOT_DETERMINISTIC not in out, out


def test_under_pytest_a_warning_or_with_strict_a_failure(tmp_path):
    from oracle.implementation import Implementation  # noqa: PLC0415
    from oracle.suite import NondeterministicGradient, run_property  # noqa: PLC0415

    with Implementation.load(str(_module(tmp_path))) as impl:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_property(impl, "linear", "backward", "float64")
        assert any(isinstance(w.message, NondeterministicGradient) for w in caught)
        with pytest.raises(AssertionError, match="not deterministic \\(a failure under --bpcheck-strict\\)"):
            run_property(impl, "linear", "backward", "float64", strict=True)


def test_a_torch_function_summing_in_changing_order_gets_the_note(capsys):
    pytest.importorskip("torch")
    example = Path(__file__).resolve().parent.parent / "examples" / "native" / "linear_function_nondeterministic.py"
    code, out = _verify(capsys, f"torch:{example}")
    assert code == 0 and "pass, not deterministic" in out, out
