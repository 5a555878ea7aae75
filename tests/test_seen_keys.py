"""An inbound event key (a Slack request's signature or event id, a Teams activity) is recorded once: of two
deliveries at once exactly one is first, and a key seen stays seen. On PostgreSQL the record does not wait for
the write lock that serialises the audit chain's writers (a burst of chat requests queued on it, one write
transaction each); on SQLite it is a write as any other. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg

from store.db import upgrade
from store.repository import WRITE_LOCK_KEY, SqlStore

AT = datetime(2026, 11, 23, 8, tzinfo=UTC)


async def test_of_many_deliveries_at_once_one_is_first(database_url: str) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    try:
        firsts = await asyncio.gather(*(store.first_seen(f"slack:sig:{i % 5}", AT) for i in range(60)))
        assert sum(firsts) == 5, firsts
        assert not await store.first_seen("slack:sig:3", AT)
        assert await store.first_seen("slack:sig:new", AT)
        async with store.write() as repo:  # the sweep forgets them as before
            assert await repo.forget_seen(datetime(2027, 1, 1, tzinfo=UTC)) == 6
        assert await store.first_seen("slack:sig:3", AT)  # forgotten: new again
    finally:
        await store.close()


async def test_a_delivery_is_recorded_while_another_process_holds_the_write_lock(pg_url: str) -> None:
    upgrade(pg_url)
    store = SqlStore(pg_url)
    try:
        with psycopg.connect(pg_url) as other:  # another process's write transaction, holding the lock
            other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            assert await asyncio.wait_for(store.first_seen("teams:activity:1", AT), 5)
            assert not await asyncio.wait_for(store.first_seen("teams:activity:1", AT), 5)
            other.rollback()
        async with store.write() as repo:  # the write lock is free again, and the key is there
            assert not await repo.first_seen("teams:activity:1", AT)
    finally:
        await store.close()
