"""Round trips a write makes: the audit chain's head is read once per transaction, however many events it appends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event

from store.db import upgrade
from store.repository import SqlStore


async def test_one_head_read_per_transaction_and_the_chain_still_verifies(database_url) -> None:
    upgrade(database_url)
    store = SqlStore(database_url)
    statements: list[str] = []

    def seen(conn, cursor, sql, params, context, many) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(sql.split()))

    try:
        async with store.write() as repo:
            await repo.append("test.first", actor="a@example.com", ts=datetime.now(UTC))
        event.listen(store.engine.sync_engine, "before_cursor_execute", seen)
        async with store.write() as repo:
            for i in range(3):
                await repo.append("test.more", actor="a@example.com", ts=datetime.now(UTC), data={"i": i})
        async with store.write() as repo:
            await repo.append("test.last", actor="a@example.com", ts=datetime.now(UTC))
        event.remove(store.engine.sync_engine, "before_cursor_execute", seen)
        heads = [s for s in statements if s.startswith("SELECT audit_events.seq, audit_events.hash")]
        inserts = [s for s in statements if s.startswith("INSERT INTO audit_events")]
        assert (len(heads), len(inserts)) == (2, 4), statements
        result = await store.verify_audit()
        assert result.ok and result.count == 5, result
        seqs = [e.seq async for e in store.audit_events()]
        assert seqs == [1, 2, 3, 4, 5]
    finally:
        await store.close()


async def test_a_read_on_postgresql_is_one_round_trip_and_an_idle_dropped_connection_is_replaced(pg_url) -> None:
    """No ping, BEGIN or COMMIT around a read on a connection used moments ago; one idle for longer is
    pinged first, and replaced when the server dropped it meanwhile."""
    import asyncio

    import psycopg

    from store.db import make_async_engine
    from tests.wire import WireCounter

    upgrade(pg_url)
    with WireCounter(pg_url) as wire:
        store = SqlStore(wire.url, engine=make_async_engine(wire.url, ping_after_idle_s=0.5))
        try:
            for _ in range(2):  # the first one connects and prepares the statement
                async with store.read() as repo:
                    assert await repo.get_request(1) is None
            before = wire.trips
            async with store.read() as repo:
                assert await repo.get_request(1) is None
            assert wire.trips - before == 1
            with psycopg.connect(pg_url, autocommit=True) as admin:
                killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
            assert killed and killed[0] >= 1
            await asyncio.sleep(0.6)
            async with store.read() as repo:
                assert await repo.get_request(1) is None
        finally:
            await store.close()
