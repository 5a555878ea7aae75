"""SQLite calls run on the event loop's thread, except the ones that would wait (store/sqlite_inline.py).

The loop must never stand still for a lock another connection or process holds, nor for a long
read: a ticker task measures the longest gap between its ticks while that happens. And the
transaction a read or a wait happened in must come through whole.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import text

from store.db import make_async_engine
from store.sqlite_inline import InlineConnection

LONG_READ = ("SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
             "SELECT x FROM c)")


class Ticker:
    """Ticks every 5 ms on the loop; ``worst`` is the longest the loop kept it waiting."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.worst = max(self.worst, now - last)
            self.ticks += 1
            last = now

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def _engine(tmp_path):
    engine = make_async_engine(f"sqlite:///{tmp_path / 'inline.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine


async def _driver(conn) -> InlineConnection:
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, InlineConnection)
    return driver


async def test_the_hot_path_runs_inline_and_waits_for_no_lock_there(tmp_path):
    engine = await _engine(tmp_path)
    try:
        async with engine.begin() as conn:
            driver = await _driver(conn)
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 0
            await conn.execute(text("INSERT INTO t (v) VALUES ('a'), ('b')"))
            rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
            assert rows == ["a", "b"]
            assert driver.handed_off == 0  # nothing waited: no call left the loop's thread
    finally:
        await engine.dispose()


async def test_a_lock_held_elsewhere_is_waited_for_off_the_loop(tmp_path):
    engine = await _engine(tmp_path)
    other = sqlite3.connect(tmp_path / "inline.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    other.execute("INSERT INTO t (v) VALUES ('theirs')")
    loop = asyncio.get_running_loop()
    loop.call_later(0.4, other.execute, "COMMIT")
    try:
        with Ticker() as ticker:
            started = time.perf_counter()
            async with engine.connect() as conn:
                conn = await conn.execution_options(immediate=True)
                async with conn.begin():
                    driver = await _driver(conn)
                    await conn.execute(text("INSERT INTO t (v) VALUES ('ours')"))
            waited = time.perf_counter() - started
        assert waited >= 0.35  # it did wait for the other writer...
        assert ticker.worst < 0.2, f"the loop stood still for {ticker.worst:.3f} s"  # ...but not on the loop
        assert driver.handed_off >= 1
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        assert rows == ["theirs", "ours"]
    finally:
        other.close()
        await engine.dispose()


async def test_a_long_read_leaves_the_loop_and_its_transaction_stays_whole(tmp_path):
    engine = await _engine(tmp_path)
    try:
        with Ticker() as ticker:
            async with engine.begin() as conn:
                driver = await _driver(conn)
                await conn.execute(text("INSERT INTO t (v) VALUES ('before')"))
                started = time.perf_counter()
                count = (await conn.execute(text(LONG_READ))).scalar()
                took = time.perf_counter() - started
                await conn.execute(text("INSERT INTO t (v) VALUES ('after')"))
        assert count == 3_000_000
        assert driver.handed_off == 1
        assert took > 0.1  # long enough that running it on the loop would show in the ticks
        assert ticker.worst < took / 2, f"the loop stood still for {ticker.worst:.3f} s of a {took:.3f} s read"
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        assert rows == ["before", "after"]  # the interrupted read cost the transaction nothing
    finally:
        await engine.dispose()


@pytest.mark.parametrize("sql, read", [
    ("SELECT 1", True),
    ("  select v from t", True),
    ("WITH x AS (SELECT 1) SELECT * FROM x", True),
    ("WITH x AS (SELECT 1) INSERT INTO t (v) SELECT * FROM x", False),
    ("INSERT INTO t (v) VALUES ('a') RETURNING id", False),
    ("UPDATE t SET v = 'b'", False),
    ("PRAGMA busy_timeout", False),
])
def test_only_reads_are_interrupted(sql, read):
    from store.sqlite_inline import _is_read

    assert _is_read(sql) is read


async def test_the_thread_per_call_engine_is_still_there(tmp_path):
    engine = make_async_engine(f"sqlite:///{tmp_path / 'plain.db'}", inline_sqlite=False)
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert not isinstance(raw.driver_connection, InlineConnection)
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 60000
    finally:
        await engine.dispose()


async def test_a_batch_goes_to_the_connections_thread_whole(tmp_path):
    engine = await _engine(tmp_path)
    try:
        async with engine.begin() as conn:
            driver = await _driver(conn)
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": f"row-{i}"} for i in range(50)])
            assert driver.handed_off == 1
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 50
    finally:
        await engine.dispose()
