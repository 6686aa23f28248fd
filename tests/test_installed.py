"""bpcheck installed as a user installs it (issue 10, section 1): a wheel, no extras, a fresh venv.

The wheel is built from a copy of this checkout, installed with
``pip install -c constraints.txt <wheel>`` into a virtual environment that
sees no site-packages but its own (torch comes from the constraints file's
local build, every other dependency from the package index), and then the two
documented entry points run from a folder outside the repository:

    bpcheck verify refimpl --ops relu --examples 5
    python -m pytest --pyargs oracle.suite --impl=refimpl -k relu

This is the slow test of the suite (the install unpacks torch: about a
minute); it is part of the default run because nothing else catches a
runtime dependency that only the ``test`` extra provides, or a module or
data file the wheel leaves out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "constraints.txt", "refimpl", "oracle"]
INSTALL_TIMEOUT = 600  # seconds; about 60 on the development machine


def _run(args, *, cwd, env, timeout=INSTALL_TIMEOUT) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result


def _explain(result: subprocess.CompletedProcess) -> str:
    return f"$ {' '.join(map(str, result.args))}\nexit {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"


def _clean_env() -> dict[str, str]:
    """The environment of a user's shell: nothing of this test run (no PYTHONPATH, no pytest/xdist variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV", "HYPOTHESIS"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(venv python, venv bin, wheel path, source copy)`` after building the wheel and installing it."""
    tmp = tmp_path_factory.mktemp("installed")
    source = tmp / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for name in SOURCES:
        src = ROOT / name
        (shutil.copytree(src, source / name, ignore=ignore) if src.is_dir() else shutil.copy2(src, source / name))
    env = _clean_env()

    dist = tmp / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source], cwd=tmp, env=env)
    assert built.returncode == 0, _explain(built)
    (wheel,) = dist.glob("bpcheck-*.whl")

    venv = tmp / "venv"
    created = _run([sys.executable, "-m", "venv", venv], cwd=tmp, env=env)
    assert created.returncode == 0, _explain(created)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    install = _run([python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", wheel], cwd=tmp, env=env)
    assert install.returncode == 0, _explain(install)
    return python, bin_dir, wheel, source


def _user_env(bin_dir: Path) -> dict[str, str]:
    env = _clean_env()
    env["PATH"] = os.pathsep.join([str(bin_dir), env["PATH"]])
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env


def _check_wheel_contents(wheel: Path, source: Path) -> None:
    """Every file of refimpl/ and oracle/ in the checkout is in the wheel: subpackages (with or without
    ``__init__.py``) and package data included."""
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        path.relative_to(source).as_posix()
        for package in ("refimpl", "oracle")
        for path in (source / package).rglob("*")
        if path.is_file()
    }
    assert "oracle/data/corpus.npz" in wanted
    assert not wanted - shipped, f"left out of the wheel: {sorted(wanted - shipped)}"


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_from_another_folder(installed, tmp_path):
    """One test (one build and install, whichever xdist worker runs it): the wheel's contents, then
    both entry points, from a folder that is not the checkout."""
    python, bin_dir, wheel, source = installed
    _check_wheel_contents(wheel, source)
    env = _user_env(bin_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = _run([python, "-c", "import oracle, refimpl; print(oracle.__file__); print(refimpl.__file__)"], cwd=elsewhere, env=env)
    assert where.returncode == 0, _explain(where)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(bin_dir.parent), f"imported from outside the fresh venv: {line}"

    verify = _run([bin_dir / "bpcheck", "verify", "refimpl", "--ops", "relu", "--examples", "5"], cwd=elsewhere, env=env)
    assert verify.returncode == 0, _explain(verify)
    assert "pass" in verify.stdout, _explain(verify)

    suite = _run(
        [python, "-m", "pytest", "--pyargs", "oracle.suite", "--impl=refimpl", "-k", "relu", "-q", "-p", "no:cacheprovider"],
        cwd=elsewhere,
        env=env,
    )
    assert suite.returncode == 0, _explain(suite)
    assert " passed" in suite.stdout, _explain(suite)
