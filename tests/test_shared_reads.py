"""Reads of one request at once share a round trip (handlers/shared_reads.py), and none answers with what was read
before its caller asked: a card refreshed just after a decision committed shows the decision."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event

from handlers.queries import status
from handlers.shared_reads import SharedReads
from tests.support import harness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


class Table:
    """A value read as of the moment the read starts, answered once ``release`` is set (a round trip)."""

    def __init__(self) -> None:
        self.value = 0
        self.started = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.started += 1
        seen = self.value  # the read's snapshot: what was committed when it began
        await self.release.wait()
        return seen


async def test_a_caller_never_gets_a_read_sent_before_it_asked() -> None:
    shared, table = SharedReads(), Table()
    first = asyncio.ensure_future(shared.get("k", table.read))
    await asyncio.sleep(0)
    assert table.started == 1
    table.value = 1  # a commit after the first read began, before the others ask
    later = [asyncio.ensure_future(shared.get("k", table.read)) for _ in range(50)]
    await asyncio.sleep(0)
    assert table.started == 1  # they wait for the next read, not this one's answer
    table.release.set()
    assert await first == 0  # read before the commit: it asked before it
    assert await asyncio.gather(*later) == [1] * 50  # every one of them sees the commit
    assert table.started == 2 and shared.sent == 2 and shared.shared == 50
    table.value = 2
    assert await shared.get("k", table.read) == 2  # nothing on its way: a read of its own


async def test_other_keys_are_read_apart_and_a_failure_reaches_every_caller_sharing_it() -> None:
    shared, table = SharedReads(), Table()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await table.release.wait()
        raise RuntimeError("the database went away")

    first = asyncio.ensure_future(shared.get("a", table.read))
    other = asyncio.ensure_future(shared.get("b", table.read))
    await asyncio.sleep(0)
    assert table.started == 2  # another key: not shared
    waiting = [asyncio.ensure_future(shared.get("a", failing)) for _ in range(3)]
    await asyncio.sleep(0)
    table.release.set()
    assert await first == 0 and await other == 0
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in results), results
    assert await shared.get("a", table.read) == 0  # the next read is sent again


async def test_a_waiter_hanging_up_does_not_stop_the_read_for_the_others() -> None:
    shared, table = SharedReads(), Table()
    first = asyncio.ensure_future(shared.get("k", table.read))
    await asyncio.sleep(0)
    quitter = asyncio.ensure_future(shared.get("k", table.read))
    stayer = asyncio.ensure_future(shared.get("k", table.read))
    await asyncio.sleep(0)
    quitter.cancel()
    first.cancel()  # the caller of the read on its way hangs up too
    await asyncio.sleep(0)
    table.value = 5
    table.release.set()
    assert await stayer == 5
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert shared._running == set() and shared._next == {}  # nothing left behind


async def test_cards_refreshing_at_once_share_the_request_read_and_see_what_committed_before(database_url,
                                                                                           tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        reads: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if "FROM requests" in statement and "LEFT OUTER JOIN decisions" in statement:
                reads.append(statement)

        engine = h.app.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            replies = await asyncio.gather(*(status(h.app.deps, MARK, 1, events=False) for _ in range(30)))
            assert all(r is not None and r.request is not None and r.request.state == "pending" for r in replies)
            if h.app.store.backend == "postgresql":  # reads on their way together (SQLite answers each at once)
                assert 1 <= len(reads) <= 3, len(reads)
            else:
                assert len(reads) >= 1
            assert (await h.say(MARK, "approve REQ-1")).ok
            after = await asyncio.gather(*(status(h.app.deps, BOB, 1, events=False) for _ in range(30)))
            assert {r.request.state for r in after if r is not None and r.request is not None} == {"active"}
        finally:
            event.remove(engine, "before_cursor_execute", count)


def test_a_read_left_on_its_way_by_a_closed_loop_is_not_waited_for_by_the_next_loop() -> None:
    """A command runs its own event loop; one that closed with a read on its way (cancelled at shutdown) leaves
    nothing a later loop's callers would wait on forever."""
    shared = SharedReads()

    async def leave_one_on_its_way() -> None:
        never = asyncio.Event()

        async def hanging() -> int:
            await never.wait()
            return 0

        left = [asyncio.ensure_future(shared.get("k", hanging))]
        await asyncio.sleep(0)
        left.append(asyncio.ensure_future(shared.get("k", hanging)))  # a waiter for the next read
        await asyncio.sleep(0)
        assert not any(t.done() for t in left)  # the loop closes with both on their way

    asyncio.run(leave_one_on_its_way())

    async def later() -> int:
        async def read() -> int:
            return 7

        return await asyncio.wait_for(shared.get("k", read), 5)

    assert asyncio.run(later()) == 7


async def test_what_callers_sharing_a_read_get_cannot_be_changed_for_the_others(database_url, tmp_path) -> None:
    """Each caller gets its own copy of the request and of the decisions' list; the decision records in it are
    shared, and cannot be changed."""
    import dataclasses

    from handlers.queries import shared_request

    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 x")).ok
        assert (await h.say(MARK, "approve REQ-1")).ok
        (one, mine), (other, theirs) = await asyncio.gather(*(shared_request(h.app.deps, 1) for _ in range(2)))
        assert one is not other and mine is not theirs and mine == theirs and len(mine) == 1
        with pytest.raises(dataclasses.FrozenInstanceError):
            mine[0].decision = "denied"  # type: ignore[misc]
        mine.clear()
        one.state = "denied"
        assert len(theirs) == 1 and other.state == "pending"
