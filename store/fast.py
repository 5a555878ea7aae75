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
- Any error, a cancellation included, goes through SQLAlchemy's own handler, as from
  ``Connection.execute``: driver errors come out as ``sqlalchemy.exc.DBAPIError`` and its
  subclasses, a bad value as ``StatementError``; a disconnect invalidates the pool, and a statement
  cancelled part-way throws its connection away (a transaction half begun must not go back to the
  pool). A missing parameter is refused, not sent as NULL.
- Listeners of ``before_cursor_execute`` / ``after_cursor_execute`` (the statement budget tests,
  the benchmarks' recorders) see these statements as they see any other (the listeners in place at
  a scope's first statement: one added in the middle of a scope sees its later statements through
  SQLAlchemy only); the cursor an
  ``after_cursor_execute`` listener gets carries only ``rowcount`` (the rows a write matched, -1
  for a read, as the DBAPI says).

Any other driver (aiosqlite's own thread, an in-memory database) goes through ``Connection.execute``.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.util.concurrency import greenlet_spawn

from store.db import INLINE_BEGUN
from store.schema import UTCDateTime
from store.sqlite_inline import InlineConnection


@dataclass(frozen=True)
class Prepared:
    """A statement compiled for one dialect, with its parameters' order and both sides' processors."""

    sql: str
    defaults: dict[str, Any]
    required: frozenset[str]
    # each parameter's name with its bind processor (None: sent as given), in the statement's order
    plan: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    keys: tuple[str, ...]  # the result columns' keys
    # the result columns that have a processor: (their place in the row, their key, the processor)
    converted: tuple[tuple[int, str, Callable[[Any], Any]], ...]

    def args(self, params: Mapping[str, Any] | None) -> tuple[Any, ...]:
        defaults = self.defaults
        if not params:
            values: Mapping[str, Any] = defaults
        elif defaults:
            values = {**defaults, **params}
        else:
            values = params
        if self.required and not self.required <= values.keys():
            missing = sorted(self.required - values.keys())
            raise StatementError(f"A value is required for bind parameter {missing[0]!r}", self.sql, params, None)
        return tuple([values[n] if p is None else p(values[n]) for n, p in self.plan])

    def typed(self, row: Any) -> dict[str, Any]:
        found = dict(zip(self.keys, row, strict=True))
        for at, key, process in self.converted:
            found[key] = process(row[at])
        return found


def _fused(type_: Any, dialect: Dialect, side: str) -> Callable[[Any], Any] | None:
    """A :class:`store.schema.UTCDateTime` on SQLite: its processor and SQLite ``DATETIME``'s in one step (the
    chain of the two, through ``TypeDecorator``, cost more than the statement's own SQL); None for any other
    type or dialect. A bound aware datetime becomes its UTC time in SQLAlchemy's storage format (``YYYY-MM-DD
    HH:MM:SS.ffffff``, ``tests/test_fast_statements.py`` compares the two); anything else goes the type's way."""
    if dialect.name != "sqlite" or type(type_) is not UTCDateTime:
        return None
    if side == "bind":
        chained = type_._cached_bind_processor(dialect)
        assert chained is not None

        def bind(value: Any) -> Any:
            if type(value) is not datetime or value.tzinfo is None:
                return chained(value)  # None, a date, a subclass, a naive datetime (refused): as the type does
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return bind
    read = type_.impl_instance.dialect_impl(dialect).result_processor(dialect, None)  # SQLite's text to datetime
    assert read is not None

    def result(value: Any) -> Any:
        if value is None:
            return None
        size = len(value) if type(value) is str else 0
        if (size == 19 or (size == 26 and value[19] == ".")) and value[10] == " ":
            # the storage format itself (``YYYY-MM-DD HH:MM:SS[.ffffff]``): read by the C parser, which gives what
            # SQLite DATETIME's regular expression gives for it, five times faster; anything else goes its way, a
            # look-alike with an offset too (``2026-11-23 08:00+01``: its UTC time, never the offset dropped)
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if moment.tzinfo is None:
                    return moment.replace(tzinfo=UTC)
        moment = read(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    return result


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
    binds = dict(compiled._bind_processors)
    for name in binds:
        fused = _fused(compiled.binds[name].type, dialect, "bind")
        if fused is not None:
            binds[name] = fused
    results = tuple(_fused(c.type, dialect, "result") or c.type._cached_result_processor(dialect, None)
                    for c in columns)
    keys = tuple(c.keyname for c in columns)
    prepared = Prepared(
        sql=compiled.string,
        defaults={name: bind.value for name, bind in compiled.binds.items() if not bind.required},
        required=frozenset(name for name, bind in compiled.binds.items() if bind.required),
        plan=tuple((n, binds.get(n)) for n in names), keys=keys,
        converted=tuple((i, k, p) for i, (k, p) in enumerate(zip(keys, results, strict=True)) if p is not None),
    )
    _KEEP.append(stmt)
    _PREPARED[key] = prepared
    return prepared


class Driver:
    """Runs prepared statements on the driver connection under one SQLAlchemy connection."""

    def __init__(self, conn: AsyncConnection, kind: str) -> None:
        self.conn = conn
        self.sync = conn.sync_connection
        self.dialect = conn.dialect
        self.kind = kind  # "sqlite" (an InlineConnection) or "asyncpg"
        # RETURNING came with SQLite 3.35; older libraries take the new ids through SQLAlchemy
        self.returns = kind == "asyncpg" or sqlite3.sqlite_version_info >= (3, 35)
        self._cursor: tuple[Any, Any] | None = None  # (the SQLite adapter it belongs to, the cursor)
        self._rowcount = -1  # the rows the last write matched (-1 after a read)
        # the engine's statement listeners, read once per scope: asking SQLAlchemy's joined listener
        # collections whether they hold any costs more than a SQLite statement
        self._listeners: tuple[tuple[Any, ...], tuple[Any, ...]] | None = None

    @classmethod
    async def of(cls, conn: AsyncConnection) -> Driver | None:
        driver = (await _adapter(conn))._connection
        if isinstance(driver, InlineConnection):
            return cls(conn, "sqlite")
        asyncpg = sys.modules.get("asyncpg")  # imported by the dialect only when PostgreSQL is used
        if asyncpg is not None and isinstance(driver, asyncpg.Connection):
            return cls(conn, "asyncpg")
        return None

    async def rows(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows of a ``SELECT``, typed, as mappings of the column keys."""
        prepared = prepare(stmt, self.dialect)
        typed = prepared.typed
        return [typed(r) for r in await self._run(prepared, params, fetch=True)]

    async def returning(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The rows a write's ``RETURNING`` gives (never interrupted part-way, as a read may be)."""
        prepared = prepare(stmt, self.dialect)
        return [prepared.typed(r) for r in await self._run(prepared, params, fetch=True, write=True)]

    async def execute(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> None:
        """A statement whose result is not read (``INSERT`` / ``UPDATE`` without ``RETURNING``)."""
        await self._run(prepare(stmt, self.dialect), params, fetch=False)

    async def _run(self, prepared: Prepared, params: Mapping[str, Any] | None, *, fetch: bool,
                   write: bool = False) -> list[Any]:
        sql, args = prepared.sql, params
        listeners = self._listeners
        if listeners is None:
            dispatch = self.sync.dispatch
            listeners = self._listeners = (tuple(dispatch.before_cursor_execute),
                                           tuple(dispatch.after_cursor_execute))
        before, after = listeners
        try:
            args = prepared.args(params)
            for fn in before:
                sql, args = fn(self.sync, None, sql, args, None, False)
            adapter = await _adapter(self.conn)  # after an invalidation: the connection SQLAlchemy replaced it with
            if self.kind == "sqlite":
                rows = await self._sqlite(adapter, sql, args, fetch=fetch, write=write)
            else:
                rows = await self._asyncpg(adapter, sql, args, fetch)
        except BaseException as exc:  # cancellation too: SQLAlchemy then throws the connection away
            await greenlet_spawn(self._handle, exc, sql, args)
            raise  # not reached: the handler raises
        if after:
            done = Done(self._rowcount)
            for fn in after:
                fn(self.sync, done, sql, args, None, False)
        return rows

    def _handle(self, exc: BaseException, sql: str, args: Any) -> None:
        """SQLAlchemy's handler, which reads the exception being handled from ``sys.exc_info()``."""
        try:
            raise exc
        except BaseException:
            self.sync._handle_dbapi_exception(exc, sql, args, None, None)

    async def _sqlite(self, adapter: Any, sql: str, args: tuple[Any, ...], *, fetch: bool, write: bool) -> list[Any]:
        inline: InlineConnection = adapter._connection
        if self._cursor is None or self._cursor[0] is not adapter:
            self._cursor = (adapter, await inline._execute(inline._conn.cursor))
        cursor = self._cursor[1]
        if fetch and not write:
            self._rowcount = -1
            return await inline._read(cursor, sql, args)
        await inline._execute(cursor.execute, sql, args)
        rows = cursor.fetchall() if fetch else []
        self._rowcount = cursor.rowcount  # after the RETURNING rows are read: SQLite counts them as it steps
        return rows  # type: ignore[no-any-return]

    async def _asyncpg(self, adapter: Any, sql: str, args: tuple[Any, ...], fetch: bool) -> list[Any]:
        async with adapter._execute_mutex:
            if adapter._transaction is None:
                await adapter._start_transaction()  # nothing on an autocommit (read) connection
            try:
                if fetch:
                    rows = list(await adapter._connection.fetch(sql, *args))
                    self._rowcount = len(rows) if _writes(sql) else -1
                    return rows
                status = await adapter._connection.execute(sql, *args)  # "UPDATE 3", "INSERT 0 1"
                tail = status.rsplit(" ", 1)[-1] if isinstance(status, str) else ""
                self._rowcount = int(tail) if tail.isdigit() else -1
                return []
            except Exception as exc:
                adapter._handle_exception(exc)  # raises the adapter's DBAPI error, as its cursor does
                raise


@dataclass(frozen=True)
class Done:
    """What an ``after_cursor_execute`` listener gets as the cursor of a statement run here."""

    rowcount: int


def _writes(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


async def _adapter(conn: AsyncConnection) -> Any:
    """SQLAlchemy's DBAPI adapter of the connection's driver connection, revalidated after an invalidation."""
    sync = conn.sync_connection
    fairy = sync._dbapi_connection if sync is not None and not sync.invalidated else None
    if fairy is None:
        fairy = await conn.get_raw_connection()
    return fairy.dbapi_connection


async def inline_of(conn: AsyncConnection) -> InlineConnection | None:
    """The :class:`InlineConnection` under ``conn`` (SQLite on the loop's thread), or None for any other driver."""
    driver = (await _adapter(conn))._connection
    return driver if isinstance(driver, InlineConnection) else None


@asynccontextmanager
async def inline_transaction(conn: AsyncConnection, inline: InlineConnection) -> AsyncIterator[None]:
    """A SQLite write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception, a cancellation
    included) sent on the :class:`InlineConnection` itself, as SQLAlchemy's ``async with conn.begin()`` sends it.

    Through SQLAlchemy, the BEGIN and the COMMIT each cost a greenlet hand-over and its execution machinery, about
    ten times the two statements, on every write scope (a lifecycle cycle has fourteen). What SQLAlchemy does
    around them is kept: the ``begin`` / ``commit`` / ``rollback`` listeners run (the benchmarks' recorders, the
    tests that count write transactions) and the BEGIN is shown to the statement listeners as any statement; an
    error goes through SQLAlchemy's handler (the same exception, the same invalidation; a cancelled BEGIN throws
    the connection away, for it may yet take the lock on the connection's thread). A statement of the scope that
    goes through SQLAlchemy (``Connection.execute``) autobegins SQLAlchemy's transaction inside this one: its
    ``begin`` listener sends no second BEGIN (``INLINE_BEGUN``, store/db.py), and the end goes through SQLAlchemy
    then, which commits or rolls back this transaction with its own."""
    sync = conn.sync_connection
    assert sync is not None and not conn.in_transaction()
    sql, params = "BEGIN IMMEDIATE", ()
    sync.info[INLINE_BEGUN] = True
    try:
        for fn in sync.dispatch.begin:  # store/db.py's own sends nothing while INLINE_BEGUN is set
            fn(sync)
        for fn in sync.dispatch.before_cursor_execute:
            sql, params = fn(sync, None, sql, params, None, False)
        try:
            await inline._execute(inline._conn.execute, sql, params)
        except BaseException as exc:
            await greenlet_spawn(_handle, sync, exc, sql, params)
            raise  # not reached: the handler raises
        for fn in sync.dispatch.after_cursor_execute:
            fn(sync, _BEGUN, sql, params, None, False)
        try:
            yield
        except BaseException:
            await _end(conn, inline, commit=False)
            raise
        await _end(conn, inline, commit=True)
    finally:
        if not sync.invalidated:  # an invalidated connection's info is cleared when it connects again (and asking
            sync.info.pop(INLINE_BEGUN, None)  # for it would connect it, here, outside SQLAlchemy's greenlet)


async def _end(conn: AsyncConnection, inline: InlineConnection, *, commit: bool) -> None:
    if conn.in_transaction():  # a statement went through SQLAlchemy: its transaction ends this one with it
        await (conn.commit() if commit else conn.rollback())
        return
    sync = conn.sync_connection
    assert sync is not None
    if not commit and (conn.invalidated or not inline._conn.in_transaction):
        return  # nothing to undo: the connection is thrown away, or SQLite already rolled the transaction back
    for fn in (sync.dispatch.commit if commit else sync.dispatch.rollback):
        fn(sync)
    try:
        await (inline.commit() if commit else inline.rollback())
    except BaseException as exc:
        await greenlet_spawn(_handle, sync, exc, "COMMIT" if commit else "ROLLBACK", ())
        raise


def _handle(sync: Any, exc: BaseException, sql: str, args: Any) -> None:
    """SQLAlchemy's handler, which reads the exception being handled from ``sys.exc_info()``."""
    try:
        raise exc
    except BaseException:
        sync._handle_dbapi_exception(exc, sql, args, None, None)


class _Begun:
    """The cursor an ``after_cursor_execute`` listener gets for the BEGIN sent here."""

    rowcount = -1


_BEGUN = _Begun()
