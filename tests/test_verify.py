"""``bpcheck verify``: exit codes, the table, counterexamples, crash and hang isolation, JSON and JUnit.

Each test runs the real command (``oracle.cli.main``, in this process; the
checks run in child processes as always) on a small module written to
``tmp_path``, with few examples and only the ops it concerns, so that the file
stays fast. Broken modules take refimpl's functions and break one thing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from oracle.cases.record import OPTIONAL_FUNCTIONS
from oracle.cli import main

FAST = ["--examples", "5", "--seed", "1", "--shrink-time", "5"]



def verify(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["verify", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def module(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def rows(out: str, op: str, optional: bool = False) -> dict[str, str]:
    """check -> its table row, for the rows of ``op`` (which is named on its first row only); the rows of the
    contract's optional functions (``jvp``, ``double_backward``) only with ``optional``."""
    found: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip()[1:-1].split("│")]
        if cells[0]:
            current = cells[0]
        if current == op and (optional or cells[1] not in OPTIONAL_FUNCTIONS):
            found[cells[1]] = line
    return found


def results(path: Path, optional: bool = False) -> list[dict]:
    """The JSON report's results; those of the contract's optional functions only with ``optional``."""
    return [r for r in json.loads(path.read_text())["results"] if optional or r["check"] not in OPTIONAL_FUNCTIONS]


def test_refimpl_passes(capsys):
    code, out, _ = verify(capsys, "refimpl", "--ops", "conv2d,relu", *FAST)
    assert code == 0, out
    conv, relu = rows(out, "conv2d", optional=True), rows(out, "relu", optional=True)
    assert set(conv) == {"forward", "backward", "finite_differences", "adjoint", "identities", "jvp", "double_backward"}
    assert set(relu) == {"forward", "backward", "finite_differences", "jvp", "double_backward"}
    for row in [*conv.values(), *relu.values()]:
        if "double_backward" in row:  # refimpl has no second order: not implemented, no case drawn
            assert " not implemented " in row and "no conv2d_double_backward" in conv["double_backward"]
        else:
            assert " pass " in row and "float64, float32" in row
    assert "max_pool2d" not in out  # --ops


def test_wrong_relu_backward_fails_with_a_counterexample(tmp_path, capsys):
    path = module(tmp_path, "bad_relu", """
        from refimpl.activations import relu

        def relu_backward(grad_output, x):
            return grad_output * (x >= 0).astype(x.dtype)  # relu'(0) = 1
    """)
    code, out, _ = verify(capsys, path, "--ops", "relu", "--dtype", "float64", *FAST)
    assert code == 1
    assert " FAIL " in rows(out, "relu")["backward"]
    assert " pass " in rows(out, "relu")["forward"]
    assert "FAIL: relu backward vs torch autograd (float64)" in out
    assert "grad_x" in out and "expected 0, got" in out  # where, expected vs got
    assert "rebuild: from oracle.case import Case; case = Case(op='relu'" in out


def test_missing_mask_is_shrunk(tmp_path, capsys):
    path = module(tmp_path, "no_mask", """
        from refimpl.activations import relu

        def relu_backward(grad_output, x):
            return grad_output.copy()  # no mask at all
    """)
    json_path = tmp_path / "out.json"
    code, out, _ = verify(capsys, path, "--ops", "relu", "--dtype", "float64", "--json", json_path, *FAST)
    assert code == 1
    failure = next(r for r in results(json_path) if r["check"] == "backward")
    assert failure["status"] == "FAIL" and failure["verdict"]["mismatch"]["array"] == "grad_x"


def test_missing_functions_are_not_implemented(tmp_path, capsys):
    path = module(tmp_path, "only_relu", """
        from refimpl.activations import relu, relu_backward, sigmoid
    """)
    code, out, _ = verify(capsys, path, *FAST)
    assert code == 0, out
    assert all(" pass " in row for row in rows(out, "relu").values())
    assert "no conv2d or conv2d_backward" in rows(out, "conv2d")["(all)"]
    assert "not implemented" in rows(out, "conv2d")["(all)"]
    sigmoid = rows(out, "sigmoid")
    assert " pass " in sigmoid["forward"]
    assert "not implemented" in sigmoid["backward"] and "no sigmoid_backward" in sigmoid["backward"]


def test_not_implemented_for_some_configurations(tmp_path, capsys):
    path = module(tmp_path, "no_groups", """
        from refimpl import conv2d as _conv2d, conv2d_backward as _conv2d_backward

        def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
            if groups > 1:
                raise NotImplementedError("groups > 1")
            return _conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)

        def conv2d_backward(grad_output, x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1):
            if groups > 1:
                raise NotImplementedError("groups > 1")
            return _conv2d_backward(grad_output, x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    """)
    json_path = tmp_path / "out.json"
    code, out, _ = verify(capsys, path, "--ops", "conv2d", "--dtype", "float64", "--json", json_path, *FAST)
    assert code == 0, out
    for r in results(json_path):
        assert r["status"] == "partial"  # not pass: part of the configuration space was not verified
        assert 0 < r["not_implemented"] < r["examples"]  # the explicit grouped examples are declined, the rest checked
        assert r["coverage"]["declined_features"] == ["groups"]
        assert "groups declined" in r["message"] and "groups > 1" in r["message"]
    assert " partial " in rows(out, "conv2d")["forward"] and "groups declined" in rows(out, "conv2d")["forward"]


def test_in_place_mutation_and_wrong_dtype(tmp_path, capsys):
    path = module(tmp_path, "sloppy", """
        import numpy as np
        from refimpl.activations import relu_backward, sigmoid_backward

        def relu(x):
            np.maximum(x, 0, out=x)  # in place
            return x

        def sigmoid(x):
            return 1 / (1 + np.exp(-x.astype(np.float64)))  # always float64
    """)
    code, out, _ = verify(capsys, path, "--ops", "relu,sigmoid", *FAST)
    assert code == 1
    assert " FAIL " in rows(out, "relu")["forward"] and "modified its argument #0 in place" in out
    sigmoid_forward = rows(out, "sigmoid")["forward"]
    assert " FAIL " in sigmoid_forward and "float32 (float64: pass)" in sigmoid_forward
    assert "wrong dtype: sigmoid: output has dtype float64, expected float32" in out


def test_hang_is_a_failure_and_the_run_goes_on(tmp_path, capsys):
    path = module(tmp_path, "sleepy", """
        import time
        from refimpl.activations import relu, relu_backward as _relu_backward, sigmoid, sigmoid_backward

        def relu_backward(grad_output, x):
            if x.size > 1:
                time.sleep(600)
            return _relu_backward(grad_output, x)
    """)
    code, out, _ = verify(capsys, path, "--ops", "relu,sigmoid", "--dtype", "float64", "--timeout", "1", *FAST)
    assert code == 1
    relu = rows(out, "relu")
    assert " FAIL " in relu["backward"] and "hang" in relu["backward"]
    assert "relu_backward did not return within 1 s" in out
    assert " pass " in relu["forward"]
    assert all(" pass " in row for row in rows(out, "sigmoid").values())


@pytest.mark.parametrize(
    ("how", "signal_name"),
    [("os.abort()", "SIGABRT"), ("ctypes.string_at(0)", "SIGSEGV")],
    ids=["abort", "segfault"],
)
def test_crash_is_a_failure_with_its_configuration(tmp_path, capsys, how, signal_name):
    path = module(tmp_path, "crashy", f"""
        import ctypes, os
        from refimpl.activations import relu as _relu, relu_backward, sigmoid, sigmoid_backward

        def relu(x):
            if x.ndim >= 2:
                {how}
            return _relu(x)
    """)
    json_path = tmp_path / "out.json"
    code, out, _ = verify(capsys, path, "--ops", "relu,sigmoid", "--dtype", "float64", "--json", json_path, *FAST)
    assert code == 1
    relu = rows(out, "relu")
    assert " FAIL " in relu["forward"] and f"crashed (signal {signal_name})" in relu["forward"]
    assert " pass " in relu["backward"]  # the backward never calls the forward: checked in a fresh process
    assert all(" pass " in row for row in rows(out, "sigmoid").values())
    crash = next(r for r in results(json_path) if r["check"] == "forward" and r["op"] == "relu")
    assert crash["verdict"]["case"].startswith("Case(op='relu'")  # the configuration that crashed
    assert "rebuild: from oracle.case import Case; case = Case(op='relu'" in crash["rendered"]
    assert "crashy.py" in crash["rendered"]  # where: faulthandler's frame in the module


def test_a_hang_says_where_it_was_stuck(tmp_path, capsys):
    path = module(tmp_path, "spins", """
        from refimpl.activations import relu

        def relu_backward(grad_output, x):
            while True:
                x = x + 0
    """)
    code, out, _ = verify(capsys, path, "--ops", "relu", "--dtype", "float64", "--timeout", "1", *FAST)
    assert code == 1
    assert "did not return within 1 s" in out
    assert re.search(r'where \(innermost call first\): File ".*spins.py", line \d+ in relu_backward', out), out


def test_a_child_stuck_without_a_call_limit_is_killed_by_its_budget(tmp_path, capsys):
    path = module(tmp_path, "stuck", """
        import signal, time
        from refimpl.activations import relu as _relu, relu_backward, sigmoid, sigmoid_backward

        def relu(x):
            if x.ndim >= 2 and x.dtype == "float32":  # the forward check only: finite differences call it in float64
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # out of reach of the per-call limit
                time.sleep(600)
            return _relu(x)
    """)
    code, out, _ = verify(capsys, path, "--ops", "relu,sigmoid", "--dtype", "float32", "--timeout", "0", "--budget", "15", *FAST)
    assert code == 1
    relu = rows(out, "relu")
    # no per-call limit (--timeout 0): only the unit's budget can end it, and it does; the other units have the same
    # budget, ample on a loaded machine
    assert " FAIL " in relu["forward"] and "killed after 15 s" in relu["forward"]
    assert " pass " in relu["backward"] and " pass " in relu["finite_differences"]
    assert all(" pass " in row for row in rows(out, "sigmoid").values())
    assert 'File "' in out and "stuck.py" in out  # where it was stuck (faulthandler on SIGUSR1 before the kill)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("no_such_module_for_bpcheck", "cannot import 'no_such_module_for_bpcheck'"),
        ("missing.py", "no such file"),
        ("empty.py", "implements none of the contract"),
    ],
)
def test_unloadable_module_exits_2_with_one_line(tmp_path, capsys, target, reason):
    module(tmp_path, "empty", "x = 1\n")
    if target.endswith(".py"):
        target = str(tmp_path / target)
    code, out, err = verify(capsys, target, *FAST)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and reason in err


def test_unknown_op_exits_2(capsys):
    code, out, err = verify(capsys, "refimpl", "--ops", "conv2d,conv4d")
    assert code == 2 and out == ""
    assert "unknown op 'conv4d'" in err and len(err.strip().splitlines()) == 1


def test_console_script_exit_code():
    result = subprocess.run([sys.executable, "-m", "oracle.cli", "verify", "no_such_module_for_bpcheck"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("bpcheck verify: cannot import")


def test_json_and_junit_hold_the_failures(tmp_path, capsys):
    path = module(tmp_path, "bad_relu", """
        from refimpl.activations import relu

        def relu_backward(grad_output, x):
            return grad_output * (x >= 0).astype(x.dtype)
    """)
    json_path, junit_path = tmp_path / "out.json", tmp_path / "out.xml"
    code, _, _ = verify(capsys, path, "--ops", "relu,linear", "--json", json_path, "--junit", junit_path, *FAST)
    assert code == 1

    document = json.loads(json_path.read_text())  # strict JSON: no NaN / Infinity literals
    assert document["module"] == str(path)
    assert document["provided"] == ["relu", "relu_backward"]
    assert document["settings"]["max_examples"] == 5 and document["settings"]["seed"] == 1
    assert document["summary"]["exit_code"] == 1 and document["summary"]["FAIL"] == len(document["failures"]) == 2
    assert {(f["op"], f["check"], f["dtype"]) for f in document["failures"]} == {
        ("relu", "backward", "float64"), ("relu", "backward", "float32")}
    for failure in document["failures"]:
        assert failure["verdict"]["mismatch"]["array"] == "grad_x"
        assert failure["verdict"]["case"].startswith("Case(op='relu'")
        assert failure["rendered"].startswith("relu backward vs torch autograd: FAIL")
    linear = [r for r in document["results"] if r["op"] == "linear"]
    assert linear and all(r["status"] == "not implemented" for r in linear)

    suite = ET.parse(junit_path).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == len(document["results"])
    failed = {(c.get("classname"), c.get("name")): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == {("relu", "backward[float64]"), ("relu", "backward[float32]")}
    assert all("grad_x" in f.text and "Case(op='relu'" in f.text for f in failed.values())
    assert suite.get("failures") == "2"
    assert any(c.find("skipped") is not None for c in cases if c.get("classname") == "linear")


def test_a_log_gets_a_line_per_finished_check_and_every_core_is_used_by_default(tmp_path):
    """With stderr redirected (a CI log), each finished op/check/dtype is a plain line, as it finishes."""
    from oracle.verify import available_cores

    done = subprocess.run([sys.executable, "-m", "oracle.cli", "verify", "refimpl", "--ops", "relu", "--dtype", "float64",
                           "--examples", "5"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("bpcheck verify: [")]
    assert len(lines) == 5, done.stderr
    assert sorted(line.split("] ", 1)[1].split(":")[0] for line in lines) == [
        "relu backward float64", "relu double_backward float64", "relu finite_differences float64", "relu forward float64",
        "relu jvp float64"]
    assert all((": pass (" in line or "double_backward" in line and ": not implemented (0 cases" in line)
               and " cases, " in line for line in lines)
    checks = [line.split("│")[2].strip() for line in done.stdout.splitlines() if line.startswith("│")]
    # the contract's order, though the finite differences were handed out first
    assert checks == ["forward", "backward", "finite_differences", "jvp", "double_backward"], done.stdout
    cores = available_cores()
    assert f", {cores} job{'s' if cores > 1 else ''}, " in done.stdout


def test_the_slow_checks_are_handed_out_first():
    """Longest first: a finite-differences unit is not left to run alone at the end (the table keeps the contract's
    order: the test above)."""
    from oracle.verify import dispatch_order

    units = [(op, check, dtype) for op in ("relu", "linear") for check in ("forward", "backward", "finite_differences")
             for dtype in ("float64", "float32")]
    ordered = dispatch_order(units)
    assert sorted(ordered) == sorted(units)
    assert ordered[:4] == [u for u in units if u[1] == "finite_differences"]
    assert ordered[4:] == [u for u in units if u[1] != "finite_differences"]
    assert dispatch_order([("relu", "forward", "float64"), ("relu", "jvp", "float64")])[0][1] == "jvp"
