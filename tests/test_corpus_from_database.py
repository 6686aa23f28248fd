"""`bpcheck record --from-database`: the failures an example database holds become a corpus replayed without torch."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from oracle import corpus
from oracle.cli import main
from oracle.corpus_from_database import public_spec, recover
from oracle.verdict import FAIL, PASS, Verdict
from test_fuzz import redis_url  # noqa: F401 - the real redis-server fixture

MUTANT = "oracle.zoo.relu_grad_at_zero_one"  # relu'(0) = 1: found only on cases with an exact zero in x


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def found_db(tmp_path_factory) -> Path:
    """A directory database filled by a short `bpcheck verify` of the mutant (its relu backward FAILs)."""
    folder = tmp_path_factory.mktemp("found") / "db"
    code = main(["verify", MUTANT, "--ops", "relu", "--dtype", "float64", "--profile", "ci", "--database", str(folder),
                 "-j", "1", "--shrink-time", "5"])
    assert code == 1 and _files(folder)
    return folder


def test_a_failure_found_by_verify_becomes_a_regression_case_replayed_without_the_database(found_db, tmp_path, capsys):
    before = _files(found_db)
    out = tmp_path / "found.npz"
    assert main(["record", "--from-database", str(found_db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "relu/backward/float64: " in printed and f"wrote {out}: " in printed
    assert _files(found_db) == before  # exporting replays every entry as passing: it must not delete them

    stored = corpus.load(out)
    assert stored.cases and {c.source for c in stored.cases} == {"database"}
    assert all(r["found_by"] == ["relu/backward/float64"] for r in stored.meta["cases"])
    assert len({repr(c.case) for c in stored.cases}) == len(stored.cases)
    assert any(c.case.values == {"x": "zeros"} for c in stored.cases)  # the mutant's trigger, as shrunk by verify

    assert main(["replay", MUTANT, str(out)]) == 1
    printed = capsys.readouterr().out
    assert "relu backward vs torch autograd: FAIL" in printed and "(database) of" in printed
    assert main(["replay", "refimpl", str(out)]) == 0
    assert f"{2 * len(stored.cases)} pass, 0 FAIL" in capsys.readouterr().out


def test_an_empty_database_exports_nothing_and_says_so(found_db, tmp_path, capsys):
    out = tmp_path / "none.npz"
    (tmp_path / "empty").mkdir()
    assert main(["record", "--from-database", str(tmp_path / "empty"), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "holds no entry" in captured.out and "nothing exported" in captured.err and not out.exists()

    assert main(["record", "--from-database", f"ro:{found_db}", "--ops", "conv2d", "--out", str(out)]) == 2
    assert "the ops conv2d" in capsys.readouterr().err and not out.exists()

    for args, says in [(["--from-database", str(tmp_path / "never")], "no such directory"),
                       (["--from-database", "none"], "no database to export from"),
                       (["--from-database", str(found_db), "--seed", "3"], "--seed: nothing is drawn")]:
        assert main(["record", *args, "--out", str(out)]) == 2
        assert says in capsys.readouterr().err and not out.exists()


def _fails_on_zeros(impl, spec, case):
    return Verdict(spec.name, "x", FAIL if case.values.get("x") == "zeros" else PASS, case)


def _find(db, check: str) -> None:
    """Save relu's float64 ``check`` property's shrunk failure (a rule failing on zeros) to ``db``, in-process."""
    from oracle.database import apply
    from oracle.suite import Tally, build_property

    prop = build_property("relu", check, "float64", examples=(), run_check=_fails_on_zeros)
    ran = apply(prop, settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck)), db)
    with pytest.raises(AssertionError):
        ran(None, Tally())


def test_one_case_found_by_several_properties_is_recorded_once_with_a_note_for_the_checks_not_replayed(tmp_path,
                                                                                                       capsys):
    """The same rule FAILs relu's backward and jvp properties on zeros: both keys store the same shrunk case."""
    folder = tmp_path / "db"
    for check in ("backward", "jvp"):
        _find(DirectoryBasedExampleDatabase(str(folder)), check)

    found = recover(str(folder), ["relu"])
    assert set(found.entries) == {"relu/backward/float64", "relu/jvp/float64"}
    both = [case for case, by in found.cases.values() if by == ["relu/backward/float64", "relu/jvp/float64"]]
    assert both and all(case.values.get("x") == "zeros" for case, _ in found.cases.values())

    out = tmp_path / "both.npz"
    assert main(["record", "--from-database", str(folder), "--ops", "relu", "--out", str(out)]) == 0
    assert "cases found by jvp are kept, but a corpus replays only forward and backward" in capsys.readouterr().out
    assert len(corpus.load(out).cases) == len(found.cases)


def test_a_redis_database_exports_read_only(redis_url, tmp_path, capsys):  # noqa: F811 - the fixture imported above
    """A real redis-server: the failure saved there is exported through a read-only view, Redis left as it was."""
    import redis

    from oracle.database import open_database

    _find(open_database(redis_url), "backward")
    client = redis.Redis.from_url(redis_url)
    before = {key: client.smembers(key) for key in client.scan_iter() if client.type(key) == b"set"}
    out = tmp_path / "redis.npz"
    assert main(["record", "--from-database", f"ro:{redis_url}", "--ops", "relu", "--out", str(out)]) == 0
    assert "relu/backward/float64: " in capsys.readouterr().out
    assert any(c.case.values == {"x": "zeros"} for c in corpus.load(out).cases)
    assert {key: client.smembers(key) for key in client.scan_iter() if client.type(key) == b"set"} == before


def test_the_header_names_the_database_without_its_password():
    assert public_spec("ro:redis://:s3cret@host:6379/0,redis://u:p@h2/1,.db") == "ro:redis://***@host:6379/0,redis://***@h2/1,.db"
    assert public_spec("redis://host:6379/0") == "redis://host:6379/0"
