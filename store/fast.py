"""The statements of every click, sent on the driver connection itself.

A statement executed through SQLAlchemy's async layer costs about 0.1 ms of Python (the greenlet
hand-over, the execution context, the result object) around 0.01 ms of SQL on SQLite. A card
refresh sends four of them and a decision a dozen, so that layer was most of a click.

:class:`Driver` runs a Core statement on the connection the SQLAlchemy connection already holds
(its transaction, its write lock, its pool slot):

- The statement is compiled once per dialect, by SQLAlchemy, into the SQL and the order of its
  parameters; the column types' own bind and result processors are kept with it, so values go in
  and come back exactly as through ``Connection.execute`` (aware UTC datetimes, booleans).
- SQLite: through :class:`store.sqlite_inline.InlineConnection`, whose rules stand (on the loop's
  thread unless it would wait for a lock; long reads handed to the connection's thread).
- PostgreSQL: asyncpg's ``fetch`` / ``execute`` (its own prepared-statement cache), inside the
  transaction SQLAlchemy's adapter opened, started here if it has not been.
- A driver error is raised as SQLAlchemy raises it (``sqlalchemy.exc.DBAPIError`` and its
  subclasses), and a broken connection is invalidated, as ``Connection.execute`` would.
- Listeners of ``before_cursor_execute`` / ``after_cursor_execute`` (the statement budget tests,
  the benchmarks' recorders) see these statements as they see any other.

Any other driver (aiosqlite's own thread, an in-memory database) goes through ``Connection.execute``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from store.sqlite_inline import InlineConnection

try:
    import asyncpg
except ImportError:  # pragma: no cover - PostgreSQL support is an install option
    asyncpg = None


@dataclass(frozen=True)
class Prepared:
    """A statement compiled for one dialect, with its parameters' order and both sides' processors."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    binds: dict[str, Callable[[Any], Any]]
    keys: tuple[str, ...]
    results: tuple[Callable[[Any], Any] | None, ...]

    def args(self, params: Mapping[str, Any] | None) -> tuple[Any, ...]:
        values = self.defaults if not params else {**self.defaults, **params}
        binds = self.binds
        return tuple(binds[n](values[n]) if n in binds else values[n] for n in self.names)

    def typed(self, row: Any) -> dict[str, Any]:
        return {k: (p(v) if p is not None else v) for k, p, v in zip(self.keys, self.results, row, strict=True)}


_PREPARED: dict[tuple[int, type], Prepared] = {}
_KEEP: list[Executable] = []  # the statements prepared (module constants): their ids stay theirs


def prepare(stmt: Executable, dialect: Dialect) -> Prepared:
    key = (id(stmt), type(dialect))
    found = _PREPARED.get(key)
    if found is not None:
        return found
    compiled = stmt.compile(dialect=dialect)
    names = tuple(compiled.positiontup or ())
    if not dialect.positional or any(b.expanding for b in compiled.binds.values()):
        raise ValueError("only positional, non-expanding statements run on the driver")
    columns = getattr(compiled, "_result_columns", None) or []
    prepared = Prepared(
        sql=compiled.string, names=names,
        defaults={name: bind.value for name, bind in compiled.binds.items()},
        binds=dict(compiled._bind_processors),
        keys=tuple(c.keyname for c in columns),
        results=tuple(c.type._cached_result_processor(dialect, None) for c in columns),
    )
    _KEEP.append(stmt)
    _PREPARED[key] = prepared
    return prepared


class Driver:
    """Runs prepared statements on the driver connection under one SQLAlchemy connection."""

    def __init__(self, conn: AsyncConnection, adapter: Any, kind: str) -> None:
        self.conn = conn
        self.sync = conn.sync_connection
        self.dialect = conn.dialect
        self.adapter = adapter  # SQLAlchemy's DBAPI adapter of the driver connection
        self.kind = kind  # "sqlite" (an InlineConnection) or "asyncpg"
        self._cursor: Any = None

    @classmethod
    async def of(cls, conn: AsyncConnection) -> Driver | None:
        sync = conn.sync_connection
        raw = sync.connection if sync is not None and not sync.invalidated else await conn.get_raw_connection()
        driver = raw.driver_connection
        if isinstance(driver, InlineConnection):
            return cls(conn, raw.dbapi_connection, "sqlite")
        if asyncpg is not None and isinstance(driver, asyncpg.Connection):
            return cls(conn, raw.dbapi_connection, "asyncpg")
        return None

    async def rows(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of a ``SELECT``, typed, as mappings of the column keys."""
        prepared = prepare(stmt, self.dialect)
        raw = await self._run(prepared, prepared.args(params), fetch=True)
        typed = prepared.typed
        return [typed(r) for r in raw]

    async def returning(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows a write's ``RETURNING`` gives (never interrupted part-way, as a read may be)."""
        prepared = prepare(stmt, self.dialect)
        raw = await self._run(prepared, prepared.args(params), fetch=True, write=True)
        return [prepared.typed(r) for r in raw]

    async def execute(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> None:
        """A statement whose result is not read (``INSERT`` / ``UPDATE`` without ``RETURNING``)."""
        prepared = prepare(stmt, self.dialect)
        await self._run(prepared, prepared.args(params), fetch=False)

    async def _run(self, prepared: Prepared, args: tuple[Any, ...], *, fetch: bool, write: bool = False
                   ) -> list[Any]:
        sql = prepared.sql
        dispatch = self.sync.dispatch
        if dispatch.before_cursor_execute:
            for fn in dispatch.before_cursor_execute:
                sql, args = fn(self.sync, None, sql, args, None, False)
        try:
            if self.kind == "sqlite":
                inline: InlineConnection = self.adapter._connection
                if self._cursor is None:
                    self._cursor = await inline._execute(inline._conn.cursor)
                if fetch and not write:
                    rows = await inline._read(self._cursor, sql, args)
                else:
                    await inline._execute(self._cursor.execute, sql, args)
                    rows = self._cursor.fetchall() if fetch else []
            else:
                rows = await self._asyncpg(sql, args, fetch)
        except Exception as exc:
            await self._raise(exc, sql, args)
        if dispatch.after_cursor_execute:
            for fn in dispatch.after_cursor_execute:
                fn(self.sync, None, sql, args, None, False)
        return rows

    async def _asyncpg(self, sql: str, args: tuple[Any, ...], fetch: bool) -> list[Any]:
        adapter = self.adapter
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()  # nothing on an autocommit (read) connection
            try:
                if fetch:
                    return list(await adapter._connection.fetch(sql, *args))
                await adapter._connection.execute(sql, *args)
                return []
            except Exception as exc:
                adapter._handle_exception(exc)  # raises the adapter's DBAPI error, as its cursor does
                raise

    async def _raise(self, exc: Exception, sql: str, args: tuple[Any, ...]) -> None:
        dbapi_error = self.dialect.loaded_dbapi.Error
        if not isinstance(exc, dbapi_error):
            raise exc
        disconnect = self.dialect.is_disconnect(exc, self.adapter, None)
        if disconnect:
            await self.conn.invalidate(exc)
        raise DBAPIError.instance(sql, args, exc, dbapi_error, connection_invalidated=disconnect,
                                  dialect=self.dialect) from exc
