"""Engines, URL mapping and schema migrations."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_only

from store.sqlite_inline import InlineConnection, creator

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def _url(url: str | URL) -> URL:
    return make_url(url) if isinstance(url, str) else url


def backend(url: str | URL) -> str:
    """``sqlite`` or ``postgresql``."""
    return _url(url).get_backend_name()


def sync_url(url: str | URL) -> URL:
    """The URL for synchronous use (migrations): psycopg 3 for PostgreSQL."""
    u = _url(url)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "sqlite":
        return u.set(drivername="sqlite")
    return u


def async_url(url: str | URL) -> URL:
    """The URL for the async engine: asyncpg for PostgreSQL, aiosqlite for SQLite."""
    u = _url(url)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+asyncpg")
    if u.get_backend_name() == "sqlite":
        return u.set(drivername="sqlite+aiosqlite")
    raise ValueError(f"unsupported database {u.get_backend_name()!r}: use sqlite or postgresql")


def _sqlite_setup(engine: Engine) -> None:
    """WAL, a generous busy timeout, and BEGIN IMMEDIATE for writers.

    pysqlite's own transaction handling is switched off so that SQLAlchemy's ``begin`` event
    decides: a connection with the execution option ``immediate`` takes the database write lock
    at BEGIN, which serialises writers across processes.
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # an inline connection waits for locks only off the event loop's thread (it keeps 0 there)
        if not isinstance(getattr(dbapi_conn, "_connection", None), InlineConnection):
            cur.execute("PRAGMA busy_timeout = 60000")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.info.get(INLINE_BEGUN):
            return  # store.fast.inline_transaction sent the BEGIN IMMEDIATE itself
        options = conn.get_execution_options()
        if options.get("immediate"):
            _send_begin(conn, "BEGIN IMMEDIATE")
        elif not options.get(STATEMENT_SNAPSHOTS):
            _send_begin(conn, "BEGIN")


def _send_begin(conn: Any, sql: str) -> None:
    """``conn.exec_driver_sql(sql)``, sent straight to an :class:`InlineConnection` (on the loop's thread unless
    it would wait for the lock, as every call there): SQLAlchemy's execution path around a BEGIN cost ten times
    the statement, on every write. The statement listeners see it as they see any statement, and an error goes
    through SQLAlchemy's handler (the same exception, the same invalidation) as from ``exec_driver_sql``."""
    adapter = conn.connection.dbapi_connection
    inline = getattr(adapter, "_connection", None)
    if not isinstance(inline, InlineConnection):
        conn.exec_driver_sql(sql)
        return
    dispatch = conn.dispatch
    params: tuple[Any, ...] = ()
    for fn in dispatch.before_cursor_execute:
        sql, params = fn(conn, None, sql, params, None, False)
    try:
        await_only(inline._execute(inline._conn.execute, sql, params))
    except BaseException as exc:  # as ``Driver._handle``: SQLAlchemy's handler reads the exception being handled
        conn._handle_dbapi_exception(exc, sql, params, None, None)
        raise
    for fn in dispatch.after_cursor_execute:
        fn(conn, _BEGUN, sql, params, None, False)


class _Begun:
    """The cursor an ``after_cursor_execute`` listener gets for a BEGIN sent by :func:`_send_begin`."""

    rowcount = -1


_BEGUN = _Begun()


# Execution option: no BEGIN on SQLite, so each statement reads its own snapshot, as every statement
# does at PostgreSQL's READ COMMITTED (store reads; see ``SqlStore.read``).
STATEMENT_SNAPSHOTS = "accessbot_statement_snapshots"


def sends_no_begin(conn: Any) -> bool:
    """True for a connection whose transactions send no BEGIN and no COMMIT (the store's reads)."""
    options = conn.get_execution_options()
    return bool(options.get("isolation_level") == "AUTOCOMMIT" or options.get(STATEMENT_SNAPSHOTS))


# A pooled connection idle for longer than this is pinged before use (see ``_ping_when_idle``).
PING_AFTER_IDLE_S = 5.0
# ``Connection.info`` key: the store keeps this connection checked out, idle since this ``time.monotonic()``
KEPT_SINCE = "accessbot_kept_since"


def ping_after(engine: Any) -> float | None:
    """How long a connection of ``engine`` may sit idle before the pool pings it; None: never pinged (SQLite)."""
    return getattr(engine.sync_engine.pool, "_accessbot_ping_after", None)


def _ping_when_idle(engine: Engine, after_s: float) -> None:
    """Ping a pooled connection before use only when it sat idle for ``after_s`` seconds.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout, which on asyncpg is three round trips
    (BEGIN, an empty query, ROLLBACK) in front of every transaction. A connection that answered
    moments ago is alive: one that sat idle (a server restart, a firewall or an idle timeout may
    have dropped it meanwhile) is pinged, and replaced when the ping fails. A connection that
    breaks in use makes SQLAlchemy invalidate the whole pool, as before.
    """

    engine.pool._accessbot_ping_after = after_s  # type: ignore[attr-defined]  # the store's kept connections too

    @event.listens_for(engine.pool, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:  # a connection the store kept idle (store.repository) has been idle since then
            record.info["accessbot_idle_since"] = record.info.pop(KEPT_SINCE, None) or time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("accessbot_idle_since")
        if since is None or time.monotonic() - since < after_s:
            return
        try:
            dbapi_conn.ping()
        except Exception as exc:  # the pool drops this connection and checks out another
            raise DisconnectionError(f"idle connection did not answer: {type(exc).__name__}") from exc


def private_sqlite_file(url: str | URL) -> None:
    """A SQLite database file that does not exist yet is created empty, readable and writable by its owner only
    (0600, whatever the umask): it holds every request, justification and decision, and SQLite creates its
    ``-wal`` and ``-shm`` files with the database file's permissions. A file already there is left as it is, with
    a warning when every local user may read it. Nothing for PostgreSQL, ``:memory:`` or a ``file:`` URI."""
    u = _url(url)
    path = u.database or ""
    if u.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:") or u.query:
        return
    target = Path(path).expanduser()
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # a missing folder or no permission: SQLite says so when it opens the file
    try:
        mode = target.stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and mode & stat.S_IROTH and str(target) not in _WARNED:
        _WARNED.add(str(target))
        structlog.get_logger("accessbot.store").warning(
            "the database file is readable by every local user: it holds every request, justification and decision"
            " (chmod 600, and the same for its -wal and -shm files)", path=str(target))


_WARNED: set[str] = set()
# PostgreSQL connections a process may hold at once (ACCESSBOT_DB_POOL_SIZE): each worker of ``serve --workers N`` has
# its own, so N of these must fit the server's ``max_connections`` with whatever else connects to it
POOL_SIZE = 30


def make_async_engine(url: str | URL, *, ping_after_idle_s: float = PING_AFTER_IDLE_S, inline_sqlite: bool = True,
                      **kw: Any) -> AsyncEngine:
    """The store's engine. On SQLite, calls run on the event loop's thread unless they would wait
    (:mod:`store.sqlite_inline`); ``inline_sqlite=False`` keeps aiosqlite's thread for every call."""
    u = async_url(url)
    if u.get_backend_name() == "sqlite":
        private_sqlite_file(u)
        path = u.database or ""
        if inline_sqlite and path and path != ":memory:" and not path.startswith("file:") and not u.query:
            kw.setdefault("async_creator", creator(path))
        engine = create_async_engine(u, connect_args={"timeout": 60}, **kw)
        _sqlite_setup(engine.sync_engine)
        _mark_failed_statements(engine.sync_engine)
        return engine
    # Every connection the pool opens stays in it (no overflow): a burst of clicks that needed thirty at once
    # needs them again at the next burst, and overflow connections were closed at their return and opened again
    # then (17 connects a burst of 200 card refreshes, each a new server process on PostgreSQL's side)
    kw.setdefault("pool_size", POOL_SIZE)
    kw.setdefault("max_overflow", 0)
    engine = create_async_engine(u, **kw)
    _ping_when_idle(engine.sync_engine, ping_after_idle_s)
    _mark_failed_statements(engine.sync_engine)
    return engine


# ``Connection.info`` key: store.fast.inline_transaction has begun this connection's SQLite write transaction itself
INLINE_BEGUN = "accessbot_inline_begun"
# ``Connection.info`` key: a statement failed on this connection since its write scope began (store.repository)
STATEMENT_FAILED = "accessbot_statement_failed"


def _mark_failed_statements(engine: Engine) -> None:
    """Mark the connection a statement failed on. PostgreSQL aborts the whole transaction on an error and its
    COMMIT then rolls back without a word; SQLite undoes the one statement and commits the rest. A write scope
    whose body caught such an error and went on is refused at its end on both (store.repository), so what it
    wrote is never lost in silence nor kept half."""

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        conn = context.connection
        if conn is not None and not conn.closed:
            conn.info[STATEMENT_FAILED] = True


def make_sync_engine(url: str | URL) -> Engine:
    engine = create_engine(sync_url(url))
    if backend(url) == "sqlite":
        private_sqlite_file(url)
        _sqlite_setup(engine)
    return engine


def connection_room(url: str | URL) -> int | None:
    """The connections a PostgreSQL server takes from roles that are not superusers (``max_connections`` less the
    reserved ones); None for SQLite, or when the server does not say."""
    if backend(url) != "postgresql":
        return None
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            most = int(conn.exec_driver_sql("SHOW max_connections").scalar() or 0)
            reserved = int(conn.exec_driver_sql("SHOW superuser_reserved_connections").scalar() or 0)
        return most - reserved if most else None
    except Exception:  # a server that will not say: nothing to warn of
        return None
    finally:
        engine.dispose()


def alembic_config(url: str | URL) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["sync_url"] = sync_url(url)
    return cfg


def head_revision() -> str:
    """The newest migration, read from the migration files (no Alembic import needed)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        rev = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.M)
        down = re.search(r"^down_revision\s*=\s*(?:['\"]([^'\"]+)['\"]|None)", source, re.M)
        if rev:
            revisions[rev.group(1)] = down.group(1) if down else None
    heads = set(revisions) - {d for d in revisions.values() if d}
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {sorted(heads)}")
    return heads.pop()


def _at_head(url: URL) -> bool:
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:
        return False
    finally:
        engine.dispose()
    return current == head_revision()


def upgrade(url: str | URL, revision: str = "head", *, owner_url: str | URL | None = None) -> list[str]:
    """Bring the database schema up to date (idempotent; cheap when it already is).

    With ``owner_url`` (PostgreSQL), the migrations run as that role and the serving role of
    ``url`` is then granted what it needs and no more (see ``store/roles.py``); returns those grants.
    """
    from store.probe import check_url

    check_url(url)  # a malformed URL or a database we do not speak: one clear line, not a driver's traceback
    u = _url(url)
    if owner_url is not None:
        return _upgrade_as_owner(u, _url(owner_url), revision)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        private_sqlite_file(u)
    if revision == "head" and _at_head(u):
        return []
    from alembic import command
    from sqlalchemy.exc import ProgrammingError

    try:
        command.upgrade(alembic_config(u), revision)
    except ProgrammingError as exc:
        if "permission denied" not in str(exc) and "must be owner" not in str(exc):
            raise
        from store.roles import DatabaseSetupError

        raise DatabaseSetupError("the database schema is not up to date and the serving role may not change it: "
                                 "run `accessbot db upgrade --owner-url postgresql://OWNER@host/db` "
                                 "(or set ACCESSBOT_DATABASE_OWNER_URL)") from None
    return []


def _upgrade_as_owner(url: URL, owner: URL, revision: str) -> list[str]:
    from store.roles import check_roles, grant_serving_role, preflight, serving_user

    check_roles(url, owner)
    engine = make_sync_engine(owner)
    try:
        with engine.begin() as conn:
            preflight(conn, serving_user(url))
    finally:
        engine.dispose()
    if not (revision == "head" and _at_head(owner)):
        from alembic import command

        command.upgrade(alembic_config(owner), revision)
    engine = make_sync_engine(owner)
    try:
        with engine.begin() as conn:
            return grant_serving_role(conn, serving_user(url))
    finally:
        engine.dispose()


def current_revision(url: str | URL) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
