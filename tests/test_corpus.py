"""The stored corpus: ``bpcheck record`` / ``bpcheck replay``, the shipped file, and replay without torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from oracle import corpus
from oracle.case import DTYPES
from oracle.cli import main
from oracle.implementation import Implementation
from oracle.ops import SPECS
from oracle.verdict import FAIL, PASS

GOOD_RELU = """
import numpy as np

def relu(x):
    return np.where(x < 0, np.zeros_like(x), x)

def relu_backward(grad_output, x):
    return np.where(x <= 0, np.zeros_like(grad_output), grad_output)
"""

#: relu'(0) taken as 1: only the cases with exact zeros in x tell
BROKEN_RELU = GOOD_RELU.replace("np.where(x <= 0, np.zeros_like(grad_output), grad_output)", "grad_output * (x >= 0)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny corpus of relu and conv2d, recorded once for the module."""
    path = tmp_path_factory.mktemp("corpus") / "tiny.npz"
    meta = corpus.record(path, cases=2, ops=["relu", "conv2d"], seed=7)
    return path, meta


def _write(tmp_path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_shipped_corpus_is_small_complete_and_replays_refimpl():
    path = corpus.shipped_path()
    assert path.is_file() and path.stat().st_size < 2 * 1024 * 1024
    stored = corpus.load(path)
    assert stored.meta["version"] == corpus.VERSION and stored.meta["torch"] and stored.meta["numpy"] and stored.meta["date"]
    assert {(c.op, c.dtype) for c in stored.cases} == {(op, dtype) for op in SPECS for dtype in DTYPES}
    assert {c.source for c in stored.cases} == {"drawn", "example"}
    assert all(c.output.dtype == np.float64 for c in stored.cases)

    result = corpus.replay(Implementation.load("refimpl"), stored)
    assert not result.failures, "\n\n".join(v.render() for v in result.failures)
    assert any(v.status == PASS for _, _, v in result.results)


def test_record_is_deterministic_and_replays(tiny, tmp_path):
    path, meta = tiny
    assert [c["recipe"] for c in meta["cases"]] == [
        c["recipe"] for c in corpus.record(tmp_path / "again.npz", cases=2, ops=["relu", "conv2d"], seed=7)["cases"]
    ]
    drawn = [c for c in meta["cases"] if c["source"] == "drawn"]
    assert len(drawn) == 2 * 2 * len(DTYPES)
    stored = corpus.load(path)
    first = stored.cases[0]
    assert repr(first.case) == meta["cases"][0]["recipe"]
    assert set(first.arrays) == set(first.case.shapes) and "grad_output" in first.arrays

    result = corpus.replay(Implementation.load("refimpl"), stored)
    assert not result.failures
    assert any(s.op == "conv2d" and v.status == PASS for s, _, v in result.results)


def test_missing_functions_are_not_implemented_rows(tiny, tmp_path, capsys):
    path, _ = tiny
    module = _write(tmp_path, "only_relu.py", GOOD_RELU)
    assert main(["replay", module, str(path)]) == 0
    out = capsys.readouterr().out
    relu_row = next(line for line in out.splitlines() if line.startswith("relu ") and "float64" in line)
    conv_row = next(line for line in out.splitlines() if line.startswith("conv2d ") and "float32" in line)
    assert "pass" in relu_row and "FAIL" not in relu_row
    assert "not implemented" in conv_row and "FAIL" not in conv_row


def test_broken_module_fails_with_a_located_difference(tmp_path, capsys):
    module = _write(tmp_path, "broken_relu.py", BROKEN_RELU)
    assert main(["replay", module, "--ops", "relu"]) == 1
    out = capsys.readouterr().out
    relu_row = next(line for line in out.splitlines() if line.startswith("relu ") and "float64" in line)
    assert "pass" in relu_row and "FAIL" in relu_row
    assert "relu backward vs torch autograd: FAIL" in out
    assert "relu forward vs torch" not in out  # the forward is right
    assert "grad_x: " in out and "worst at (" in out and "expected 0, got " in out and "rel err inf" in out
    assert "values: {'x': 'zeros'}" in out and "as stored in case c" in out
    assert out.rstrip().splitlines()[-1].startswith("FAILED:")


def test_replay_never_imports_torch(tmp_path):
    """The shipped corpus replays in a process where any attempt to import torch fails and is recorded."""
    script = textwrap.dedent(
        """
        import sys
        attempts = []

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    attempts.append(name)
                    raise ImportError("torch is hidden for this test")
                return None

        sys.meta_path.insert(0, NoTorch())
        from oracle.cli import main
        code = main(["replay", "refimpl"])
        print("TORCH IMPORT ATTEMPTS:", attempts)
        sys.exit(code if not attempts else 3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TORCH IMPORT ATTEMPTS: []" in proc.stdout
    assert proc.stdout.count("passed:") == 1


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _corrupt(data: bytes) -> bytes:
    middle = bytearray(data)
    start = len(data) // 3
    for i in range(start, start + 64):
        middle[i] ^= 0x5A
    return bytes(middle)


def _wrong_version(path) -> bytes:
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays[corpus.META_KEY][()]))
    meta["version"] = corpus.VERSION + 98
    arrays[corpus.META_KEY] = np.array(json.dumps(meta))
    out = path.with_name("v99.npz")
    np.savez_compressed(out, **arrays)
    return out.read_bytes()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: _truncated(path.read_bytes()), "truncated"),
        (lambda path: _corrupt(path.read_bytes()), "corrupt"),
        (_wrong_version, f"corpus format version {corpus.VERSION + 98}, this bpcheck reads version {corpus.VERSION}"),
        (lambda path: b"not a corpus\n", "not a bpcheck corpus"),
    ],
    ids=["truncated", "corrupt", "wrong-version", "not-npz"],
)
def test_a_bad_file_is_one_clear_line_and_exit_2(tiny, tmp_path, capsys, damage, message):
    path, _ = tiny
    bad = tmp_path / "bad.npz"
    bad.write_bytes(damage(path))
    assert main(["replay", "refimpl", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bpcheck replay: error: ") and str(bad) in lines[0]
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_bad_module_exits_2(capsys):
    assert main(["replay", "no_such_module_xyz"]) == 2
    assert "no_such_module_xyz" in capsys.readouterr().err


def test_recipes_are_read_back_without_eval():
    with pytest.raises(ValueError):
        corpus.case_from_recipe("__import__('os').system('true')")
    case = corpus.load(corpus.shipped_path()).cases[0].case
    assert corpus.case_from_recipe(repr(case)) == case


def test_replay_counts_fail_statuses(tiny, tmp_path):
    path, _ = tiny
    result = corpus.replay(Implementation.load(_write(tmp_path, "broken2.py", BROKEN_RELU)), corpus.load(path))
    counts = result.counts()
    assert all(counts[("relu", dtype)]["forward"] == {PASS: counts[("relu", dtype)]["forward"][PASS]} for dtype in DTYPES)
    assert all(counts[("relu", dtype)]["backward"].get(FAIL, 0) >= 1 for dtype in DTYPES)  # the zeros example
    assert all(set(counts[("conv2d", dtype)]["backward"]) == {"not implemented"} for dtype in DTYPES)
