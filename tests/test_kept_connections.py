"""The store keeps a scope's connection checked out for the next scope (store/repository.py ``SqlStore``): the
write connection and up to ``KEEP_READS`` read connections. Whatever ends a scope (a cancellation anywhere, an
error, a generator closed early, the store closed), no connection leaks, no write lock or transaction is left
behind, and the next read sees every committed write."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import ResourceClosedError

from store import schema as t
from store.db import make_async_engine, upgrade
from store.repository import KEEP_READS, WRITE_LOCK_KEY, SqlStore


class Boom(Exception):
    pass


def _kept(store: SqlStore) -> int:
    return len(store._kept_reads) + (1 if store._kept_write else 0)


def _checked_out(store: SqlStore) -> int:
    return int(store.engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


async def _append(store: SqlStore, type_: str) -> None:
    async with store.write() as repo:
        await repo.append(type_, actor="a@example.com", ts=datetime.now(UTC))


def _sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


def _outside_count(url: str) -> int:
    """The events committed, counted on a connection of another client."""
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url)) as other:
            return int(other.execute("SELECT count(*) FROM audit_events").fetchone()[0])
    with psycopg.connect(url, autocommit=True) as other:
        return int(other.execute("SELECT count(*) FROM audit_events").fetchone()[0])  # type: ignore[index]


def _outside_append(url: str, type_: str) -> None:
    """Another process's write (a row the store's chain does not know of is fine for counting)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(_sqlite_path(url), timeout=10, isolation_level=None) as other:
            other.execute("INSERT INTO seen_events (key, seen_at) VALUES (?, ?)", (type_, "2026-01-01 00:00:00"))
        return
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("INSERT INTO seen_events (key, seen_at) VALUES (%s, now())", (type_,))


def _nothing_held(url: str) -> None:
    """No write lock held and no transaction left open, seen from another client."""
    if url.startswith("sqlite"):
        other = sqlite3.connect(_sqlite_path(url), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # fails at once if a connection of the store holds the write lock
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    with psycopg.connect(url, autocommit=True) as other:
        free = other.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_LOCK_KEY,)).fetchone()[0]  # type: ignore[index]
        other.execute("SELECT pg_advisory_unlock_all()")
        stuck = other.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND state LIKE 'idle in transaction%'").fetchone()[0]  # type: ignore[index]
    assert free and stuck == 0


async def _count(repo: Any) -> int:
    return int((await repo.conn.execute(select(func.count()).select_from(t.audit_events))).scalar_one())


async def _seen(repo: Any) -> int:
    return int((await repo.conn.execute(select(func.count()).select_from(t.seen_events))).scalar_one())


async def _all_kept_see(store: SqlStore, url: str) -> None:
    """Every kept read connection (and the write one) sees what another client just committed."""
    expected = _outside_count(url)
    held = [store.read() for _ in range(KEEP_READS)]
    repos = [await cm.__aenter__() for cm in held]
    try:
        for repo in repos:
            assert await _count(repo) == expected
            assert await repo.get_request(10**9) is None  # the store.fast path too
    finally:
        for cm in reversed(held):
            await cm.__aexit__(None, None, None)
    async with store.write() as repo:
        assert await _count(repo) == expected


async def _worker(store: SqlStore, rng: random.Random, n: int) -> None:
    kind = rng.choice(["write", "write-raise", "read-core", "read-fast", "read-raise", "read-unconsumed",
                       "read-in-write"])
    if kind.startswith("write"):
        async with store.write() as repo:
            await repo.append("test.w", actor="a@example.com", ts=datetime.now(UTC))
            await asyncio.sleep(rng.random() * 0.002)
            if kind == "write-raise":
                raise Boom
        return
    if kind == "read-in-write":
        async with store.write() as w:
            await w.append("test.w", actor="a@example.com", ts=datetime.now(UTC))
            async with store.read() as r:
                await _count(r)
        return
    async with store.read() as repo:
        if kind == "read-core":
            await _count(repo)
        elif kind == "read-fast":
            await repo.get_request(n)
            await repo.decisions(n)
        elif kind == "read-unconsumed":
            await repo.conn.execute(select(t.audit_events))  # a Result never read
        await asyncio.sleep(rng.random() * 0.002)
        if kind == "read-raise":
            raise Boom


async def _storm(store: SqlStore, seed: int, rounds: int = 200) -> None:
    rng = random.Random(seed)
    tasks = [asyncio.create_task(_worker(store, rng, i)) for i in range(rounds)]
    for _ in range(rounds // 3):
        await asyncio.sleep(rng.random() * 0.003)
        rng.choice(tasks).cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        assert r is None or isinstance(r, (Boom, asyncio.CancelledError)), repr(r)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_storm_of_scopes_cancelled_and_failing_leaves_only_the_kept_connections(
        database_url: str, seed: int) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        await _append(store, "test.warm")
        await _storm(store, seed)
        await asyncio.sleep(0.05)  # cleanups the cancellations scheduled
        assert _checked_out(store) == _kept(store)
        for conn, _ in [*store._kept_reads, *([store._kept_write] if store._kept_write else [])]:
            assert not conn.in_transaction()
        _nothing_held(database_url)
        _outside_append(database_url, "other.process")
        await _all_kept_see(store, database_url)
        async with store.read() as repo:
            assert await _seen(repo) == 1
        assert (await store.verify_audit()).ok
    finally:
        await store.close()


async def test_sqlite_off_the_inline_path_a_read_cancelled_as_it_ends_leaks_no_connection(sqlite_url: str) -> None:
    """aiosqlite's own thread (a URL with a query, ``inline_sqlite=False``): ending a read scope whose Core
    statement autobegan waits for the thread; a cancellation landing then must not strand the connection."""
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url, engine=make_async_engine(sqlite_url, inline_sqlite=False))
    try:
        await _append(store, "test.warm")
        for delay in [0.0, 0.0005, 0.001, 0.002, 0.003, 0.005] * 5:
            async def one() -> None:
                async with store.read() as repo:
                    await _count(repo)
            task = asyncio.create_task(one())
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert _checked_out(store) == _kept(store)
    finally:
        await store.close()


async def test_a_scope_closed_by_generator_exit_gives_back_its_connection(database_url: str) -> None:
    """An async generator reading inside a scope, left after its first row and closed (``aclose``: a
    GeneratorExit at its ``yield``), or dropped and finalized by the loop."""
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        for i in range(3):
            await _append(store, f"test.{i}")

        async def rows(write: bool):  # type: ignore[no-untyped-def]
            async with (store.write() if write else store.read()) as repo:
                for e in await repo.events_by_actor_or_request(["a@example.com"]) or [1, 2, 3]:
                    yield e

        for write in (False, True):
            gen = rows(write)
            await gen.__anext__()
            await gen.aclose()
            gen = rows(write)
            await gen.__anext__()
            del gen  # the loop's asyncgen finalizer closes it
            await asyncio.sleep(0.05)
            cm = store.read()
            await cm.__aenter__()  # a context manager entered and never exited
            del cm
            await asyncio.sleep(0.05)
        await _append(store, "test.after")
        assert _checked_out(store) == _kept(store)
        _nothing_held(database_url)
        async with store.read() as repo:
            assert await _count(repo) == 4
    finally:
        await store.close()


async def test_nested_scopes(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        async with store.write() as w:
            await w.append("test.outer", actor="a@example.com", ts=datetime.now(UTC))
            async with store.read() as r:  # another connection: the write is not committed yet
                assert await _count(r) == 0
        async with store.read() as r:
            assert await _count(r) == 1
            async with store.write() as w:
                await w.append("test.inner", actor="a@example.com", ts=datetime.now(UTC))
            assert await _count(r) == 2  # the read's next statement sees it
            assert await r.get_request(1) is None
        async with store.read() as a, store.read() as b, store.read() as c:  # more than KEEP_READS at once
            assert [await _count(x) for x in (a, b, c)] == [2, 2, 2]
        assert _checked_out(store) == _kept(store) == KEEP_READS + 1
        _nothing_held(database_url)
    finally:
        await store.close()




async def _sessions(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as other:
        return int(other.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid()").fetchone()[0])  # type: ignore[index]


def _sqlite_threads() -> set[int]:
    return {id(t) for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def test_close_while_scopes_run_and_use_after_close(database_url: str) -> None:
    """The scopes running when the store closes, and any begun after, close their connections for good when they
    end: none stays open in the pool the close disposed (a server session; on SQLite a connection's thread,
    which keeps the process from exiting)."""
    upgrade(database_url)
    threads = _sqlite_threads()
    store = SqlStore(database_url)
    await _append(store, "test.warm")
    async with store.read() as r:
        await _count(r)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def held_write() -> None:
        async with store.write() as repo:
            await repo.append("test.during", actor="a@example.com", ts=datetime.now(UTC))
            inside.set()
            await release.wait()

    async def held_read() -> int:
        async with store.read() as repo:
            await release.wait()
            return await _count(repo)

    tasks = [asyncio.create_task(held_write()), asyncio.create_task(held_read())]
    await inside.wait()
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0.05)
    release.set()
    await closing
    assert await tasks[0] is None
    assert await tasks[1] in (1, 2)
    assert _kept(store) == 0
    await _append(store, "test.after")  # a store used after close works, and keeps nothing
    async with store.read() as r:
        assert await _count(r) == 3
    assert _kept(store) == 0
    _nothing_held(database_url)
    await asyncio.sleep(0.05)
    if database_url.startswith("postgresql"):
        assert await _sessions(database_url) == 0
    else:
        assert _sqlite_threads() <= threads
    await store.close()


def _end_every_session(pg_url: str) -> None:
    """What a server restart does to the store's connections."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


async def _fill_kept(store: SqlStore) -> None:
    await _append(store, "test.fill")
    async with store.read() as a, store.read() as b:
        await _count(a)
        await b.get_request(1)
    assert _kept(store) == KEEP_READS + 1


@pytest.mark.parametrize("first", ["read-core", "read-fast", "write"])
async def test_sessions_ended_while_kept_fail_one_scope_at_most(pg_url: str, first: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url)
    try:
        await _fill_kept(store)
        _end_every_session(pg_url)
        await asyncio.sleep(0.2)
        failed = 0
        for kind in [first, "read-core", "read-fast", "write", "read-core", "write"]:
            try:
                if kind == "write":
                    await _append(store, "test.after")
                else:
                    async with store.read() as repo:
                        await (_count(repo) if kind == "read-core" else repo.get_request(1))
            except Exception as exc:
                assert getattr(exc, "connection_invalidated", False), repr(exc)
                failed += 1
        assert failed <= 1
        assert _checked_out(store) == _kept(store)
        _nothing_held(pg_url)
    finally:
        await store.close()


async def test_a_connection_kept_idle_past_the_ping_interval_is_pinged_before_reuse(pg_url: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url, engine=make_async_engine(pg_url, ping_after_idle_s=0.2))
    try:
        await _fill_kept(store)
        await asyncio.sleep(0.4)
        _end_every_session(pg_url)
        await asyncio.sleep(0.2)
        async with store.read() as repo:  # pinged: the dead connection is replaced, the read succeeds
            assert await _count(repo) == 1
        async with store.read() as a, store.read() as b:
            assert await _count(a) == await _count(b) == 1
        await _append(store, "test.after")
        assert _checked_out(store) == _kept(store)
        _nothing_held(pg_url)
    finally:
        await store.close()


async def test_a_kept_connection_used_within_the_ping_interval_is_not_pinged(pg_url: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url, engine=make_async_engine(pg_url, ping_after_idle_s=0.5))
    try:
        await _fill_kept(store)
        kept = {id(c) for c, _ in store._kept_reads}
        for _ in range(4):
            await asyncio.sleep(0.2)  # each use within the interval restarts its idle time
            async with store.read() as repo:
                await _count(repo)
        assert {id(c) for c, _ in store._kept_reads} & kept
    finally:
        await store.close()


_CANCEL_A_LONG_READ = r'''
import asyncio, sys
from datetime import UTC, datetime
from sqlalchemy import text
from store.db import upgrade
from store.repository import SqlStore

LONG_READ = ("SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000) "
             "SELECT x FROM c)")

async def main(url: str, how: str) -> None:
    upgrade(url)
    store = SqlStore(url)
    async with store.write() as repo:
        await repo.set_state("k", {"v": 1}, datetime.now(UTC))
    started = asyncio.Event()

    async def long() -> None:
        async with store.read() as repo:
            started.set()
            await repo.conn.execute(text(LONG_READ))

    task = asyncio.create_task(long())
    await started.wait()
    await asyncio.sleep(0.02)  # past the read budget: the read runs on the connection's thread
    async with store.read() as repo:  # another coroutine's read meanwhile
        assert await repo.get_state("k") == {"v": 1}
    if how == "cancel":
        task.cancel()
    else:
        await store.close()
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0.1)
    async with store.read() as repo:
        assert await repo.get_state("k") == {"v": 1}
    await store.close()
    print("done")

asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


@pytest.mark.parametrize("how", ["cancel", "close"])
def test_a_long_read_on_the_connections_thread_cancelled_or_closed_under(sqlite_url: str, how: str) -> None:
    """The read's caller is cancelled (a client gone, a timeout) or the store closed while the read runs on the
    connection's thread: the connection is thrown away, and its close must wait for the thread, not close the
    SQLite handle under the statement running there (a crash of the whole process)."""
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", _CANCEL_A_LONG_READ, sqlite_url, how], capture_output=True,
                            text=True, timeout=30, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert (result.returncode, result.stdout.strip()) == (0, "done"), result.stderr[-3000:]


async def test_a_repository_used_after_its_scope_ended_is_refused(database_url: str) -> None:
    """A scope's connection, kept, goes to the next scope: a repository kept past its own scope must not write
    through it (outside the write lock and outside any transaction) nor read through it, as it could not when
    every scope closed its connection."""
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        async with store.write() as w:
            await w.append("test.1", actor="a@example.com", ts=datetime.now(UTC))
        async with store.read() as r:
            await r.get_request(1)
        with pytest.raises(ResourceClosedError, match="scope has ended"):
            await w.append("test.late", actor="a@example.com", ts=datetime.now(UTC))
        with pytest.raises(ResourceClosedError, match="scope has ended"):
            await w.set_state("k", {"v": 1}, datetime.now(UTC))
        with pytest.raises(ResourceClosedError, match="scope has ended"):
            await r.get_request(1)
        with pytest.raises(ResourceClosedError, match="scope has ended"):
            await _count(r)
        await _append(store, "test.2")
        _nothing_held(database_url)
        assert _outside_count(database_url) == 2
        assert (await store.verify_audit()).count == 2
    finally:
        await store.close()


async def test_a_store_closed_while_a_read_scope_ends_keeps_nothing(sqlite_url: str) -> None:
    """On aiosqlite's own thread (a URL with a query, ``inline_sqlite=False``) the ROLLBACK that ends a read
    scope whose Core statement autobegan waits for the thread: a store closed meanwhile keeps nothing."""
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url, engine=make_async_engine(sqlite_url, inline_sqlite=False))
    await _append(store, "test.warm")
    closing: list[asyncio.Task[None]] = []
    async with store.read() as repo:
        await _count(repo)
        closing.append(asyncio.create_task(store.close()))  # runs while the scope's ROLLBACK is on the thread
    await closing[0]
    assert _kept(store) == 0
    assert _checked_out(store) == 0


async def test_a_sweep_in_another_process_while_the_app_keeps_its_connections(database_url: str, tmp_path: Any) -> None:
    """``accessbot sweep`` writes while a served app keeps its connections checked out: the sweep is not held up
    by them (no lock or transaction left on them), and the app's next read sees what it recorded."""
    import yaml

    from tests.support import cli, harness

    bob, mark = "bob@example.com", "mark.mgr@example.com"
    async with harness(database_url, tmp_path) as h:
        r = await h.say(bob, "request prod-db-read for 1h because INC-1 hot path")
        assert r.ok and (await h.request(1)).state == "pending", r.text
        store = h.app.store
        assert store._kept_write is not None and store._kept_reads
        data = yaml.safe_load(h.files.directory.read_text())  # Bob's manager, asked at step 1, leaves
        for user in data["users"]:
            if user["email"] == mark:
                user["active"] = False
        h.files.directory.write_text(yaml.safe_dump(data, sort_keys=False))
        result = cli("sweep", db=database_url, files=h.files, timeout=60)
        assert result.returncode == 0, result.stderr + result.stdout
        assert (await h.request(1)).state == "failed"  # on a kept read connection, at once
        assert len(await h.events("request.failed")) == 1
        async with store.write() as repo:  # on the kept write connection
            await repo.set_state("test.after-sweep", {"v": 1}, datetime.now(UTC))
        async with store.read() as repo:
            assert await repo.get_state("test.after-sweep") == {"v": 1}
        _nothing_held(database_url)


async def test_a_write_cancelled_while_waiting_for_another_process_s_write_lock(sqlite_url: str) -> None:
    """SQLite: BEGIN IMMEDIATE meets another process's write lock and waits on the connection's thread; the write
    is cancelled there. The connection is thrown away once its BEGIN is done (SQLite cannot interrupt a wait for
    a lock), and the next write goes through."""
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url)
    try:
        await _fill_kept(store)
        other = sqlite3.connect(_sqlite_path(sqlite_url), isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        task = asyncio.create_task(_append(store, "test.cancelled"))
        await asyncio.sleep(0.1)  # its BEGIN IMMEDIATE waits on the connection's thread
        task.cancel()
        asyncio.get_running_loop().call_later(0.3, other.execute, "ROLLBACK")  # the other process commits later
        with pytest.raises(asyncio.CancelledError):
            await task
        other.close()
        await _append(store, "test.next")
        await asyncio.sleep(0.1)
        assert _checked_out(store) == _kept(store)
        _nothing_held(sqlite_url)
        assert [e.type async for e in store.audit_events()] == ["test.fill", "test.next"]
    finally:
        await store.close()


async def test_sessions_ended_in_the_middle_of_a_storm(pg_url: str) -> None:
    """A server restart while scopes run and others are kept: the scopes that met it fail with the connection
    invalidated, nothing is left checked out or held, and the next read and write succeed."""
    upgrade(pg_url)
    store = SqlStore(pg_url)
    try:
        await _fill_kept(store)
        rng = random.Random(7)
        tasks = [asyncio.create_task(_worker(store, rng, i)) for i in range(150)]
        await asyncio.sleep(0.05)
        await asyncio.to_thread(_end_every_session, pg_url)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            assert r is None or isinstance(r, Boom) or getattr(r, "connection_invalidated", False), repr(r)
        assert any(getattr(r, "connection_invalidated", False) for r in results)  # some scopes met it
        await _append(store, "test.after")
        async with store.read() as repo:
            assert await _count(repo) == _outside_count(pg_url)
        assert _checked_out(store) == _kept(store)
        _nothing_held(pg_url)
        await _all_kept_see(store, pg_url)
    finally:
        await store.close()


async def test_a_scope_that_outlived_the_break_does_not_keep_its_connection(pg_url: str) -> None:
    """A read had done its statements when the server ended every session; another scope then met the break (the
    kept connections are dropped); the first read ends cleanly afterwards: its connection, whose session is gone
    too, is not kept for the next scope (a full run once saw the next read fail on it)."""
    upgrade(pg_url)
    store = SqlStore(pg_url)
    try:
        await _fill_kept(store)
        async with store.read() as outlived:
            await _count(outlived)  # its session is ended below, after its last statement
            await asyncio.to_thread(_end_every_session, pg_url)
            with pytest.raises(Exception) as met:
                async with store.read() as other:
                    await _count(other)
            assert getattr(met.value, "connection_invalidated", False), repr(met.value)
        assert _checked_out(store) == _kept(store)
        _nothing_held(pg_url)
        await _all_kept_see(store, pg_url)
    finally:
        await store.close()
