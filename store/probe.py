"""Is the database there and usable? Answered before a command trusts it, in one line.

A read-only command (``audit``, ``evidence``, ``report``) must never mistake a wrong path for an
empty, clean audit: :func:`require_existing` refuses a database that does not exist or holds no
schema, creating nothing. :func:`failure` turns any error of an unusable URL (malformed, unknown
driver, server unreachable) into one line that never shows the password.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

BACKENDS = ("sqlite", "postgresql")
SCHEMA_TABLE = "audit_events"
EXAMPLE = "e.g. sqlite:///accessbot.db or postgresql://user:password@host/db"


class DatabaseUnusable(Exception):
    """A database that cannot be used, said in one line."""


def _mask(raw: str) -> str:
    """``raw`` with anything that may be a password (``user:secret@``) hidden."""
    return re.sub(r"(//[^/:@\s]*:)[^@\s]*@", r"\1***@", raw)


def _parse(url: str | URL) -> URL:
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:
        raise DatabaseUnusable(f"the database URL {_mask(str(url))!r} is not a URL ({EXAMPLE})") from None
    name = u.get_backend_name()
    if name not in BACKENDS:
        raise DatabaseUnusable(f"unsupported database {name!r} in {describe(u)}: use sqlite or postgresql ({EXAMPLE})")
    return u


def describe(url: str | URL) -> str:
    """How to name the database to a person: the file of a SQLite database, else the URL without password."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:
        return _mask(str(url))
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return str(Path(u.database).expanduser().absolute())
    return u.render_as_string(hide_password=True)


def check_url(url: str | URL) -> None:
    """Raise :class:`DatabaseUnusable` for a URL that is malformed or names a database we do not speak."""
    _parse(url)


def require_existing(url: str | URL) -> None:
    """Raise :class:`DatabaseUnusable` unless the database exists and holds our schema. Creates nothing."""
    u = _parse(url)
    if u.get_backend_name() == "sqlite":
        _sqlite_exists(u)
    else:
        _postgresql_exists(u)


def _sqlite_exists(u: URL) -> None:
    if not u.database or u.database == ":memory:":
        raise DatabaseUnusable("an in-memory SQLite database holds nothing to read; name the database file")
    path = Path(u.database).expanduser().absolute()
    if not path.is_file():
        raise DatabaseUnusable(f"no database at {path} (set --database-url or ACCESSBOT_DATABASE_URL)")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                 (SCHEMA_TABLE,)).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseUnusable(f"cannot read the database at {path}: {exc}") from None
    if not found:
        raise DatabaseUnusable(f"the database at {path} has no accessbot schema (run `accessbot db upgrade` to "
                               "create one, or check the path)")


def _postgresql_exists(u: URL) -> None:
    from store.db import sync_url

    engine = create_engine(sync_url(u), connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT to_regclass(:t)"), {"t": SCHEMA_TABLE}).scalar()
    except Exception as exc:
        raise DatabaseUnusable(failure(exc, u) or f"cannot use the database {describe(u)}") from None
    finally:
        engine.dispose()
    if found is None:
        raise DatabaseUnusable(f"the database {describe(u)} has no accessbot schema (run `accessbot db upgrade` "
                               "to create one, or check the URL)")


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, DatabaseUnusable | SQLAlchemyError | ConnectionError):
        return True
    module = type(exc).__module__ or ""
    return module.split(".")[0] in ("psycopg", "asyncpg", "sqlite3", "aiosqlite")


def failure(exc: BaseException, url: str | URL) -> str | None:
    """One line for an error that comes from the database or its URL (None for any other error)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen and not _is_database_error(cause):
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    if isinstance(cause, DatabaseUnusable):
        return str(cause)
    inner = getattr(cause, "orig", None) or cause
    reason = (str(inner).strip().splitlines() or [type(inner).__name__])[0]
    reason = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", reason)
    try:
        password = make_url(url).password if isinstance(url, str) else url.password
    except Exception:
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return f"cannot use the database {describe(url)}: {_mask(reason)[:300]}"
