"""Two sweeps (two processes) end the same grant of a holder whose re-add the provider refused for good (SPEC §3.6):
the grant ends once, the finding closes ``ended`` once, and the holder and each of the security team are told once.

Alice's Okta group membership is removed behind the bot's back; the re-add Okta refuses (400) is given up, and the
grant ends instead. This process's sweep has read what decides that (the re-add given up) and is about to write the
end when another process's whole sweep runs, ends the grant and tells everyone; this sweep then finds the grant ended
and the finding resolved, and must not tell anyone a second time. Through Okta's stand-in; the notices are counted in
the outbox (each written with the end that decides it, handlers/outbox.py) and as delivered; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, select

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.sweeps import sweep
from store import schema as t
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group

ALICE = "alice@example.com"
ENDED = "the grant is ended"


def _before_the_next_write_after(h: Harness, settings: Settings, okta: OktaStandIn, notifier: RecordingNotifier,
                                 ready: Callable[[str, Any], bool]) -> tuple[Callable[[], None], list[Any]]:
    """Once ``ready`` (statement, parameters) has been true for a statement of this process, run another process's
    whole sweep just before this process's next write takes the write lock. Returns the listener's remover and the
    list that gets the other sweep's report (or its exception)."""
    engine = h.app.store.engine.sync_engine
    state = {"ready": False, "fired": False}
    ran: list[Any] = []

    async def other_sweep() -> None:
        try:
            async with build_app(settings, clock=h.clock, notifier=notifier) as other:
                ran.append(await sweep(other.deps))
        except BaseException as exc:  # told to the test, not lost in the thread
            ran.append(exc)

    def listener(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if state["fired"]:
            return
        if not state["ready"]:
            state["ready"] = ready(statement, parameters)
            return
        if statement.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in statement:
            state["fired"] = True
            okta.clear_path_faults()  # the removal behind the end finds her not a member: done
            worker = threading.Thread(target=asyncio.run, args=(other_sweep(),))
            worker.start()
            worker.join(120)

    event.listen(engine, "before_cursor_execute", listener)
    return lambda: event.remove(engine, "before_cursor_execute", listener), ran


def _recorded_add_failed(statement: str, parameters: Any) -> bool:
    return statement.startswith("INSERT INTO audit_events") and "membership.add_failed" in str(parameters)


async def _told_once(h: Harness, notifiers: list[RecordingNotifier]) -> None:
    """The grant ended once, the finding resolved once, and each person told of it once (written and delivered)."""
    assert (await h.request(1)).state == "revoked"
    assert len(await h.events("grant.revoked")) == 1
    (resolved,) = await h.events("drift.resolved")
    assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
    async with h.app.store.read() as repo:
        rows = (await repo.conn.execute(select(t.notice_outbox.c.recipient, t.notice_outbox.c.text))).all()
    written = Counter(r.recipient for r in rows if ENDED in r.text)
    team = sorted(h.app.deps.policy.security_members())
    assert written == Counter([ALICE, *team]), written
    delivered = Counter(n.recipient for notifier in notifiers for n in notifier.notices
                        for line in n.text.splitlines() if ENDED in line)
    assert delivered == Counter([ALICE, *team]), delivered


async def _race(database_url: str, tmp_path: Path, *, queued_first: bool) -> None:
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path)
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, notifier, theirs = MutableClock(), RecordingNotifier(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: on call
            assert r.ok and (await h.request(1)).state == "active", r.text
            path = f"/groups/{gid}/users/{alice}"
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
                okta.path_faults[path] = Fault("status", status=503 if queued_first else 400)
            h.clock.advance(minutes=1)
            if queued_first:  # the re-add is queued (503), then refused for good (400) at a later sweep's retry
                await sweep(h.app.deps)
                assert not await h.events("membership.add_failed") and (await h.request(1)).state == "active"
                okta.path_faults[path] = Fault("status", status=400)
                h.clock.advance(minutes=5)
                seen = {"failed": False}

                def ready(statement: str, parameters: Any) -> bool:
                    # the retry is given up, then the drift pass reads the re-add (finish_restores)
                    seen["failed"] = seen["failed"] or _recorded_add_failed(statement, parameters)
                    return seen["failed"] and "drift_readd:1" in str(parameters)
            else:  # refused at the first try (restore_holders)
                ready = _recorded_add_failed
            remove, ran = _before_the_next_write_after(h, settings, okta, theirs, ready)
            try:
                await sweep(h.app.deps)
            finally:
                remove()
            assert len(ran) == 1 and not isinstance(ran[0], BaseException), ran
            assert len(await h.events("membership.add_failed")) == 1
            await _told_once(h, [notifier, theirs])
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)  # and nothing more later
            await _told_once(h, [notifier, theirs])


async def test_a_readd_refused_at_a_later_retry_ends_the_grant_told_once_when_two_sweeps_end_it(
        database_url: str, tmp_path: Path) -> None:
    await _race(database_url, tmp_path, queued_first=True)


async def test_a_readd_refused_at_once_ends_the_grant_told_once_when_another_sweep_ends_it_first(
        database_url: str, tmp_path: Path) -> None:
    await _race(database_url, tmp_path, queued_first=False)
