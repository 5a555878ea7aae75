"""What goes wrong under the click's statements on the driver connection (store/fast.py) ends as it
would through SQLAlchemy's own execution: a cancelled write leaves nothing behind in the pool, a
server restart replaces every pooled connection, a bad value or a missing parameter is refused
before anything is sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, StatementError

from store.db import make_async_engine, upgrade
from store.repository import _GET_REQUEST, WRITE_LOCK_KEY, SqlStore
from tests.wire import WireCounter


def _end_every_session(pg_url: str) -> None:
    """What a server restart does to the pool's connections."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def _after(pg_url: str) -> tuple[list[str], bool, int]:
    """The events recorded, whether the write lock is free, and the sessions left inside a transaction."""
    with psycopg.connect(pg_url, autocommit=True) as other:
        types = [r[0] for r in other.execute("SELECT type FROM audit_events ORDER BY seq")]
        free = other.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_LOCK_KEY,)).fetchone()[0]  # type: ignore[index]
        other.execute("SELECT pg_advisory_unlock_all()")
        stuck = other.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                              "AND state LIKE 'idle in transaction%'").fetchone()[0]  # type: ignore[index]
    return types, free, stuck


async def _append(store: SqlStore, type_: str) -> None:
    async with store.write() as repo:
        await repo.append(type_, actor="a@example.com", ts=datetime.now(UTC))


async def test_a_write_cancelled_while_its_begin_is_on_the_wire_leaves_nothing_in_the_pool(pg_url: str) -> None:
    upgrade(pg_url)
    with WireCounter(pg_url) as wire:
        store = SqlStore(wire.url, engine=make_async_engine(wire.url, pool_size=1, max_overflow=0))
        try:
            await _append(store, "test.warm")  # connected, statements prepared
            wire.delay = 0.3
            task = asyncio.create_task(_append(store, "test.cancelled"))
            await asyncio.sleep(0.1)  # a write's first answer awaited is its BEGIN's
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.5)
            wire.delay = 0.0
            await _append(store, "test.next")  # on the pool's one connection: a new one, not the half-begun
        finally:
            await store.close()
    assert _after(pg_url) == (["test.warm", "test.next"], True, 0)


async def test_a_write_cancelled_while_waiting_for_the_write_lock(pg_url: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url, engine=make_async_engine(pg_url, pool_size=1, max_overflow=0))
    try:
        await _append(store, "test.warm")
        with psycopg.connect(pg_url) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            task = asyncio.create_task(_append(store, "test.cancelled"))
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            holder.rollback()
        await _append(store, "test.next")
        assert (await store.verify_audit()).count == 2
    finally:
        await store.close()
    assert _after(pg_url) == (["test.warm", "test.next"], True, 0)


async def test_a_server_restart_replaces_every_pooled_connection(pg_url: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url)
    try:
        async with store.read() as a, store.read() as b:  # two connections in the pool
            await a.get_request(1)
            await b.get_request(1)
        _end_every_session(pg_url)
        await asyncio.sleep(0.2)
        with pytest.raises(DBAPIError) as first:
            async with store.read() as repo:
                await repo.get_request(1)
        assert first.value.connection_invalidated
        async with store.read() as repo:  # the other one, used moments ago, was dropped with it
            assert await repo.get_request(1) is None
    finally:
        await store.close()


async def test_a_connection_lost_inside_a_write_fails_that_write_only(pg_url: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url)
    try:
        await _append(store, "test.warm")
        with pytest.raises(DBAPIError) as caught:
            async with store.write() as repo:
                await repo.append("test.lost", actor="a@example.com", ts=datetime.now(UTC))
                _end_every_session(pg_url)
                await asyncio.sleep(0.2)
                await repo.get_request(1)
        assert caught.value.connection_invalidated
        await _append(store, "test.after")
        assert (await store.verify_audit()).count == 2
    finally:
        await store.close()
    assert _after(pg_url)[0] == ["test.warm", "test.after"]


async def test_a_bad_value_or_a_missing_parameter_is_refused_before_anything_is_sent(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    try:
        async with store.read() as repo:
            with pytest.raises(StatementError, match="naive datetime"):  # as SQLAlchemy wraps a converter's error
                await repo.find_requests(states=("ACTIVE",), expires_before=datetime(2026, 1, 1))
            with pytest.raises(StatementError, match="required for bind parameter 'rid'"):
                await repo._rows(_GET_REQUEST, {})
            assert sent == []
            assert await repo.get_request(1) is None  # and the connection still serves
    finally:
        await store.close()


async def test_a_write_begins_before_its_first_statement_on_sqlite(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    store = SqlStore(sqlite_url)
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2].split()[0]))
    try:
        async with store.write() as repo:
            await repo.get_request(1)
            assert repo.conn.sync_connection.connection.driver_connection._conn.in_transaction  # type: ignore[union-attr]
        assert sent[:2] == ["BEGIN", "SELECT"], sent
    finally:
        await store.close()
