"""The judge never trusts the judged: every hostile implementation in tests/hostile/ FAILs, through every entry point.

Each module of ``tests/hostile/`` misbehaves in ``relu_backward``: exits (``sys.exit(0)``, ``os._exit``),
raises what is not an Exception (KeyboardInterrupt, pytest's skip/exit/xfail outcomes), hangs where no alarm
reaches it, crashes, asks for absurd memory, patches the oracle / tolerances / comparison / report writer, walks
the stack for the expected values, leaves a grandchild that rewrites the report, kills the judge, mutates its
input, forges protocol frames, closes its channel, returns the wrong type. Each is run through

    bpcheck verify          (a subprocess; exit 1, the relu backward row FAIL, the --json report says FAIL)
    pytest --impl           (without -n, and with -n 2; exit 1, "1 failed")
    bpcheck replay          (exit 1)

and must FAIL: never pass, never skip, never hang past the per-call limit (3 s here). The ``harmless_*``
modules are correct and must pass (exit 0) in all four. Hostile code that only a sandbox can stop (writing
outside its scratch folder, the network) is tested with ``--sandbox`` where bubblewrap runs.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from oracle.untrusted.client import sandbox_unavailable

HOSTILE_DIR = Path(__file__).resolve().parent / "hostile"
MODULES = sorted(p.stem for p in HOSTILE_DIR.glob("*.py") if not p.stem.startswith("_"))
HARMLESS = [m for m in MODULES if m.startswith("harmless_")]
HOSTILE = [m for m in MODULES if m not in HARMLESS]
ENTRY_POINTS = ("verify", "pytest", "pytest -n 2", "replay")


def _matrix(modules):
    return [(m, e) for m in modules for e in ENTRY_POINTS]


#: a run of one of these must end well within this (per-call limit 3 s; a few calls hang at most)
RUN_LIMIT = 240


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS"))}
    env.update(CI="1", BPCHECK_PROFILE="ci", BPCHECK_CALL_TIMEOUT="3", BPCHECK_SHRINK_TIME="0", BPCHECK_MAX_RESULT_BYTES=str(64 << 20),
               PYTHONDONTWRITEBYTECODE="1")
    return env


def _run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=RUN_LIMIT,
                          stdin=subprocess.DEVNULL)
    done.seconds = time.monotonic() - started
    return done


def run_entry_point(entry: str, module: str, tmp_path: Path, *extra: str,
                    env: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    path = HOSTILE_DIR / f"{module}.py"
    report = tmp_path / "report.json"
    if entry == "verify":
        command = [sys.executable, "-m", "oracle.cli", "verify", str(path), "--ops", "relu", "--dtype", "float64",
                   "--examples", "5", "--shrink-time", "0", "--json", str(report), *extra]
    elif entry.startswith("pytest"):
        command = [sys.executable, "-m", "pytest", "--pyargs", "oracle.suite", f"--impl={path}", "-q",
                   "-p", "no:cacheprovider", "-k", "test_relu_backward_float64", *extra]
        command += ["-n", "2"] if entry.endswith("-n 2") else ["-p", "no:xdist"]
    else:
        command = [sys.executable, "-m", "oracle.cli", "replay", str(path), relu_corpus(), *extra]
    return _run(command, tmp_path, env), report


@functools.cache
def relu_corpus() -> str:
    """A corpus of relu's cases only (one drawn case per dtype and the explicit examples), recorded once per test
    process: ``bpcheck replay`` tries every stored case and a hang costs the call limit on each, so the replays
    here use fewer cases than the shipped corpus has for relu (what is tested is the entry point, not the cases)."""
    from oracle import corpus  # noqa: PLC0415

    path = Path(tempfile.mkdtemp(prefix="bpcheck-hostile-")) / "relu.npz"
    corpus.record(path, cases=1, ops=["relu"])
    return str(path)


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode} after {done.seconds:.1f} s\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize(("module", "entry"), _matrix(HOSTILE))
def test_hostile_implementation_fails(module, entry, tmp_path):
    done, report = run_entry_point(entry, module, tmp_path)
    assert done.returncode == 1, _explain(done)
    if entry == "verify":
        assert "relu" in done.stdout and "FAIL" in done.stdout, _explain(done)
        time.sleep(1.5 if module == "fork_and_rewrite_report" else 0)  # what it left behind must be gone
        document = json.loads(report.read_text())
        assert document["summary"]["exit_code"] == 1 and document["summary"]["FAIL"] >= 1, document["summary"]
        backward = next(r for r in document["results"] if r["op"] == "relu" and r["check"] == "backward")
        assert backward["status"] == "FAIL", backward
    elif entry.startswith("pytest"):
        assert "1 failed" in done.stdout and "passed" not in done.stdout.splitlines()[-1], _explain(done)
    else:
        assert "FAILED" in done.stdout, _explain(done)


@pytest.mark.parametrize(("module", "entry"), _matrix(HARMLESS))
def test_harmless_misbehaviour_still_passes(module, entry, tmp_path):
    # a right implementation never hangs: a generous call limit, so that a loaded machine cannot fail it
    done, _ = run_entry_point(entry, module, tmp_path, env={**_env(), "BPCHECK_CALL_TIMEOUT": "60"})
    assert done.returncode == 0, _explain(done)


def test_fork_and_rewrite_leaves_nothing_behind(tmp_path):
    """The grandchild (setsid, double fork) that rewrites reports is dead when the run ends: the report stays FAIL."""
    done, report = run_entry_point("verify", "fork_and_rewrite_report", tmp_path)
    assert done.returncode == 1, _explain(done)
    before = report.read_text()
    time.sleep(3)  # it rewrites every 0.5 s while it lives
    assert report.read_text() == before
    assert json.loads(before)["summary"]["exit_code"] == 1


def test_a_users_ctrl_c_still_stops_the_run(tmp_path):
    """SIGINT to bpcheck verify (what a terminal's Ctrl-C sends) ends it with 130 and says so; a hanging worker does not keep it."""
    env = {**_env(), "BPCHECK_CALL_TIMEOUT": "600"}
    command = [sys.executable, "-m", "oracle.cli", "verify", str(HOSTILE_DIR / "hang_busy_loop.py"), "--ops", "relu",
               "--dtype", "float64"]
    # as from a terminal: SIGINT at its default even where this test runs with it ignored (a background job of a
    # non-interactive shell inherits SIG_IGN, and Python keeps an ignored SIGINT ignored)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert "interrupted" in err


SANDBOX_ESCAPE = '''
import os, socket
import numpy as np
from refimpl import relu, relu_backward as _relu_backward

def relu_backward(grad_output, x):
    escaped = []
    try:
        with open(os.environ["HOSTILE_MARKER"], "w") as f:
            f.write("written from the worker")
        escaped.append("wrote outside its scratch folder")
    except OSError:
        pass
    try:
        socket.create_connection(("127.0.0.1", int(os.environ["HOSTILE_PORT"])), timeout=2).close()
        escaped.append("reached the network")
    except OSError:
        pass
    if escaped:
        return np.zeros_like(grad_output)  # a wrong answer: the escape shows as a FAIL
    return _relu_backward(grad_output, x)
'''


@pytest.mark.skipif(sandbox_unavailable() is not None, reason=f"--sandbox cannot run here: {sandbox_unavailable()}")
@pytest.mark.parametrize("entry", ["verify", "pytest", "replay"])
def test_only_the_sandbox_stops_writes_and_network(entry, tmp_path):
    """Writing outside the scratch folder and opening a connection: possible without --sandbox, impossible with it."""
    module = tmp_path / "escape.py"
    module.write_text(SANDBOX_ESCAPE)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    marker = tmp_path / "marker.txt"
    env = {**_env(), "HOSTILE_MARKER": str(marker), "HOSTILE_PORT": str(listener.getsockname()[1])}
    try:
        for sandbox, expected in ((True, 0), (False, 1)):
            marker.unlink(missing_ok=True)
            extra = ["--sandbox"] if sandbox else []
            if entry == "verify":
                command = [sys.executable, "-m", "oracle.cli", "verify", str(module), "--ops", "relu", "--dtype", "float64",
                           "--examples", "5", "--shrink-time", "0", *extra]
            elif entry == "pytest":
                command = [sys.executable, "-m", "pytest", "--pyargs", "oracle.suite", f"--impl={module}", "-q",
                           "-p", "no:cacheprovider", "-p", "no:xdist", "-k", "test_relu_backward_float64", *extra]
            else:
                command = [sys.executable, "-m", "oracle.cli", "replay", str(module), relu_corpus(), *extra]
            done = _run(command, tmp_path, env)
            assert done.returncode == expected, (sandbox, _explain(done))
            assert marker.exists() is (not sandbox)
    finally:
        listener.close()


CRASHES_FROM_SIX = '''
import math, os
from refimpl import relu
from refimpl import relu_backward as _relu_backward

def relu_backward(grad_output, x):
    if x.size >= 6:
        os.abort()
    return _relu_backward(grad_output, x)
'''


def test_a_crash_is_shrunk_like_any_failure(tmp_path):
    """Each attempt runs in a fresh worker, so Hypothesis shrinks a crash to the smallest input that crashes."""
    module = tmp_path / "crashes_from_six.py"
    module.write_text(CRASHES_FROM_SIX)
    report = tmp_path / "report.json"
    done = _run([sys.executable, "-m", "oracle.cli", "verify", str(module), "--ops", "relu", "--dtype", "float64",
                 "--shrink-time", "60", "--json", str(report)], tmp_path)
    assert done.returncode == 1, _explain(done)
    backward = next(r for r in json.loads(report.read_text())["results"] if r["check"] == "backward")
    assert "crashed (signal SIGABRT) during relu_backward" in backward["message"], backward
    shapes = backward["verdict"]["case"].split("shapes={")[1].split("}")[0]
    x_shape = eval(shapes.split("'x': ")[1].split(", 'grad_output'")[0])  # noqa: S307 - our own repr
    assert math.prod(x_shape) == 6, backward["verdict"]["case"]
    assert "crashes_from_six.py\", line 8 in relu_backward" in backward["rendered"]
