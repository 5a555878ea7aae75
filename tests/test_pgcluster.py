"""The database fixtures hand out working, empty, distinct databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

_seen_pg_databases: list[str] = []


def _engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url)


def test_database_url_is_working_and_empty(database_url: str) -> None:
    engine = _engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, name VARCHAR(20))"))
            conn.execute(text("INSERT INTO probe (id, name) VALUES (1, 'x')"))
            assert conn.execute(text("SELECT name FROM probe")).scalar_one() == "x"
        assert inspect(engine).get_table_names() == ["probe"]
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE probe"))
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("round_", [1, 2])
def test_pg_databases_are_distinct(pg_url: str, round_: int) -> None:
    engine = _engine(pg_url)
    try:
        with engine.begin() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar_one()
            assert inspect(conn).get_table_names() == []
            # Left behind on purpose: the next test's database must not see it.
            conn.execute(text("CREATE TABLE leftover (id INTEGER)"))
    finally:
        engine.dispose()
    assert name.startswith("t_")
    assert pg_url.endswith("/" + name)
    assert name not in _seen_pg_databases
    _seen_pg_databases.append(name)


def test_pg_database_dropped_after_test(pg_server_url: str) -> None:
    if not _seen_pg_databases:
        pytest.skip("no PostgreSQL database was handed out earlier in this session")
    engine = _engine(pg_server_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT datname FROM pg_database WHERE datname = ANY(:names)"), {"names": _seen_pg_databases}
            ).all()
    finally:
        engine.dispose()
    assert rows == []


def test_postgres_marker_is_applied(request: pytest.FixtureRequest, pg_server_url: str) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert pg_server_url.startswith("postgresql://postgres@")


def test_paths(repo_root: Path, examples_dir: Path) -> None:
    assert (repo_root / "pyproject.toml").is_file()
    assert examples_dir == repo_root / "examples"
