"""`bpcheck fuzz` and the shared example database, for real: a redis-server, a Dask LocalCluster of two workers.

A campaign against a zoo mutant finds it and saves the failure in a directory and in Redis at once; other
processes (`bpcheck verify` and pytest, the ``replay`` profile: nothing new drawn) replay it from each
backend and shrink to the same smallest case, a read-only view without writing. The rest is cheap: the
database spec, the stable keys, the derandomized ``ci`` draws kept with a database, the scheduling policy.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    InMemoryExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

from oracle import database
from oracle.fuzz import Property, parse_duration, pick
from oracle.report import Result
from oracle.verdict import FAIL, PASS

MUTANT = "oracle.zoo.relu_grad_at_zero_one"  # relu'(0) = 1: found only on cases with an exact zero in x
HOSTILE = Path(__file__).resolve().parent / "hostile"


def _cli(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oracle.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def _smallest(text: str) -> str:
    """The ``Case(...)`` of the first ``rebuild:`` line of a report."""
    found = re.search(r"case = (Case\(.*?\)); arrays", text)
    assert found, text
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server on a free localhost port, no persistence, ended with the module."""
    pytest.importorskip("redis", reason="the redis client is not installed (pip install 'bpcheck[fuzz]')")
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; .ci/run does)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                               "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if server.poll() is not None:
                pytest.skip(f"redis-server could not start (exit code {server.returncode})")
            time.sleep(0.1)
    else:
        server.kill()
        pytest.skip("redis-server did not answer within 10 s")
    yield url
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def cluster():
    """A real Dask LocalCluster of two worker processes; its scheduler's address."""
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'bpcheck[fuzz]')")
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.daemon": False}):
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40)
    yield local
    local.close()


def _redis_contents(url: str) -> dict:
    import redis

    client = redis.Redis.from_url(url)
    return {key: frozenset(client.smembers(key)) for key in client.scan_iter() if client.type(key) == b"set"}


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_campaign_on_two_workers_finds_a_mutant_and_every_process_replays_it_from_the_database(
        cluster, redis_url, tmp_path):
    """Found on a two-worker cluster, saved to a directory and to Redis; replayed first (nothing new drawn) by
    `bpcheck verify` and by pytest from each, to the same smallest case; read-only views write nothing."""
    from distributed import Client

    with Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
    folder = tmp_path / "db"
    found = _cli("fuzz", MUTANT, "--ops", "relu", "--checks", "backward", "--dtype", "float64",
                 "--scheduler", cluster.scheduler_address, "--database", f"{folder},{redis_url}",
                 "--time-budget", "5m", "--round-seconds", "5", "--shrink-time", "20", "--seed", "1", cwd=tmp_path)
    assert found.returncode == 1, found.stdout + found.stderr
    assert re.search(r"relu backward float64 +\d+ +\d+ +\d+ +FAIL \(found after", found.stdout), found.stdout
    assert "2 rounds at a time" in found.stdout
    smallest = _smallest(found.stdout)
    assert "values={'x': 'zeros'}" in smallest  # the mutant's trigger, shrunk
    assert _files(folder) and _redis_contents(redis_url)

    def replayed(out: subprocess.CompletedProcess) -> None:
        assert out.returncode == 1, out.stdout + out.stderr
        assert _smallest(out.stdout) == smallest

    verify = ("verify", MUTANT, "--ops", "relu", "--dtype", "float64", "--profile", "replay", "-j", "1")
    pytest_ = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--pyargs", "oracle.suite",
               "--impl", MUTANT, "--hypothesis-profile", "replay", "-k", "test_relu_backward_float64", "-q"]
    before_files, before_redis = _files(folder), _redis_contents(redis_url)
    replayed(_cli(*verify, "--database", f"ro:{folder}", cwd=tmp_path))
    replayed(subprocess.run([*pytest_, "--database", f"ro:{redis_url}"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=600))
    assert _files(folder) == before_files and _redis_contents(redis_url) == before_redis  # read only: untouched

    clean = _cli("fuzz", "refimpl", "--ops", "relu", "--dtype", "float64", "--scheduler", cluster.scheduler_address,
                 "--time-budget", "4s", "--round-seconds", "1", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "no failure" in clean.stdout and re.search(r"relu backward float64 +[1-9]\d* +[1-9]", clean.stdout)


def test_a_crash_is_a_failure_found_and_the_campaign_goes_on(cluster, tmp_path):
    """The segfaulting backward FAILs with where it crashed; the forward still gets all its rounds after it."""
    out = _cli("fuzz", str(HOSTILE / "crash_segfault.py"), "--ops", "relu", "--checks", "forward,backward",
               "--dtype", "float64", "--scheduler", cluster.scheduler_address, "--max-rounds", "3",
               "--round-examples", "20", "--time-budget", "10m", "--shrink-time", "2", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"relu backward float64 +\d+ +\d+ +\d+ +FAIL", out.stdout), out.stdout
    assert "SIGSEGV" in out.stdout and "crash_segfault.py\", line 8 in relu_backward" in out.stdout, out.stdout
    assert re.search(r"relu forward float64 +3 +60 +\d+ +pass", out.stdout), out.stdout


# --------------------------------------------------------------------------- cheap


def test_a_database_spec_names_one_database_or_a_combination(tmp_path):
    assert database.open_database(None) is None and database.open_database("none") is None
    assert isinstance(database.open_database(str(tmp_path)), DirectoryBasedExampleDatabase)
    assert isinstance(database.open_database(f"ro:{tmp_path}"), ReadOnlyDatabase)
    both = database.open_database(f"ro:{tmp_path / 'a'},{tmp_path / 'b'}")
    assert isinstance(both, MultiplexedDatabase)
    for bad, says in [("ftp://host/x", "only redis://"), ("ro:", "ro: must be followed"), (f"{tmp_path},", "empty part"),
                      (f"none,{tmp_path}", "cannot be combined")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            database.open_database(bad)
    with pytest.raises(TypeError, match="database spec"):
        database.open_database(3)


def test_the_spec_in_force_is_the_option_else_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(database.ENV, str(tmp_path))
    assert database.resolve(None) == str(tmp_path)
    assert database.resolve("none") is None  # the option wins, and none turns it off
    monkeypatch.delenv(database.ENV)
    assert database.resolve(None) is None


def test_an_unreachable_redis_is_a_clear_error():
    pytest.importorskip("redis")
    with pytest.raises(ValueError, match="cannot reach the Redis server"):
        database.check_reachable(f"ro:redis://127.0.0.1:{_free_port()}/0")


def test_the_key_names_the_property_only():
    from oracle.suite import build_property

    prop = build_property("relu", "backward", "float64")
    assert prop._hypothesis_internal_database_key == database.database_key("relu", "backward", "float64")
    assert database.database_key("relu", "backward", "float64") == b"bpcheck-1:relu/backward/float64"
    with pytest.raises(ValueError, match="op"):
        database.database_key("a/b", "backward", "float64")


def test_the_ci_profile_stays_derandomized_without_a_database_and_draws_the_same_cases_with_one():
    """`--profile ci --database ...` replays the database first, then draws exactly what ci draws."""
    from oracle.suite import Tally, build_property
    from oracle.verdict import Verdict

    ci = settings(settings.get_profile("ci"), max_examples=15)
    assert settings.get_profile("ci").derandomize and settings.get_profile("ci").database is None

    def draws(db) -> list:
        seen = []

        def passing(impl, spec, case):
            seen.append(case)
            return Verdict(spec.name, "backward", PASS, case)

        prop = build_property("relu", "backward", "float64", examples=(), run_check=passing)
        database.apply(prop, ci, db)(None, Tally())
        return seen

    plain = draws(None)
    assert plain and draws(InMemoryExampleDatabase()) == plain


def test_the_replay_profile_draws_nothing_new():
    """What `--profile replay` finds comes from the database: with an empty one, no case at all is run."""
    import unittest

    from oracle.suite import Tally, build_property
    from oracle.verdict import Verdict

    seen = []

    def passing(impl, spec, case):
        seen.append(case)
        return Verdict(spec.name, "backward", PASS, case)

    prop = build_property("relu", "backward", "float64", examples=(), run_check=passing)
    with pytest.raises(unittest.SkipTest):
        database.apply(prop, settings.get_profile("replay"), InMemoryExampleDatabase())(None, Tally())
    assert seen == []
    again = build_property("relu", "backward", "float64", examples=(), run_check=passing)
    database.apply(again, settings.get_profile("dev"), InMemoryExampleDatabase())(None, Tally())
    assert seen  # the same property under dev draws cases


def test_the_scheduler_runs_the_property_still_finding_new_behaviour_first():
    fresh, stale, failed = Property("relu", "backward", "float64"), Property("relu", "forward", "float64"), \
        Property("tanh", "backward", "float64")
    fresh.absorb(Result("relu", "backward", "float64", PASS, examples=5), ["a", "b"], 1.0)
    for _ in range(2):
        stale.absorb(Result("relu", "forward", "float64", PASS, examples=5), ["a"], 1.0)
    failed.absorb(Result("tanh", "backward", "float64", FAIL, examples=5), ["a"], 2.0)
    assert (fresh.stale, stale.stale) == (0, 1) and failed.retired and failed.found_after == 2.0
    assert pick([stale, failed, fresh]) is fresh
    assert pick([stale, failed, fresh], max_rounds=1) is None  # fresh has had its round, stale two
    fresh.in_flight = 1
    assert pick([stale, failed, fresh]) is stale
    stale.in_flight = 2
    assert pick([stale, failed, fresh]) is fresh  # every one running: a second round of the least busy
    assert pick([failed]) is None


def test_the_default_round_shares_the_budget_between_the_properties():
    from oracle.fuzz import default_round_seconds

    assert default_round_seconds(60, 2, 188) == 1.0  # at least a second
    assert default_round_seconds(1200, 2, 188) == 1200 * 2 / 188  # 12.8 s
    assert default_round_seconds(8 * 3600, 2, 188) == 30.0  # at most 30 s: then more rounds


def test_a_duration_is_seconds_minutes_or_hours():
    assert [parse_duration(t) for t in ("60", "60s", "10m", "1h30m", "0.5s")] == [60, 60, 600, 5400, 0.5]
    for bad in ("", "soon", "10x", "0s"):
        with pytest.raises(ValueError, match="--time-budget"):
            parse_duration(bad)
