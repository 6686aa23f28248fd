"""Error bounds per element, the imprecise outcome, noisy forwards under finite differences, wrong dtypes (issue 10, 2-5).

Each test runs a small implementation written to ``tmp_path`` through the
harness's own checks (``oracle.checks``) or ``bpcheck verify``. The first three
are false alarms of the old bound ``rtol*|expected| + rtol*max|expected|`` on
correct code; the fourth is the converse (a wrong value hidden by its
neighbours' scale).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from oracle import tolerances, torch_oracle
from oracle.case import Case
from oracle.checks import CHECKS, compare_backward, compare_forward
from oracle.cli import main
from oracle.implementation import Implementation, call
from oracle.ops import SPECS
from oracle.verdict import FAIL, IMPRECISE, PASS, SKIPPED, locate

FAST = ["--examples", "10", "--seed", "1", "--shrink-time", "5"]



def load(tmp_path: Path, name: str, source: str) -> Implementation:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return Implementation.load(str(path))


def run(impl, name: str, *args, **kwargs):
    """One call of the implementation (in its worker), as the checks make it."""
    return call(impl.function(name), name, list(args), kwargs)


def elementwise_case(op: str, n: int, dtype: str = "float64") -> Case:
    return Case(op, {"x": (n,), "grad_output": (n,)}, {}, dtype=dtype)


def loss_case(op: str, n: int, reduction: str = "none", dtype: str = "float64", values=None) -> Case:
    g = (n,) if reduction == "none" else ()
    return Case(op, {"input": (n,), "target": (n,), "grad_output": g}, {"reduction": reduction}, dtype=dtype, values=values or {})


def torch_answer(op: str, arrays: dict, config: dict):
    spec = SPECS[op]
    return torch_oracle.run(op, {k: arrays[k] for k in spec.inputs}, config, spec.differentiable, arrays["grad_output"])


# --------------------------------------------------------------------------- section 2: bounds per element


def test_sigmoid_through_tanh_is_not_a_failure_where_every_value_is_tiny(tmp_path):
    """sigmoid(-50) = 1.9e-22 as 0.5 tanh(x/2) + 0.5 gives 0: an error far below one rounding of the terms (0.5, 0.5)."""
    impl = load(tmp_path, "xla_sigmoid", """
        import numpy as np
        def sigmoid(x):
            return (0.5 * np.tanh(x / 2) + 0.5).astype(x.dtype)
    """)
    case = elementwise_case("sigmoid", 3)
    arrays = {"x": np.array([-50.0, -60.0, -80.0]), "grad_output": np.ones(3)}
    expected, _ = torch_answer("sigmoid", arrays, {})
    assert expected[0] == pytest.approx(1.9287498479639178e-22)
    assert run(impl, "sigmoid", arrays["x"])[0] == 0.0
    verdict = compare_forward(impl, SPECS["sigmoid"], case, arrays, expected)
    assert verdict.status == PASS, verdict.render()


def test_logits_bce_that_cancels_terms_of_size_236_passes(tmp_path):
    """z - z y + log(1 + exp(-z)) at z = 236, y = 1: true value 2e-103, computed 0 (236 - 236 + log(1))."""
    impl = load(tmp_path, "cancelling_bce", """
        import numpy as np
        def binary_cross_entropy_with_logits(input, target, *, reduction="mean"):
            z, y = input, target
            loss = z - z * y + np.log(1 + np.exp(-z))  # right for z > -700; cancels terms of size |z|
            return loss if reduction == "none" else np.asarray(loss.sum() / (loss.size if reduction == "mean" else 1))
    """)
    case = loss_case("binary_cross_entropy_with_logits", 2)
    arrays = {"input": np.array([236.0, 300.0]), "target": np.ones(2), "grad_output": np.ones(2)}
    expected, _ = torch_answer("binary_cross_entropy_with_logits", arrays, {"reduction": "none"})
    assert 0 < expected[0] < 1e-100
    assert run(impl, "binary_cross_entropy_with_logits", arrays["input"], arrays["target"], reduction="none")[0] == 0.0
    verdict = compare_forward(impl, SPECS["binary_cross_entropy_with_logits"], case, arrays, expected)
    assert verdict.status == PASS, verdict.render()


def test_a_gradient_more_accurate_than_torch_passes(tmp_path):
    """JAX's gradient (1 - y) sigmoid(z) - y sigmoid(-z) is -6.9e-104 at z = 236, y = 1; torch's float64 rounds it to 0."""
    impl = load(tmp_path, "jax_bce", """
        import numpy as np
        def _sigmoid(x):
            e = np.exp(-np.abs(x))
            return np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        def binary_cross_entropy_with_logits_backward(grad_output, input, target, *, reduction="mean"):
            z, y = input, target
            grad = grad_output * ((1 - y) * _sigmoid(z) - y * _sigmoid(-z))
            return grad / z.size if reduction == "mean" else grad
    """)
    case = loss_case("binary_cross_entropy_with_logits", 2)
    arrays = {"input": np.array([236.0, 240.0]), "target": np.ones(2), "grad_output": np.ones(2)}
    _, grads = torch_answer("binary_cross_entropy_with_logits", arrays, {"reduction": "none"})
    assert grads["input"][0] == 0.0  # torch: sigmoid(236) - 1 rounds to 0
    got = run(impl, "binary_cross_entropy_with_logits_backward", arrays["grad_output"], arrays["input"], arrays["target"],
              reduction="none")
    assert got[0] == pytest.approx(-np.exp(-236.0))
    verdict = compare_backward(impl, SPECS["binary_cross_entropy_with_logits"], case, arrays, grads)
    assert verdict.status == PASS, verdict.render()


def test_an_element_with_small_terms_is_judged_by_its_own_terms(tmp_path):
    """A linear that drops a bias: invisible next to an output of 1e6 (the old neighbour scale), never a pass now.

    A bias of 1e-9 is one rounding of the large element: as far as any algorithm with a normwise bound (an FFT)
    may be off there, so it is imprecise, not a pass; a bias of 1e-6 is beyond that: FAIL.
    """
    impl = load(tmp_path, "biasless", """
        import numpy as np
        def linear(x, weight, bias=None):
            return x @ weight.T  # the bias is dropped
    """)
    case = Case("linear", {"x": (2, 2), "weight": (1, 2), "bias": (1,), "grad_output": (2, 1)}, {})
    arrays = {"x": np.array([[1e-3, 2e-3], [1e6, 2e6]]), "weight": np.array([[1.0, 1.0]]), "bias": np.array([1e-9]),
              "grad_output": np.ones((2, 1))}
    expected, _ = torch_answer("linear", arrays, {})
    got = run(impl, "linear", arrays["x"], arrays["weight"], arrays["bias"])
    old = tolerances.for_sum("float64", SPECS["linear"].fan_in(case), expected)  # the neighbour rule
    assert locate("output", got, expected, old) is None  # the old bound let it pass
    verdict = compare_forward(impl, SPECS["linear"], case, arrays, expected)
    assert verdict.status == IMPRECISE and verdict.mismatch.index == (0, 0), verdict.render()
    arrays["bias"] = np.array([1e-6])
    expected, _ = torch_answer("linear", arrays, {})
    verdict = compare_forward(impl, SPECS["linear"], case, arrays, expected)
    assert verdict.status == FAIL and verdict.mismatch.index == (0, 0), verdict.render()


# --------------------------------------------------------------------------- section 3: imprecise


NAIVE_BCE = """
    import numpy as np
    from refimpl import binary_cross_entropy_backward

    def binary_cross_entropy(input, target, *, reduction="mean"):
        p, y = input, target
        one = p.dtype.type(1)
        with np.errstate(divide="ignore"):
            loss = -(y * np.maximum(np.log(p), -100) + (one - y) * np.maximum(np.log(one - p), -100))
        loss = loss.astype(p.dtype)
        if reduction == "none":
            return loss
        total = loss.sum(dtype=p.dtype)
        return np.asarray(total if reduction == "sum" else total / p.dtype.type(p.size), p.dtype)
"""


def test_log_one_minus_p_is_imprecise_and_names_log1p(tmp_path):
    impl = load(tmp_path, "naive_bce", NAIVE_BCE)
    case = loss_case("binary_cross_entropy", 3)
    arrays = {"input": np.array([1e-8, 0.3, 1e-8]), "target": np.array([0.0, 1.0, 0.0]), "grad_output": np.ones(3)}
    expected, _ = torch_answer("binary_cross_entropy", arrays, {"reduction": "none"})
    verdict = compare_forward(impl, SPECS["binary_cross_entropy"], case, arrays, expected)
    assert verdict.status == IMPRECISE, verdict.render()
    assert verdict.mismatch.index == (0,) and 7 <= verdict.mismatch.digits <= 9  # right to 8 of 16 digits
    assert any("log1p(-p)" in hint for hint in verdict.hints)
    text = verdict.render()
    assert "digits lost" in text and "imprecise" in text


def test_imprecise_exits_0_and_1_under_strict(tmp_path, capsys):
    path = tmp_path / "naive_bce.py"
    path.write_text(textwrap.dedent(NAIVE_BCE))
    args = ["verify", str(path), "--ops", "binary_cross_entropy", "--dtype", "float64", *FAST]
    json_path, xml_path = tmp_path / "r.json", tmp_path / "r.xml"
    assert main([*args, "--json", str(json_path), "--junit", str(xml_path)]) == 0
    out = capsys.readouterr().out
    forward_row = next(line for line in out.splitlines() if "forward" in line and "│" in line)
    assert " imprecise " in forward_row and "digits lost" in forward_row
    assert "use (y - 1) * log1p(-p)" in out and out.rstrip().splitlines()[-1].startswith("OK:")
    import json

    document = json.loads(json_path.read_text())
    assert document["summary"]["imprecise"] == 1 and document["summary"]["exit_code"] == 0
    assert [r["check"] for r in document["imprecise"]] == ["forward"] and not document["failures"]
    assert "imprecise" in xml_path.read_text()
    assert main([*args, "--strict"]) == 1
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("FAILED:")


def test_pytest_warns_on_imprecise_and_fails_under_bpcheck_strict(tmp_path):
    path = tmp_path / "naive_bce.py"
    path.write_text(textwrap.dedent(NAIVE_BCE))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--pyargs", "oracle.suite", f"--impl={path}",
               "-k", "test_binary_cross_entropy_forward_float64", "-W", "default", "--hypothesis-profile", "ci"]
    plain = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert "ImpreciseGradient" in plain.stdout and "log1p(-p)" in plain.stdout
    strict = subprocess.run([*command, "--bpcheck-strict"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert strict.returncode == 1 and "imprecise (a failure under --bpcheck-strict)" in strict.stdout, strict.stdout[-3000:]


# --------------------------------------------------------------------------- section 4: a noisy forward under finite differences


NOISY_BCE = """
    import hashlib
    import numpy as np
    from refimpl import binary_cross_entropy_with_logits as _exact, binary_cross_entropy_with_logits_backward

    def binary_cross_entropy_with_logits(input, target, *, reduction="mean"):
        # the exact loss with a relative error of about 1e-12 that depends on every bit of the input:
        # a deterministic function, as noisy as a forward that accumulates carelessly
        loss = _exact(input, target, reduction=reduction)
        digest = hashlib.sha256(np.ascontiguousarray(input).tobytes()).digest()
        wobble = (int.from_bytes(digest[:8], "little") / 2.0**64 - 0.5) * 2e-12
        return np.asarray(loss * (1 + wobble), dtype=input.dtype)
"""


def test_noisy_forward_does_not_fail_a_right_backward(tmp_path):
    impl = load(tmp_path, "noisy_bce", NOISY_BCE)
    spec = SPECS["binary_cross_entropy_with_logits"]
    verdicts = []
    for seed in range(6):
        for reduction in ("mean", "sum"):
            case = loss_case(spec.name, 6, reduction, values={"input": "logits", "target": "soft"}).with_(seed=seed)
            verdicts.append(CHECKS["finite_differences"](impl, spec, case))
            forward = CHECKS["forward"](impl, spec, case)
            assert forward.status in (PASS, IMPRECISE), forward.render()  # off by ~1e-12 relative: not a wrong rule
    for verdict in verdicts:
        assert verdict.status == PASS, verdict.render()


def test_noisy_forward_still_catches_a_wrong_backward(tmp_path):
    impl = load(tmp_path, "noisy_wrong_bce", NOISY_BCE + """
    def binary_cross_entropy_with_logits_backward(grad_output, input, target, *, reduction="mean"):
        grad = grad_output * (input - target)  # the sigmoid left out
        return grad / input.size if reduction == "mean" else grad
    """)
    spec = SPECS["binary_cross_entropy_with_logits"]
    case = loss_case(spec.name, 6, "mean", values={"input": "logits", "target": "soft"})
    assert CHECKS["finite_differences"](impl, spec, case).status == FAIL


def test_forward_failed_first(tmp_path):
    impl = load(tmp_path, "wrong_forward", """
        import numpy as np
        from refimpl import sigmoid_backward
        def sigmoid(x):
            return np.tanh(x)  # wrong
    """)
    verdict = CHECKS["finite_differences"](impl, SPECS["sigmoid"], elementwise_case("sigmoid", 4))
    assert verdict.status == SKIPPED and verdict.message.startswith("forward failed first"), verdict.render()


# --------------------------------------------------------------------------- section 5: a wrong dtype does not hide the numbers


@pytest.mark.parametrize(("body", "values"), [
    ("return 1 / (1 + np.exp(-x.astype(np.float64)))", "are right"),
    ("return np.tanh(x.astype(np.float64))", "are wrong too"),
])
def test_wrong_dtype_fails_and_says_whether_the_values_are_right(tmp_path, body, values):
    impl = load(tmp_path, "float64_sigmoid", f"""
        import numpy as np
        def sigmoid(x):
            {body}
    """)
    verdict = CHECKS["forward"](impl, SPECS["sigmoid"], elementwise_case("sigmoid", 5, "float32"))
    assert verdict.status == FAIL
    assert "wrong dtype: sigmoid: output has dtype float64, expected float32" in verdict.message
    assert f"the values (cast to the inputs' dtype) {values}" in verdict.message
    assert (verdict.mismatch is None) == (values == "are right")


def test_wrong_dtype_of_a_gradient_is_compared_too(tmp_path):
    impl = load(tmp_path, "float64_relu_backward", """
        import numpy as np
        def relu_backward(grad_output, x):
            return np.where(x > 0, grad_output, 0).astype(np.float64)
    """)
    verdict = CHECKS["backward"](impl, SPECS["relu"], elementwise_case("relu", 5, "float32"))
    assert verdict.status == FAIL and "grad_x has dtype float64" in verdict.message
    assert "are right" in verdict.message, verdict.render()
