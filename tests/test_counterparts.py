"""The other half of the zoo: right-but-different implementations must never FAIL (no false alarms).

Each counterpart (``oracle.zoo.right``) is refimpl with one op, forward and
backward, computed another correct way (FFT, einsum, im2col in float32, plain
loops, strided views, a summed-area table, sigmoid through tanh or logaddexp,
BCE through log(1 - p) or logaddexp ...). For each one, every check of that op
(``oracle.suite.checks_for``) runs in both dtypes through the suite's own
property (``oracle.zoo.right.measure``, via ``oracle.zoo.harness.run``: the 'ci'
profile's derandomized cases, the op's explicit examples first, no shrinking,
going on after a failure); the test requires no FAIL. An "imprecise" verdict
is allowed: that is what it is for.

To keep this file near a minute on 2 workers, the drawn cases are capped at
``MAX_EXAMPLES`` = 50 per check and dtype (the 'ci' profile draws 200; the
explicit examples all run). ``python -m oracle.zoo.report`` measures the full 200.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

from oracle.mistakes import reference
from oracle.ops import SPECS
from oracle.zoo.right import COUNTERPARTS
from oracle.zoo.right._counterpart import CONTRACT_FUNCTIONS, build
from oracle.zoo.right.measure import measure

MAX_EXAMPLES = 50
RIGHT_DIR = Path(importlib.import_module("oracle.zoo.right").__file__).parent
HELPERS = {"__init__", "_counterpart", "measure"}
PARAMS = [pytest.param(module, id=module.rsplit(".", 1)[-1]) for module in COUNTERPARTS]


def test_at_least_twelve_counterparts_covering_the_rules_that_compute():
    assert len(COUNTERPARTS) >= 12
    ops = set(COUNTERPARTS.values())
    assert {"conv2d", "linear", "max_pool2d", "avg_pool2d", "relu", "sigmoid",
            "binary_cross_entropy", "binary_cross_entropy_with_logits"} <= ops
    assert ops <= set(SPECS)


def test_every_module_is_registered():
    modules = {p.stem for p in RIGHT_DIR.glob("*.py")} - HELPERS
    assert {f"oracle.zoo.right.{m}" for m in modules} == set(COUNTERPARTS)


@pytest.mark.parametrize("module", PARAMS)
def test_counterpart_is_refimpl_but_one_op_of_its_own(module):
    op = COUNTERPARTS[module]
    counterpart = importlib.import_module(module)  # our own module, inspected here: not an implementation under test
    own = (SPECS[op].name, SPECS[op].backward_name)
    assert counterpart.OP == op
    for name in CONTRACT_FUNCTIONS:
        fn, ref = getattr(counterpart, name, None), reference(name)
        if name in own:
            assert fn is not None and fn is not ref, f"{module}.{name} must be its own"
            assert fn.__module__ == module, f"{module}.{name} comes from {fn.__module__}"
        elif ref is not None:
            assert fn is ref, f"{module}.{name} is not refimpl's"


def test_build_refuses_a_counterpart_that_is_refimpl():
    fake = types.ModuleType("fake_counterpart")
    fake.relu, fake.relu_backward = reference("relu"), reference("relu_backward")
    sys.modules[fake.__name__] = fake
    try:
        with pytest.raises(ValueError, match="refimpl's"):
            build(fake.__name__, "relu")
        del fake.relu_backward
        with pytest.raises(ValueError, match="must define relu_backward"):
            build(fake.__name__, "relu")
    finally:
        del sys.modules[fake.__name__]


def test_measure_counts_a_wrong_rule_as_fail():
    """The measurement can fail: a mutant of the zoo measured like a counterpart gets FAILs."""
    m = measure("oracle.zoo.relu_grad_at_zero_one", "relu", max_examples=10, dtypes=("float64",))
    assert m.fails > 0 and not m.ok
    assert all(v.failed for v in m.failures)


@pytest.mark.parametrize("module", PARAMS)
def test_right_rule_never_fails(module):
    m = measure(module, max_examples=MAX_EXAMPLES)
    assert m.judged > 0, f"{module}: no case of {m.op} was judged"
    if m.fails:
        details = "\n\n".join(
            f"[{check}/{dtype}] {sum(v.check == check and v.case.dtype == dtype for v in m.failures)} failing case(s); first:\n"
            + v.render()
            for (check, dtype), v in m.first_failures().items()
        )
        errors = "\n".join(m.errors)
        pytest.fail(
            f"{m.name} ({m.op}, right but computed differently) got {m.fails} FAIL verdict(s) "
            f"({m.passes} pass, {m.imprecise} imprecise) in {', '.join(m.failing_checks())}: a false alarm.\n\n"
            f"{details}\n{errors}"
        )
