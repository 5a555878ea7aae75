"""A burst of clicks on PostgreSQL opens its connections once: the pool keeps every connection it opened (up to
``ACCESSBOT_DB_POOL_SIZE``, 30 by default, the cap the pool had before), where overflow connections used to be
closed at their return and opened again at the next burst (a new server process each on PostgreSQL's side). Counted
with the pool's ``connect`` event, not timed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event

from bot.settings import load_settings
from store.db import POOL_SIZE
from tests.support import harness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_a_second_burst_opens_no_connection(pg_url: str, tmp_path) -> None:
    async with harness(pg_url, tmp_path) as h:
        await h.say(BOB, "request prod-db-read for 1h because INC-1 x")
        pool = h.app.store.engine.sync_engine.pool
        assert pool.size() == POOL_SIZE and pool._max_overflow == 0  # type: ignore[attr-defined]
        opened: list[Any] = []
        event.listen(pool, "connect", lambda *a: opened.append(a))
        first = await asyncio.gather(*(h.say(MARK, "status REQ-1") for _ in range(80)))
        assert all(r.ok for r in first)
        assert 0 < len(opened) <= POOL_SIZE
        opened.clear()
        second = await asyncio.gather(*(h.say(MARK, "status REQ-1") for _ in range(80)))
        assert all(r.ok for r in second)
        assert opened == []


async def test_the_pool_size_is_a_setting(pg_url: str, tmp_path) -> None:
    settings = load_settings({"ACCESSBOT_DB_POOL_SIZE": "12"}, dotenv=None)
    assert settings.db_pool_size == 12
    from bot.bootstrap import build_app

    async with build_app(_with(settings, pg_url, tmp_path)) as app:
        assert app.store.engine.sync_engine.pool.size() == 12


def _with(settings: Any, url: str, tmp_path: Any) -> Any:
    from tests.support import copy_examples

    files = copy_examples(tmp_path)
    return settings.with_overrides(database_url=url, policy=str(files.policy), directory=str(files.directory))


@pytest.mark.parametrize("raw", ["0", "1", "-3", "ten", "١٢", "5000", "1.5"])
def test_a_pool_size_that_is_no_count_of_connections_is_refused(raw: str) -> None:
    """One connection is refused too: a write holds its connection while it reads on another (the policy of a
    round, the safety brake's state), so with a pool of one every write waited for the pool until it gave up."""
    with pytest.raises(SystemExit, match="ACCESSBOT_DB_POOL_SIZE must be a number of connections from 2 to 1000"):
        load_settings({"ACCESSBOT_DB_POOL_SIZE": raw}, dotenv=None)


def test_serve_workers_say_when_their_pools_could_outgrow_the_server(pg_url: str) -> None:
    """``serve --workers N`` warns when N pools of ACCESSBOT_DB_POOL_SIZE could ask PostgreSQL for more
    connections than it takes (the test cluster takes 300 less its reserved ones)."""
    from bot.settings import Settings
    from bot.workers import connection_budget
    from store.db import connection_room

    room = connection_room(pg_url)
    assert room is not None and 250 < room <= 300
    assert connection_budget(Settings(database_url=pg_url), 2) is None
    said = connection_budget(Settings(database_url=pg_url), 11)
    assert said is not None and f"11 workers x {POOL_SIZE} connections (ACCESSBOT_DB_POOL_SIZE) = 330" in said
    assert f"Lower ACCESSBOT_DB_POOL_SIZE to {room // 11}" in said
    assert connection_budget(Settings(database_url=pg_url, db_pool_size=room // 11), 11) is None
    # so many workers that a pool fitting them would be one connection (it could serve nothing): fewer workers
    said = connection_budget(Settings(database_url=pg_url, db_pool_size=2), room)
    assert said is not None and "Lower ACCESSBOT_DB_POOL_SIZE" not in said
    assert f"Run at most {room // 2} workers" in said
    assert connection_room("sqlite:///never-opened.db") is None


async def test_a_pool_of_two_serves_requests_decisions_and_refreshes(pg_url: str, tmp_path) -> None:
    """The smallest pool the setting takes: a request, a burst of card refreshes with a decision among them, and
    the clicks on the decided step (to the write lock, one at a time: no room to answer them from a read)."""
    settings = load_settings({"ACCESSBOT_DB_POOL_SIZE": "2"}, dotenv=None)
    from bot.bootstrap import build_app
    from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples

    files = copy_examples(tmp_path)
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(_with(settings, pg_url, tmp_path), clock=clock, notifier=notifier) as app:
        h = Harness(app, clock, notifier, files)
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 x")).ok
        replies = await asyncio.gather(*(h.say(MARK, "status REQ-1") for _ in range(10)),
                                       *(h.say(MARK, "approve REQ-1") for _ in range(6)))
        assert all(r.ok for r in replies[:10])
        assert sorted(str(r.rule) for r in replies[10:]) == ["None"] + ["already-decided"] * 5
        assert len(await h.events("approval.granted")) == 1
