"""A smoke run of benchmarks/checks_per_second.py: four linear cases, one mutant (no timings asserted).

It checks what the numbers rest on: the gradcheck wrapper passes refimpl and catches a
mutant, bpcheck passes refimpl on the same cases, and the tables come out.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "checks_per_second.py"


def _script():
    spec = importlib.util.spec_from_file_location("checks_per_second", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_on_linear(tmp_path, capsys):
    out = tmp_path / "cps.md"
    _script().main(["--cases", "4", "--ops", "linear", "--mutants", "linear_grad_weight_transposed",
                    "--markdown", str(out)])
    text = out.read_text()
    assert "load average" in text and "Implementation.load" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| linear | ")]
    methods = {row[1]: row for row in rows}
    assert set(methods) == {"bpcheck backward", "bpcheck FD", "bpcheck all checks", "gradcheck", "gradcheck fast"}
    assert all(row[2] == "4" and row[-1] == "0 |" for row in rows), rows  # every method passes refimpl
    assert methods["gradcheck fast"][5] == "1x"
    detected = [line for line in text.splitlines() if line.startswith("| `linear_grad_weight_transposed`")]
    assert len(detected) == 5 and not any("not found" in line for line in detected), detected
