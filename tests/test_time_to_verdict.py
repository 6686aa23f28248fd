"""What benchmarks/time_to_verdict.py rests on (no timings asserted): its ten-times-slower implementation
provides the whole contract, gives refimpl's answers, and passes ``bpcheck verify``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

import refimpl

SLOW = Path(__file__).resolve().parent.parent / "benchmarks" / "slow_refimpl.py"


def _slow():
    spec = importlib.util.spec_from_file_location("slow_refimpl", SLOW)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slow_implementation_is_refimpl_computing_each_call_ten_times(monkeypatch):
    slow = _slow()
    for op in refimpl.CONTRACT:
        assert callable(getattr(slow, op)) and callable(getattr(slow, f"{op}_backward"))
    calls = []
    monkeypatch.setattr(refimpl, "relu", lambda x: calls.append(1) or np.maximum(x, 0))
    x = np.array([-1.0, 2.0])
    assert np.array_equal(_slow().relu(x), [0.0, 2.0]) and len(calls) == slow.SLOWDOWN


def test_the_slow_implementation_passes_verify():
    done = subprocess.run([sys.executable, "-m", "oracle.cli", "verify", str(SLOW), "--ops", "relu", "--profile", "ci",
                           "--dtype", "float64"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "OK: 5 op/check/dtype results: 3 pass, 2 not implemented" in done.stdout  # no relu_jvp, relu_double_backward
