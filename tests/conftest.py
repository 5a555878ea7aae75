"""Shared pytest fixtures: databases (SQLite and a throwaway PostgreSQL) and repository paths.

Fixtures
    repo_root        Path of the repository root.
    examples_dir     Path of ``examples/``.
    pg_server_url    session: ``postgresql://postgres@127.0.0.1:PORT/postgres`` (superuser).
    database_url     a fresh empty database per test, parametrized ``sqlite`` / ``postgresql``.
    sqlite_url       a fresh SQLite database URL.
    pg_url           a fresh empty PostgreSQL database URL (dropped afterwards).

Environment
    ACCESSBOT_TEST_PG_URL       use this existing server instead of starting one.
    ACCESSBOT_REQUIRE_POSTGRES  "1": a missing PostgreSQL fails the tests instead of skipping them.
    ACCESSBOT_TEST_NO_POSTGRES  "1": skip PostgreSQL tests (same as ``--no-postgres``).

Tests using a PostgreSQL fixture carry the ``postgres`` marker, so ``pytest -m "not postgres"``
runs without starting a server.

This file imports no project package: it must work while the packages are being changed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_FIXTURES = frozenset({"pg_server_url", "pg_url"})


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _pgcluster() -> ModuleType:
    """Load ``tests/pgcluster.py`` by path, whatever ``tests`` resolves to on sys.path."""
    name = "accessbot_tests_pgcluster"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("pgcluster.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def _with_database(url: str, dbname: str) -> str:
    """``url`` pointing at database ``dbname``, scheme normalised to plain ``postgresql://``."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, "/" + dbname, parts.query, ""))


# -- command line and markers ----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--no-postgres", action="store_true", default=False,
        help="skip tests that need PostgreSQL (also: ACCESSBOT_TEST_NO_POSTGRES=1)",
    )


def _postgres_disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--no-postgres")) or _env_flag("ACCESSBOT_TEST_NO_POSTGRES")


def _needs_postgres(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    if names & PG_FIXTURES:
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("database_url") == "postgresql"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _postgres_disabled(config) and _env_flag("ACCESSBOT_REQUIRE_POSTGRES"):
        raise pytest.UsageError("ACCESSBOT_REQUIRE_POSTGRES=1 contradicts --no-postgres / ACCESSBOT_TEST_NO_POSTGRES")
    skip = pytest.mark.skip(reason="PostgreSQL tests disabled (--no-postgres)")
    for item in items:
        if _needs_postgres(item):
            item.add_marker(pytest.mark.postgres)
            if _postgres_disabled(config):
                item.add_marker(skip)


# -- byte code for the subprocesses -------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the project's modules once, before any test starts an ``accessbot`` subprocess. Where byte code is
    not written (``PYTHONDONTWRITEBYTECODE``, as on some CI images), each of the hundreds of subprocesses the suite
    starts would compile every module it imports again (about 0.4 s each); ``compileall`` writes the files anyway,
    and a module changed later is compiled again as usual (its timestamp no longer matches)."""
    if not sys.dont_write_bytecode or hasattr(session.config, "workerinput"):  # the xdist controller does it once
        return
    import compileall

    for package in sorted(p.parent for p in REPO_ROOT.glob("*/__init__.py")):
        compileall.compile_dir(package, quiet=1)


# -- parallel workers (pytest-xdist) ------------------------------------------------------------


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """What ``-n auto`` (the default, see pyproject.toml) means: two workers per core this process may run on,
    2 to 8. Most of the suite's time is spent waiting (for ``accessbot`` subprocesses, servers, PostgreSQL), not
    computing. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` sets the number; ``-n 0`` runs in one process. Each worker
    starts its own throwaway PostgreSQL cluster; ``--dist loadfile`` keeps a file's tests (and its module
    fixtures) on one worker."""
    fixed = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").strip()
    if fixed.isdigit():
        return int(fixed)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(8, 2 * cores))


# -- paths -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def examples_dir(repo_root: Path) -> Path:
    return repo_root / "examples"


# -- PostgreSQL --------------------------------------------------------------------------------


def _unavailable(message: str) -> None:
    if _env_flag("ACCESSBOT_REQUIRE_POSTGRES"):
        pytest.fail(f"{message} (ACCESSBOT_REQUIRE_POSTGRES=1)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """Superuser URL of the session's PostgreSQL server (started on first use, stopped at the end)."""
    external = os.environ.get("ACCESSBOT_TEST_PG_URL", "").strip()
    if external:
        yield _with_database(external, urlsplit(external).path.lstrip("/") or "postgres")
        return
    pgcluster = _pgcluster()
    try:
        cluster = pgcluster.PgCluster()
        url = cluster.start()
    except pgcluster.PgUnavailable as exc:
        _unavailable(f"no PostgreSQL server: {exc}")
    except pgcluster.PgStartError as exc:
        _unavailable(f"PostgreSQL could not be started: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


class _PgAdmin:
    """One autocommit connection that creates and drops the per-test databases."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.server_url, autocommit=True, connect_timeout=10)
        return self._conn

    def create(self) -> str:
        dbname = f"t_{uuid.uuid4().hex}"
        self._connection().execute(f'CREATE DATABASE "{dbname}"')
        return dbname

    def drop(self, dbname: str) -> None:
        self._connection().execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@pytest.fixture(scope="session")
def _pg_admin(pg_server_url: str) -> Iterator[_PgAdmin]:
    admin = _PgAdmin(pg_server_url)
    try:
        yield admin
    finally:
        admin.close()


@pytest.fixture
def pg_url(_pg_admin: _PgAdmin) -> Iterator[str]:
    """A fresh empty PostgreSQL database, dropped after the test."""
    dbname = _pg_admin.create()
    try:
        yield _with_database(_pg_admin.server_url, dbname)
    finally:
        _pg_admin.drop(dbname)


# -- SQLite and both -----------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file (not yet created) in the test's tmp_path."""
    return f"sqlite:///{tmp_path}/accessbot.db"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database per test, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/accessbot.db"
    return str(request.getfixturevalue("pg_url"))
