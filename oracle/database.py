"""The one Hypothesis example database of `bpcheck verify`, the pytest plugin and `bpcheck fuzz`.

Chosen by one setting (``--database`` of either command line, else ``$BPCHECK_DATABASE``, else the
profile's: none for ``ci``, which stays derandomized and database-free):

    none                    no database
    PATH                    a directory (DirectoryBasedExampleDatabase), e.g. .bpcheck/examples
    redis://HOST:PORT/DB    a Redis server shared by many machines (hypothesis.extra.redis.RedisExampleDatabase;
                            needs the redis client: pip install 'bpcheck[fuzz]')
    ro:SPEC                 SPEC read only (ReadOnlyDatabase): replays what it holds, writes nothing (CI)
    SPEC,SPEC,...           all of them (MultiplexedDatabase): reads from each, writes to each writable one

e.g. ``ro:redis://nightly:6379/0,.hypothesis/local``: replay the nightly campaign's failures, keep this
machine's own. A database entry is keyed by the property (op, check, dtype), never by the implementation
under test, so a failure found on one version of an implementation is tried first on the next
(``database_key``). The entries are Hypothesis choice sequences, whose format some Hypothesis releases
change: the version is pinned (constraints.txt) and the database is a cache (an entry that no longer
decodes or no longer fails is dropped).

Only the spec string crosses processes (each child opens its own connection with ``open_database``).
"""

from __future__ import annotations

import os
from typing import Iterable

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)

ENV = "BPCHECK_DATABASE"
NONE = "none"
KEY_VERSION = b"bpcheck-1"
"""Part of every key: bumped when the strategies change so much that old entries would decode to other cases."""


def database_key(op: str, check: str, dtype: str) -> bytes:
    """The database key of the property (op, check, dtype): ``bpcheck-1:conv2d/backward/float32``.

    Hypothesis would key by a digest of the test function's source; this key names only the property, so
    it is the same for every implementation, in every process and on every machine.
    """
    for name, value in (("op", op), ("check", check), ("dtype", dtype)):
        if not isinstance(value, str) or not value or "/" in value:
            raise ValueError(f"{name} must be a non-empty name without '/', got {value!r}")
    return KEY_VERSION + b":" + f"{op}/{check}/{dtype}".encode()


def resolve(option: str | None) -> str | None:
    """The spec in force: ``option`` if given, else ``$BPCHECK_DATABASE``; None for no database (also ``none``)."""
    spec = option if option is not None else os.environ.get(ENV)
    if spec is None or spec.strip().lower() in ("", NONE):
        return None
    return spec.strip()


def open_database(spec: str | None) -> ExampleDatabase | None:
    """The database a spec (module docstring) names; None for none. ValueError naming a malformed part."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise TypeError(f"database spec must be a string, got {type(spec).__name__}")
    if spec.strip().lower() in ("", NONE):
        return None
    parts = [part.strip() for part in spec.split(",")]
    if any(not part for part in parts):
        raise ValueError(f"database spec {spec!r} has an empty part (between commas)")
    dbs = [_one(part) for part in parts]
    return dbs[0] if len(dbs) == 1 else MultiplexedDatabase(*dbs)


def _one(part: str) -> ExampleDatabase:
    if part.startswith("ro:"):
        inner = part[3:].strip()
        if not inner or inner.startswith("ro:"):
            raise ValueError(f"database spec {part!r}: ro: must be followed by one directory or redis:// URL")
        return ReadOnlyDatabase(_one(inner))
    if part.lower() == NONE:
        raise ValueError("database spec: 'none' cannot be combined with other databases")
    if "://" in part:
        if not part.startswith("redis://"):
            raise ValueError(f"database spec {part!r}: only redis:// URLs are supported (or a directory path)")
        return _redis(part)
    return DirectoryBasedExampleDatabase(os.path.expanduser(part))


def _redis(url: str) -> ExampleDatabase:
    try:
        from redis import Redis  # noqa: PLC0415 - optional: bpcheck[fuzz]

        from hypothesis.extra.redis import RedisExampleDatabase  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(f"database {url}: the redis client is not installed (pip install 'bpcheck[fuzz]')") from exc
    try:
        client = Redis.from_url(url)
    except ValueError as exc:
        raise ValueError(f"database {url}: {exc}") from None
    return RedisExampleDatabase(client)


def check_reachable(spec: str | None) -> None:
    """Open the spec's databases and reach each Redis server once: ValueError saying which cannot be reached."""
    for part in _redis_parts(spec):
        db = _redis(part)
        try:
            db.redis.ping()
        except Exception as exc:  # noqa: BLE001 - redis raises its own ConnectionError family
            raise ValueError(f"database {part}: cannot reach the Redis server ({type(exc).__name__}: {exc})") from None
    open_database(spec)


def _redis_parts(spec: str | None) -> Iterable[str]:
    if not spec:
        return []
    parts = [part.strip().removeprefix("ro:").strip() for part in spec.split(",")]
    return [part for part in parts if part.startswith("redis://")]


class WriteOnly(ExampleDatabase):
    """``db`` for a search that must not replay (nor therefore delete) what it holds: fetches nothing, saves.

    The later rounds of ``oracle.suite.search_defects`` mask the defects already found (their cases pass);
    replaying the stored cases of those would delete them as no longer failing. New failures are still saved.
    """

    def __init__(self, db: ExampleDatabase) -> None:
        super().__init__()
        self._db = db

    def __repr__(self) -> str:
        return f"WriteOnly({self._db!r})"

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return iter(())

    def save(self, key: bytes, value: bytes) -> None:
        self._db.save(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        self._db.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self._db.move(src, dest, value)


def apply(prop, base_settings, db: ExampleDatabase | None, seed: int | None = None):
    """``prop`` under ``base_settings`` with ``db``, seeded with ``seed`` if given; a derandomized profile keeps
    drawing the same cases.

    Hypothesis forbids a database with ``derandomize=True``, and its ``@seed`` drops the database. Its
    derandomized draws come from a Random seeded with the digest of the test function; seeding the
    property with that very number (Hypothesis's own seed attribute, set here without dropping the
    database) draws the same cases and lets the database be replayed first (``--profile ci --database ro:...``).
    """
    from hypothesis import settings  # noqa: PLC0415
    from hypothesis.internal.compat import int_from_bytes  # noqa: PLC0415 - the number derandomize uses
    from hypothesis.internal.reflection import function_digest  # noqa: PLC0415

    if seed is None and db is not None and base_settings.derandomize:
        seed = int_from_bytes(function_digest(prop.hypothesis.inner_test))
    prop = settings(base_settings, database=db, **({"derandomize": False} if db is not None else {}))(prop)
    if seed is not None:
        prop._hypothesis_internal_use_seed = seed
    return prop
