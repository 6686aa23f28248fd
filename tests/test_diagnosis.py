"""oracle.diagnosis: a failing backward is matched against the catalogue of classic mistakes, from evidence only."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

import oracle.diagnosis
import oracle.implementation
from oracle import checks
from oracle.case import Case
from oracle.diagnosis import HINT, diagnose
from oracle.examples import bce, conv, elementwise, pool
from oracle.implementation import Implementation
from oracle.mistakes import MISTAKES, for_op, reference
from oracle.ops import SPECS
from oracle.verdict import FAIL, PASS

REFIMPL = Implementation.load("refimpl")

#: (mistake, a case on which it is wrong, the check that sees it there)
WITNESSES = [
    ("conv_unflipped_filter", conv((1, 1, 6, 6), (1, 1, 3, 3)), "backward"),
    ("conv_grad_x_stride_not_dilated", conv((1, 1, 7, 7), (1, 1, 3, 3), stride=2, bias=False), "backward"),
    ("conv_padding_cropped_at_end", conv((1, 2, 5, 5), (2, 2, 3, 3), padding=1), "finite_differences"),
    ("conv_grad_weight_channels_transposed", conv((2, 4, 5, 5), (6, 2, 3, 3), groups=2), "backward"),
    ("maxpool_ties_all", pool("max_pool2d", (1, 1, 4, 4), 2, values={"x": "ties"}), "backward"),
    ("maxpool_overlap_overwrite", pool("max_pool2d", (1, 1, 5, 5), 3, stride=1), "finite_differences"),
    ("avgpool_divisor_override_ignored", pool("avg_pool2d", (1, 1, 4, 4), 2, stride=1, padding=1, divisor_override=3), "backward"),
    ("linear_grad_weight_transposed", Case("linear", {"x": (4, 3), "weight": (3, 3), "bias": (3,), "grad_output": (4, 3)}, {}), "backward"),
    ("relu_grad_at_zero_one", elementwise("relu", (3, 4), values={"x": "zeros"}), "backward"),
    ("sigmoid_derivative_s", elementwise("sigmoid", (2, 3)), "finite_differences"),
    ("flatten_column_major", Case("flatten", {"x": (2, 3, 2), "grad_output": (2, 6)}, {}), "backward"),
    ("bce_no_epsilon_clamp", bce("binary_cross_entropy", (2, 5), values={"input": "probabilities_edges", "target": "binary"}), "backward"),
    ("bce_mean_not_divided", bce("binary_cross_entropy", (2, 3), values={"input": "probabilities_safe", "target": "soft"}), "backward"),
    ("bce_logits_naive", bce("binary_cross_entropy_with_logits", (2, 5), values={"input": "logits_wide", "target": "binary"}), "backward"),
]
WITNESS_PARAMS = [pytest.param(name, case, check, id=name) for name, case, check in WITNESSES]


def _mistake_hints(hints: list[str]) -> list[str]:
    return [h for h in hints if h.startswith("matches the classic mistake")]


def _impl(**functions) -> Implementation:
    return Implementation(SimpleNamespace(**functions), "test double")


@pytest.mark.parametrize(("name", "case", "check"), WITNESS_PARAMS)
def test_diagnose_names_exactly_the_mutants_mistake(name, case, check):
    mistake = MISTAKES[name]
    mutant = Implementation.load(mistake.module)
    spec = SPECS[mistake.op]
    on = checks.fd_case(spec, case) if check == "finite_differences" else case
    assert _mistake_hints(diagnose(mutant, spec, on)) == [HINT.format(name=name, description=mistake.description)]


@pytest.mark.parametrize(("name", "case", "check"), WITNESS_PARAMS)
def test_failing_check_carries_the_hint(name, case, check):
    mistake = MISTAKES[name]
    verdict = checks.CHECKS[check](Implementation.load(mistake.module), SPECS[mistake.op], case)
    assert verdict.status == FAIL
    assert _mistake_hints(verdict.hints) == [HINT.format(name=name, description=mistake.description)]
    assert f"hint: matches the classic mistake '{name}'" in verdict.render()


@pytest.mark.parametrize(("name", "case", "check"), WITNESS_PARAMS)
def test_refimpl_matches_no_mistake(name, case, check):
    spec = SPECS[case.op]
    assert diagnose(REFIMPL, spec, case) == []
    assert diagnose(REFIMPL, spec, checks.fd_case(spec, case)) == []
    verdict = checks.CHECKS[check](REFIMPL, spec, case)
    assert verdict.status == PASS and verdict.hints == []


def test_a_mistake_that_makes_no_difference_is_no_evidence():
    """Stride 1: the stride-dilation mistakes equal the right rule, so a correct-here backward matches none of them."""
    case = conv((1, 1, 5, 5), (1, 1, 3, 3))
    spec = SPECS["conv2d"]
    wrong_elsewhere = Implementation.load(MISTAKES["conv_grad_x_stride_not_dilated"].module)
    assert diagnose(wrong_elsewhere, spec, case) == []


def test_unknown_wrong_gradient_says_no_mistake_matches():
    correct = reference("relu_backward")
    doubled = _impl(relu=reference("relu"), relu_backward=lambda g, x: 2 * correct(g, x))
    hints = diagnose(doubled, SPECS["relu"], elementwise("relu", (3, 3)))
    assert hints == [f"matches none of the {len(for_op('relu'))} classic relu mistakes catalogued in oracle.mistakes"]


def test_a_backward_that_ignores_grad_output_is_named():
    correct = reference("conv2d_backward")
    ones = lambda g, x, w, b=None, **k: correct(np.ones_like(g), x, w, b, **k)  # noqa: E731 - the mistake itself
    impl = _impl(conv2d=reference("conv2d"), conv2d_backward=ones)
    hints = diagnose(impl, SPECS["conv2d"], conv((1, 2, 5, 5), (3, 2, 3, 3), stride=2, padding=1))
    assert hints[0] == oracle.diagnosis.IGNORES_GRAD_OUTPUT and "matches none of the" in hints[1]


def test_a_backward_that_is_not_deterministic_is_named():
    correct = reference("relu_backward")
    rng = np.random.default_rng(0)
    noisy = lambda g, x: correct(g, x) + rng.standard_normal(x.shape)  # noqa: E731 - the mistake itself
    hints = diagnose(_impl(relu=reference("relu"), relu_backward=noisy), SPECS["relu"], elementwise("relu", (3, 3)))
    assert hints[0].startswith(oracle.diagnosis.NOT_DETERMINISTIC + " (not deterministic: two identical calls of the "
                               "backward differ by up to ")


CASE = conv((1, 2, 5, 5), (3, 2, 3, 3), stride=2, padding=1)


def _raises(*args, **kwargs):
    raise RuntimeError("boom")


def _mutates(g, x, w, b=None, **config):
    x[...] = 0
    return reference("conv2d_backward")(g, x, w, b, **config)


@pytest.mark.parametrize(
    "backward",
    [
        pytest.param(_raises, id="raises"),
        pytest.param(lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("no")), id="not-implemented"),
        pytest.param(_mutates, id="mutates-its-input"),
        pytest.param(lambda *a, **k: None, id="returns-None"),
        pytest.param(lambda *a, **k: "gradients", id="returns-a-string"),
        pytest.param(lambda g, x, w, b=None, **k: (np.zeros_like(x), np.zeros_like(w)), id="too-few-results"),
        pytest.param(lambda g, x, w, b=None, **k: (np.zeros((1, 1)), np.zeros_like(w), None), id="wrong-shape"),
        pytest.param(lambda g, x, w, b=None, **k: (x.astype(int), np.zeros_like(w), np.zeros(3)), id="integer-array"),
    ],
)
def test_misbehaving_implementation_gets_no_diagnosis_and_no_exception(backward):
    impl = _impl(conv2d=reference("conv2d"), conv2d_backward=backward)
    assert diagnose(impl, SPECS["conv2d"], CASE) == []


def test_missing_backward_gets_no_diagnosis():
    assert diagnose(_impl(conv2d=reference("conv2d")), SPECS["conv2d"], CASE) == []


def test_diagnose_never_raises_even_if_its_own_machinery_breaks(monkeypatch):
    monkeypatch.setattr(oracle.diagnosis.mistakes, "for_op", _raises)
    mutant = Implementation.load(MISTAKES["conv_unflipped_filter"].module)
    assert diagnose(mutant, SPECS["conv2d"], CASE) == []


def test_a_raising_backward_fails_the_check_without_hints():
    impl = _impl(conv2d=reference("conv2d"), conv2d_backward=_raises)
    verdict = checks.backward(impl, SPECS["conv2d"], CASE)
    assert verdict.status == FAIL and "raised" in verdict.message
    assert verdict.hints == []


def test_a_hanging_backward_is_not_called_again_to_diagnose(monkeypatch):
    monkeypatch.setattr(oracle.implementation, "CALL_TIMEOUT", 0.2)
    called = []
    monkeypatch.setattr(oracle.diagnosis, "diagnose", lambda *a: called.append(a) or ["should not be here"])

    def hangs(*args, **kwargs):
        time.sleep(5)

    verdict = checks.backward(_impl(conv2d=reference("conv2d"), conv2d_backward=hangs), SPECS["conv2d"], CASE)
    assert verdict.status == FAIL and verdict.message.startswith("hang")
    assert verdict.hints == [] and called == []


def test_forward_failures_are_not_diagnosed(monkeypatch):
    called = []
    monkeypatch.setattr(oracle.diagnosis, "diagnose", lambda *a: called.append(a) or ["should not be here"])
    impl = _impl(conv2d=lambda *a, **k: 2 * reference("conv2d")(*a, **k), conv2d_backward=reference("conv2d_backward"))
    verdict = checks.forward(impl, SPECS["conv2d"], CASE)
    assert verdict.status == FAIL and verdict.hints == [] and called == []
