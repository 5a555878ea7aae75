"""Two database roles on PostgreSQL: the owner runs migrations, the serving role may only append
to the audit log. The serving role cannot rewrite, remove or unguard audit events, and the whole
application still works as that role. On SQLite the database itself refuses edits too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy import text

from store.db import make_sync_engine
from tests.support import chat, cli, copy_examples

TODAY = datetime.now(UTC).date().isoformat()


def _as(url: str, user: str, dbname: str | None = None) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    path = "/" + dbname if dbname else parts.path
    return urlunsplit((parts.scheme, f"{user}@{host}", path, "", ""))


@pytest.fixture
def two_roles(pg_server_url: str) -> Iterator[tuple[str, str, str]]:
    """(owner URL, serving URL, superuser URL) of a fresh database owned by the owner role."""
    suffix = uuid.uuid4().hex[:10]
    owner, app, db = f"ab_owner_{suffix}", f"ab_app_{suffix}", f"t_roles_{suffix}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')
        conn.execute(f'CREATE ROLE "{app}" LOGIN')
        conn.execute(f'CREATE DATABASE "{db}" OWNER "{owner}"')
    try:
        yield _as(pg_server_url, owner, db), _as(pg_server_url, app, db), _as(pg_server_url, "postgres", db)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{app}"')
            conn.execute(f'DROP ROLE IF EXISTS "{owner}"')


def _refused(url: str, statement: str) -> str:
    """The error PostgreSQL gives the role of ``url`` for ``statement`` (fails the test if it is allowed)."""
    with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as conn:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            conn.rollback()
            return str(exc)
        conn.rollback()
    raise AssertionError(f"{statement!r} was allowed")


def test_serving_role_can_only_append_to_the_audit_log(two_roles, tmp_path) -> None:
    owner_url, app_url, _ = two_roles
    r = cli("db", "upgrade", "--owner-url", owner_url, db=app_url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "INSERT and SELECT only" in r.stdout
    again = cli("db", "upgrade", "--owner-url", owner_url, db=app_url)  # idempotent
    assert again.returncode == 0, again.stderr
    # every table the migrations made is granted, whichever modules `db upgrade` happened to import
    with psycopg.connect(owner_url, autocommit=True) as conn:
        missing = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
            "AND NOT has_table_privilege(%s, quote_ident(schemaname) || '.' || quote_ident(tablename), 'SELECT')",
            (urlsplit(app_url).username,)).fetchall()]
    assert missing == [], f"the serving role may not read {missing}"

    # the whole application as the serving role: requests, approvals, provisioning, sweep, evidence
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", "request analytics-read for 1d", db=app_url,
         files=files)
    chat("mark.mgr@example.com", "approve REQ-1 fine", db=app_url, files=files)
    chat("bob@example.com", "release REQ-1", db=app_url, files=files)
    cli("sweep", db=app_url, files=files, check=True)
    assert cli("audit", "verify", db=app_url, files=files, check=True).stdout.startswith("OK ")
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(out), db=app_url, files=files)
    assert r.returncode == 0 and out.exists(), r.stdout + r.stderr

    for statement in ("UPDATE audit_events SET actor = 'mallory@example.com' WHERE seq = 2",
                      "DELETE FROM audit_events WHERE seq = 2", "TRUNCATE audit_events"):
        assert "permission denied" in _refused(app_url, statement)
    for statement in ("ALTER TABLE audit_events DISABLE TRIGGER USER",
                      "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete",
                      "DROP TRIGGER audit_events_no_update_delete ON audit_events",
                      "CREATE OR REPLACE FUNCTION accessbot_audit_append_only() RETURNS trigger AS "
                      "$$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
                      "CREATE OR REPLACE FUNCTION accessbot_audit_seq_from_one() RETURNS trigger AS "
                      "$$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
                      "DROP TABLE audit_events", "ALTER TABLE audit_events OWNER TO CURRENT_USER"):
        error = _refused(app_url, statement)
        assert "must be owner" in error or "permission denied" in error, error
    # the rest of the schema stays the owner's too
    assert "permission denied" in _refused(app_url, "CREATE TABLE public.sneaky (x int)")
    assert "permission denied" in _refused(app_url, "UPDATE alembic_version SET version_num = 'x'")
    assert cli("audit", "verify", db=app_url, check=True).stdout.startswith("OK ")


def test_refuses_when_the_serving_role_owns_the_tables(two_roles) -> None:
    """A database first migrated by the serving role: its tables must change owner before it is safe."""
    owner_url, app_url, super_url = two_roles
    with psycopg.connect(super_url, autocommit=True) as conn:
        conn.execute(f'GRANT CREATE ON SCHEMA public TO "{urlsplit(app_url).username}"')
    cli("db", "upgrade", db=app_url, check=True)  # the old way: the serving role owns everything
    r = cli("db", "upgrade", "--owner-url", owner_url, db=app_url)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "owned by the serving role" in r.stderr and "REASSIGN OWNED BY" in r.stderr


def test_refuses_when_the_serving_role_owns_a_guard_function(two_roles) -> None:
    """Any of the audit guards' functions owned by the serving role (the seq-from-1 guard as much as the
    append-only one) would let it replace the body and switch that guard off without touching the trigger."""
    owner_url, app_url, super_url = two_roles
    cli("db", "upgrade", "--owner-url", owner_url, db=app_url, check=True)
    with psycopg.connect(super_url, autocommit=True) as conn:
        conn.execute(f'ALTER FUNCTION accessbot_audit_seq_from_one() OWNER TO "{urlsplit(app_url).username}"')
    r = cli("db", "upgrade", "--owner-url", owner_url, db=app_url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "owned by the serving role" in r.stderr and "accessbot_audit_seq_from_one" in r.stderr, r.stderr


def test_owner_url_must_name_another_role(two_roles) -> None:
    owner_url, _, _ = two_roles
    r = cli("db", "upgrade", "--owner-url", owner_url, db=owner_url)
    assert r.returncode == 1 and "another role" in r.stderr and "Traceback" not in r.stderr


def test_sqlite_refuses_edits_of_the_audit_log(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", db=sqlite_url, files=files)
    engine = make_sync_engine(sqlite_url)
    try:
        for statement in ("UPDATE audit_events SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_events"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
    assert cli("audit", "verify", db=sqlite_url, check=True).stdout.startswith("OK ")
