"""SQLite for the async engine without a thread hand-off per call.

aiosqlite runs every call (make a cursor, execute, fetch, close it, commit) on the connection's
own thread and wakes the event loop when the call is done: four hand-offs for each statement, each
dearer than the statement itself (a card refresh spent 7 ms on SQLite against 0.06 ms of SQL).
:class:`InlineConnection` is an aiosqlite connection that runs a call on the event loop's thread
whenever the call cannot wait, and hands it to the connection's thread only when it would:

- On the loop's thread the busy timeout is 0: a lock another connection or process holds fails
  the call at once (``SQLITE_BUSY``, nothing done), and the call is run again on the connection's
  thread with the usual busy timeout, so the loop never waits for a lock.
- A read (``SELECT``, or ``WITH`` without a write in it) is executed and fetched whole in one
  call. Past ``READ_BUDGET_S`` on the loop's thread it is interrupted (a progress handler; an
  interrupted read changes nothing, and SQLite keeps the transaction) and run again on the
  connection's thread, so a long report or export does not hold up the loop.
- A call handed to the connection's thread runs to its end there, even when its caller is cancelled
  meanwhile (a client gone, a timeout), and every later call on the connection queues behind it on that
  thread: the close that throws the connection away included (closing the handle under a statement running
  on another thread crashes the process). That close interrupts a read still running there.
- Writes that got their lock run to the end on the loop's thread: this store writes a few rows at
  a time, and the export and the reports only read. A batch (``executemany``) goes to the
  connection's thread at once: one that met a lock part-way could not simply be run again.

The rows of a ``SELECT`` are buffered by the cursor, which is what SQLAlchemy does with them anyway
(it fetches all of a non-streaming result at once); this store never streams.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import aiosqlite

READ_BUDGET_S = 0.002
WAIT_MS = 60_000
_PROGRESS_EVERY = 1000  # SQLite VM steps between two looks at the clock


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc)


def _interrupted(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_INTERRUPT if code is not None else "interrupted" in str(exc)


_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.I)


def _is_read(sql: str) -> bool:
    """A statement that only reads: ``SELECT``, or ``WITH`` without a write anywhere in its text."""
    head = sql.lstrip()[:6].upper()
    return head == "SELECT" or (head[:4] == "WITH" and not _WRITES.search(sql))


class _Cursor(aiosqlite.Cursor):
    """An aiosqlite cursor whose ``SELECT`` comes back fetched; the fetch calls serve the buffer."""

    _conn: InlineConnection

    def __init__(self, conn: InlineConnection, cursor: sqlite3.Cursor) -> None:
        super().__init__(conn, cursor)
        self._rows: list[Any] | None = None

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Cursor:
        parameters = [] if parameters is None else parameters
        self._rows = None
        if _is_read(sql):
            self._rows = await self._conn._read(self._cursor, sql, parameters)
        else:
            await self._execute(self._cursor.execute, sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Cursor:
        """On the connection's thread: a batch that met a lock part-way could not simply be run again."""
        self._rows = None
        await self._conn._hand_off(partial(self._cursor.executemany, sql, parameters))
        return self

    async def fetchone(self) -> Any:
        if self._rows is None:
            return await super().fetchone()
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        if self._rows is None:
            return list(await super().fetchmany(size))
        size = self._cursor.arraysize if size is None else size
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> list[Any]:
        if self._rows is None:
            return list(await super().fetchall())
        rows, self._rows = self._rows, []
        return rows


class InlineConnection(aiosqlite.Connection):
    """See the module: calls run on the loop's thread unless they would wait."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], *, read_budget_s: float = READ_BUDGET_S,
                 wait_ms: int = WAIT_MS) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self.read_budget_s = read_budget_s
        self.wait_ms = wait_ms
        self._deadline = 0.0
        self.handed_off = 0  # calls that went to the connection's thread (tests and benchmarks read it)
        # calls the thread has finished (written there only): while it is behind ``handed_off``, a call is still
        # running there, one whose caller may have gone (cancelled), and the next calls queue behind it
        self._finished = 0
        self._reading = False  # the last call handed off is a read (one a close may interrupt)

    def __await__(self) -> Any:
        self._thread.start()  # for the calls that have to wait
        return self._connect().__await__()

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            try:
                self._connection = self._connector()
                self._connection.execute("PRAGMA busy_timeout = 0")
            except BaseException:
                self.stop()
                self._connection = None
                raise
        return self

    def _busy_elsewhere(self) -> bool:
        """A call handed to the connection's thread is still running there: nothing may run on this connection on
        the loop's thread meanwhile (closing the handle under a running statement crashes the process)."""
        return self._finished != self.handed_off

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if self._busy_elsewhere():
            return await self._hand_off(partial(fn, *args, **kwargs))
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        return await self._hand_off(partial(fn, *args, **kwargs))

    async def _read(self, cursor: sqlite3.Cursor, sql: str, parameters: Iterable[Any]) -> list[Any]:
        """Execute and fetch a read on the loop's thread within the budget; otherwise on the connection's."""
        if not self._running or not self._connection:
            raise ValueError("Connection closed")

        def run() -> list[Any]:
            cursor.execute(sql, parameters)
            return cursor.fetchall()

        if self._busy_elsewhere():
            return list(await self._hand_off(run, read=True))
        conn = self._connection
        self._deadline = time.perf_counter() + self.read_budget_s
        conn.set_progress_handler(self._past_budget, _PROGRESS_EVERY)
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if not (_busy(exc) or _interrupted(exc)):
                raise
        finally:
            conn.set_progress_handler(None, 0)
        return list(await self._hand_off(run, read=True))

    def _past_budget(self) -> int:
        return 1 if time.perf_counter() > self._deadline else 0

    async def _hand_off(self, call: Callable[[], Any], *, read: bool = False) -> Any:
        """Run ``call`` on the connection's thread, waiting for locks as long as ``wait_ms``. The call runs to its
        end there even when its caller is cancelled meanwhile; the calls after it queue behind it."""
        conn = self._conn

        def waiting() -> Any:
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.wait_ms)}")
                try:
                    return call()
                finally:
                    try:
                        conn.execute("PRAGMA busy_timeout = 0")
                    except sqlite3.ProgrammingError:  # the call closed the connection
                        pass
            finally:
                self._finished += 1

        self.handed_off += 1
        self._reading = read
        return await super()._execute(waiting)

    async def close(self) -> None:
        """Close on the connection's thread behind a call still running there (a read whose caller was cancelled
        is interrupted first: nothing waits for its rows); on the loop's thread otherwise."""
        if self._connection is not None and self._busy_elsewhere() and self._reading:
            self._connection.interrupt()
        await super().close()

    @aiosqlite.context.contextmanager
    async def cursor(self) -> _Cursor:  # type: ignore[override]
        return _Cursor(self, await self._execute(self._conn.cursor))


def connector(path: str) -> Callable[[], sqlite3.Connection]:
    """How an :class:`InlineConnection` opens ``path``: usable from both threads, pysqlite's transactions off."""
    return partial(sqlite3.connect, path, timeout=0, check_same_thread=False, isolation_level=None)


def creator(path: str, **kw: Any) -> Callable[[], Any]:
    """``async_creator`` for SQLAlchemy's aiosqlite dialect."""

    async def create() -> InlineConnection:
        return await InlineConnection(connector(path), **kw)

    return create
