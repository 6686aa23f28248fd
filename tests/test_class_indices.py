"""Integer arrays in a floating case: cross_entropy's target, int64 class indices, along every path.

A float32 cross_entropy case's target is int64 when drawn (``oracle.values``'s
``"class_indices"`` recipe), after ``Case.with_(dtype=...)``, in its
reproduction, in torch (``torch.long``, never cast to the float dtype), in the
worker (it crosses the protocol as int64), in finite differences (never
perturbed, never widened to float64) and in the corpus (stored and reloaded as
int64; a corpus whose target is not is corrupt).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

import refimpl
from oracle import checks, corpus, torch_oracle, values
from oracle.case import DTYPES, Case
from oracle.corpus import CorpusError
from oracle.implementation import Implementation
from oracle.ops import SPECS
from oracle.verdict import PASS

SPEC = SPECS["cross_entropy"]


def _case(dtype="float32", *, n=3, c=4, reduction="mean", seed=1) -> Case:
    return Case("cross_entropy", {"input": (n, c), "target": (n,), "grad_output": (n,) if reduction == "none" else ()},
                {"reduction": reduction}, dtype=dtype, seed=seed, values={"target": "class_indices"})


@pytest.mark.parametrize("dtype", DTYPES)
def test_class_indices_are_int64_in_range_whatever_the_case_dtype(dtype):
    seen = set()
    for seed in range(30):
        arrays = _case(dtype, c=5, seed=seed).arrays()
        target = arrays["target"]
        assert target.dtype == np.int64 and target.shape == (3,)
        assert target.min() >= 0 and target.max() < 5
        assert arrays["input"].dtype == np.dtype(dtype) and arrays["grad_output"].dtype == np.dtype(dtype)
        seen |= set(target.tolist())
    assert seen == set(range(5))  # every class is drawn


def test_with_dtype_keeps_the_target_int64_and_the_same_indices():
    case = _case("float32")
    wide = case.with_(dtype="float64")
    assert wide.dtype_of("target") == np.int64 and wide.dtype_of("input") == np.float64
    assert wide.arrays()["target"].dtype == np.int64
    np.testing.assert_array_equal(wide.arrays()["target"], case.arrays()["target"])
    fd = checks.fd_case(SPEC, case)  # the finite-difference refill of input keeps the target's recipe
    assert fd.values["target"] == "class_indices" and fd.arrays()["target"].dtype == np.int64


def test_reproduction_names_the_int64_target_and_rebuilds_it():
    case = _case("float32")
    text = case.reproduction()
    assert "dtype=float32 (target int64)" in text
    rebuilt = eval(repr(case), {"Case": Case})  # noqa: S307 - our own repr, as the reproduction says
    np.testing.assert_array_equal(rebuilt.arrays()["target"], case.arrays()["target"])
    assert rebuilt.arrays()["target"].dtype == np.int64
    assert "int64" not in Case("relu", {"x": (2,), "grad_output": (2,)}, {}, dtype="float32").reproduction()


def test_class_indices_need_an_input_with_classes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="input of shape"):
        values.make("class_indices", (3,), np.dtype("float32"), rng, {"x": (3, 4)})
    with pytest.raises(ValueError, match="at least one class"):
        values.make("class_indices", (3,), np.dtype("float32"), rng, {"input": (3, 0)})
    with pytest.raises(ValueError, match="unknown value recipe.*class_indices"):
        values.make("no_such_recipe", (3,), np.dtype("float32"), rng)


def test_torch_gets_the_target_as_long_and_the_input_in_the_float_dtype(monkeypatch):
    seen = {}
    real = torch_oracle.torch_function

    def spy(op):
        fn = real(op)

        def called(input, target, **config):
            seen.update(input=input.dtype, target=target.dtype)
            return fn(input, target, **config)

        return called

    monkeypatch.setattr(torch_oracle, "torch_function", spy)
    case = _case("float32", reduction="none")
    a = case.arrays()
    for dtype in DTYPES:
        output, grads = torch_oracle.run("cross_entropy", {"input": a["input"], "target": a["target"]}, case.config,
                                         SPEC.differentiable, a["grad_output"], dtype=dtype)
        assert seen == {"input": getattr(torch, dtype), "target": torch.long}
        assert grads["input"].dtype == np.dtype(dtype) and output.shape == (3,)
        assert set(grads) == {"input"}  # the target is not differentiated


ECHO = """
import numpy as np

def cross_entropy(input, target, *, reduction="mean"):
    return target, input
"""


def test_the_worker_receives_and_returns_the_target_as_int64(tmp_path):
    path = tmp_path / "echo.py"
    path.write_text(ECHO)
    a = _case("float32").arrays()
    with Implementation.load(str(path)) as impl:
        target, input = impl.call("cross_entropy", [a["input"], a["target"]], {"reduction": "mean"})
    assert target.dtype == np.int64 and input.dtype == np.float32
    np.testing.assert_array_equal(target, a["target"])


def test_finite_differences_never_perturb_or_widen_the_target():
    case = _case("float32", c=3)
    want = checks.fd_case(SPEC, case).arrays()["target"]
    targets = []

    def forward(input, target, *, reduction="mean"):
        targets.append(target.copy())
        return refimpl.cross_entropy(input, target, reduction=reduction)

    spy = types.SimpleNamespace(cross_entropy=forward, cross_entropy_backward=refimpl.cross_entropy_backward)
    verdict = checks.finite_differences(Implementation(spy, "spy"), SPEC, case)
    assert verdict.status == PASS, verdict.render()
    assert len(targets) > 2 * 9  # the forward at x, the noise probes and both sides of every element
    assert all(t.dtype == np.int64 for t in targets)
    assert all(np.array_equal(t, want) for t in targets)


def test_backward_through_the_worker_passes_in_float32():
    with Implementation.load("refimpl") as impl:
        for reduction in ("mean", "sum", "none"):
            verdict = checks.backward(impl, SPEC, _case("float32", reduction=reduction))
            assert verdict.status == PASS, verdict.render()


def test_corpus_stores_and_reloads_the_target_as_int64(tmp_path):
    path = tmp_path / "classes.npz"
    corpus.record(path, cases=2, ops=["cross_entropy"], seed=3)
    stored = corpus.load(path)
    assert {c.dtype for c in stored.cases} == set(DTYPES)
    for c in stored.cases:
        assert c.arrays["target"].dtype == np.int64, (c.id, c.dtype)
        assert c.arrays["input"].dtype == np.dtype(c.dtype)
    with Implementation.load("refimpl") as impl:
        assert not corpus.replay(impl, stored).failures

    with np.load(path) as archive:  # the same corpus with one target widened to float
        arrays = {k: archive[k] for k in archive.files}
    key = f"{stored.cases[0].id}/target"
    arrays[key] = arrays[key].astype(np.float32)
    damaged = tmp_path / "damaged.npz"
    with open(damaged, "wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(CorpusError, match="target is float32.*recipe says int64"):
        corpus.load(damaged)
