"""The verifier verified: the property suite must kill every mutant of the bug zoo, and name its mistake.

Each mutant (``oracle.zoo``) is refimpl with one backward rule replaced by a
classic mistake (``oracle.mistakes``). For each one the suite's ``backward``
and ``finite_differences`` checks run through the suite's own property (``oracle.suite.build_property``)
with the 'ci' profile's derandomized cases (no shrinking: a mutant stops at its
first failing case; see ``oracle.zoo.harness``); the suite must fail, and the
failure's hint must name the mistake.

A second test runs the strategies alone, without the explicit examples: a
mutant that only a hand-written example kills is a hole in
``oracle.strategies``: fix the strategy, never delete the mutant.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from oracle.examples import examples_for
from oracle.implementation import Implementation
from oracle.mistakes import MISTAKES, SCAFFOLDS, for_op, reference
from oracle.ops import SPECS, positional
from oracle.zoo import MUTANTS
from oracle.zoo._mutant import CONTRACT_FUNCTIONS
from oracle.zoo.harness import ZOO_CHECKS, refimpl_rejects, run

ZOO_DIR = Path(importlib.import_module("oracle.zoo").__file__).parent
HELPERS = {"__init__", "_mutant", "harness", "report"}

#: mutants the drawn cases alone do not kill (only an explicit example does), and what the strategy lacks
MUTANT_PARAMS = [pytest.param(module, name, id=name) for module, name in MUTANTS.items()]


def _load(module: str) -> Implementation:
    return Implementation.load(module)


def _valid_examples(op: str, dtype: str):
    return [case for case in examples_for(op, dtype) if not refimpl_rejects(case)]


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


# --------------------------------------------------------------------------- the catalogue and the zoo


def test_catalogue_covers_every_op():
    assert len(MISTAKES) >= 28
    for op in SPECS:
        assert for_op(op), f"no classic mistake catalogued for {op}"
    for mistake in MISTAKES.values():
        assert mistake.op in SPECS
        assert mistake.description and mistake.name.isidentifier()


def test_zoo_has_one_module_per_mistake():
    assert sorted(MUTANTS.values()) == sorted(MISTAKES)
    modules = {p.stem for p in ZOO_DIR.glob("*.py")} - HELPERS
    assert modules == set(MISTAKES)
    for module, name in MUTANTS.items():
        assert module == f"oracle.zoo.{name}" == MISTAKES[name].module


@pytest.mark.parametrize(("module", "name"), MUTANT_PARAMS)
def test_mutant_is_refimpl_but_one_backward(module, name):
    mistake = MISTAKES[name]
    mutant = importlib.import_module(module)  # our own module, inspected here: not an implementation under test
    broken = f"{mistake.op}_backward"
    assert getattr(mutant, broken) is mistake.backward
    for fn in CONTRACT_FUNCTIONS:
        if fn != broken and reference(fn) is not None:
            assert getattr(mutant, fn, None) is reference(fn), f"{module}.{fn} is not refimpl's"
    assert mutant.MISTAKE is mistake


def test_mutant_loads_from_a_file_path():
    path = ZOO_DIR / "conv_unflipped_filter.py"
    with Implementation.load(str(path)) as impl:
        assert set(impl.provided()) == {fn for fn in CONTRACT_FUNCTIONS if reference(fn) is not None}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", list(SPECS))
def test_scaffold_without_mistake_is_refimpl(op, dtype):
    """Each mistake is one switch of its op's scaffold; with no switch on, the scaffold is refimpl's rule."""
    correct = reference(SPECS[op].backward_name)
    assert correct is not None, f"refimpl lost {op}_backward"
    spec = SPECS[op]
    rtol = 1e-12 if dtype == "float64" else 1e-5
    for case in _valid_examples(op, dtype):
        a = case.arrays()
        args = [a["grad_output"], *positional(spec, a)]
        with np.errstate(all="ignore"):
            want, got = _as_tuple(correct(*args, **case.config)), _as_tuple(SCAFFOLDS[op](*args, **case.config))
        for w, g in zip(want, got, strict=True):
            if w is None:
                assert g is None
                continue
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(1.0, float(np.nanmax(np.abs(w), initial=0))), err_msg=repr(case))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("op", list(SPECS))
def test_mistakes_are_shape_and_dtype_correct(op, dtype):
    """A mistake is caught by its values, never by a crash or a wrong shape: same shapes and dtypes as refimpl."""
    correct = reference(SPECS[op].backward_name)
    assert correct is not None, f"refimpl lost {op}_backward"
    spec = SPECS[op]
    for case in _valid_examples(op, dtype):
        a = case.arrays()
        args = [a["grad_output"], *positional(spec, a)]
        with np.errstate(all="ignore"):
            want = _as_tuple(correct(*args, **case.config))
            for mistake in for_op(op):
                got = _as_tuple(mistake.backward(*args, **case.config))
                assert len(got) == len(want), mistake.name
                for w, g in zip(want, got):
                    assert (g is None) == (w is None), mistake.name
                    if w is not None:
                        assert isinstance(g, np.ndarray) and g.shape == w.shape and g.dtype == w.dtype, (mistake.name, case)


# --------------------------------------------------------------------------- the suite kills every mutant


@pytest.mark.parametrize(("module", "name"), MUTANT_PARAMS)
def test_suite_kills_mutant_and_names_the_mistake(module, name):
    mistake = MISTAKES[name]
    impl = _load(module)
    outcomes = {check: run(impl, mistake.op, check) for check in ZOO_CHECKS}
    assert any(o.judged for o in outcomes.values()), f"no case of {mistake.op} was judged: does refimpl still implement it?"
    killers = [check for check, o in outcomes.items() if o.killed]
    assert killers, (
        f"mutant {name} survives the suite's {' and '.join(ZOO_CHECKS)} checks "
        f"({', '.join(f'{c}: {o.judged} cases' for c, o in outcomes.items())}): {mistake.description}"
    )
    for check in killers:
        outcome = outcomes[check]
        assert isinstance(outcome.raised, (AssertionError, BaseExceptionGroup)), outcome.raised
        assert outcome.hinted(name), (
            f"{check} failure of mutant {name} does not name the mistake; hints: {outcome.first_failure.hints}\n"
            f"{outcome.message()[:3000]}"
        )


@pytest.mark.parametrize(("module", "name"), MUTANT_PARAMS)
def test_strategies_alone_kill_mutant(module, name):
    """Without the explicit examples: a survivor here is a hole in oracle.strategies (report it, add the corner)."""
    mistake = MISTAKES[name]
    impl = _load(module)
    outcomes = {}
    for check in ZOO_CHECKS:
        outcomes[check] = run(impl, mistake.op, check, explicit_examples=False)
        if outcomes[check].killed:
            return
    assert any(o.judged for o in outcomes.values()), f"no case of {mistake.op} was judged: does refimpl still implement it?"
    pytest.fail(f"the drawn cases alone do not kill {name} ({mistake.description}): the strategies miss its corner")
