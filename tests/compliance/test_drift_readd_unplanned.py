"""A drift sweep stopped after it recorded a holder's finding and before it planned the re-add (SPEC §3.6): the
finding is committed in one transaction and the re-add planned in the next, so a stop between them (a crash, a
deploy) leaves an open finding with no ``drift_readd`` state. A later sweep plans it (the holder is put back once,
the finding resolves ``restored``, the holder and the security team are told once, nothing is escalated), even
with another process's sweep deciding the same at once; a grant that ended meanwhile closes the finding ``ended``
with that grant's request id. The provider is Okta's stand-in; the stop is raised at the statement that records
the re-add (the database's own statement hook). On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.compliance.findings import readd_key
from handlers.sweeps import sweep
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group

ALICE, SAM = "alice@example.com", "sam.sec@example.com"
LANDED = "added back"


@asynccontextmanager
async def _stopped_before_the_plan(database_url: str, tmp_path: Path, policy_tail: str = ""
                                   ) -> AsyncIterator[tuple[Harness, OktaStandIn, str, Settings]]:
    """Alice holds REQ-1 of an Okta group and is removed there by hand; a sweep records D-1 and is stopped at the
    statement that would plan her re-add."""
    with OktaStandIn() as okta:
        okta_app = okta_group(okta, database_url, tmp_path, policy_tail=policy_tail)
        gid, alice, files, settings = okta_app.gid, okta_app.user, okta_app.files, okta_app.settings
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            r = await h.say(ALICE, "request prod-db-read for 1h because INC-7 page")  # auto-approved: on call
            assert r.ok and (await h.request(1)).state == "active", r.text
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
                okta.requests.clear()
            h.clock.advance(minutes=1)

            def stop(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                if statement.lstrip().upper().startswith("INSERT INTO PROVIDER_OPS"):
                    raise asyncio.CancelledError  # the process is stopped here: nothing of this transaction stays

            engine = h.app.store.engine.sync_engine
            event.listen(engine, "before_cursor_execute", stop)
            try:
                with pytest.raises(asyncio.CancelledError):
                    await sweep(h.app.deps)
            finally:
                event.remove(engine, "before_cursor_execute", stop)
            (detected,) = await h.events("drift.detected")
            assert (detected["data"]["id"], detected["data"]["request_id"]) == ("D-1", "REQ-1")
            async with h.app.store.read() as repo:
                assert await repo.get_state(readd_key(1)) is None
                assert [d.id for d in await repo.open_drift()] == [1]
            assert _puts(okta, gid) == 0  # the grant's own add is forgotten: what follows counts from here
            yield h, okta, gid, settings


def _puts(okta: OktaStandIn, gid: str) -> int:
    return len(okta.received("PUT", f"/groups/{gid}/users/"))


async def _told_once(h: Harness) -> None:
    assert len([n for n in h.notifier.to(ALICE, "status") if LANDED in n.text]) == 1
    assert len([n for n in h.notifier.to(SAM, "drift") if LANDED in n.text and "REQ-1" in n.text]) == 1


async def test_a_later_sweep_puts_back_a_holder_whose_readd_was_never_planned(database_url, tmp_path):
    async with _stopped_before_the_plan(database_url, tmp_path) as (h, okta, gid, _):
        h.clock.advance(minutes=5)
        report = await sweep(h.app.deps)
        assert report.drift == []  # nothing new: D-1 is the finding
        assert okta.member_emails(gid) == [ALICE] and _puts(okta, gid) == 1
        (added,) = await h.events("membership.added")
        assert (added["data"]["user"], added["data"]["reason"]) == (ALICE, "drift")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["id"], resolved["data"]["resolution"], resolved["data"]["request_id"]) == (
            "D-1", "restored", "REQ-1")
        await _told_once(h)
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)  # nothing more
        assert _puts(okta, gid) == 1 and len(await h.events("drift.resolved")) == 1
        assert len(await h.events("drift.detected")) == 1 and not await h.events("drift.escalated")
        await _told_once(h)
        assert (await h.app.store.verify_audit()).ok


async def test_past_the_sla_the_holder_is_put_back_and_not_escalated(database_url, tmp_path):
    async with _stopped_before_the_plan(database_url, tmp_path, "\nsafety: {drift_sla: 10m}\n") as (h, okta, gid, _):
        h.clock.advance(minutes=15)  # the finding is past the SLA when the sweep that puts Alice back runs
        await sweep(h.app.deps)
        assert okta.member_emails(gid) == [ALICE] and _puts(okta, gid) == 1
        (resolved,) = await h.events("drift.resolved")
        assert resolved["data"]["resolution"] == "restored"
        assert not await h.events("drift.escalated")
        assert not [n for n in h.notifier.notices if "still open past the SLA" in n.text]
        await _told_once(h)


async def test_a_grant_that_ended_meanwhile_closes_the_finding_ended_with_its_request(database_url, tmp_path):
    async with _stopped_before_the_plan(database_url, tmp_path) as (h, okta, gid, _):
        h.clock.advance(hours=1)  # REQ-1 expires before the next sweep
        await sweep(h.app.deps)
        assert (await h.request(1)).state == "expired"
        h.clock.advance(minutes=1)  # the expiry's own removal explained the membership at that sweep
        await sweep(h.app.deps)
        assert _puts(okta, gid) == 0 and not await h.events("membership.added")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"].get("request_id")) == ("ended", "REQ-1")


def _after_reading(ran: list[bool], key: str, action: Callable[[], None]) -> Callable[..., None]:
    """A statement listener that runs ``action`` once, right after this process has read the compliance state
    ``key`` (and found none)."""

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if not ran and "compliance_state" in statement and key in str(parameters):
            ran.append(True)
            action()

    return after


async def test_two_sweeps_at_once_put_the_holder_back_once(database_url, tmp_path):
    async with _stopped_before_the_plan(database_url, tmp_path) as (h, okta, gid, settings):
        h.clock.advance(minutes=5)
        other_notifier = RecordingNotifier()

        async def other_sweep() -> None:
            async with build_app(settings, clock=h.clock, notifier=other_notifier) as other:
                await sweep(other.deps)

        def meanwhile() -> None:  # another process's sweep, start to end, after this one found no re-add planned
            worker = threading.Thread(target=asyncio.run, args=(other_sweep(),))
            worker.start()
            worker.join(120)

        engine, ran = h.app.store.engine.sync_engine, []
        after = _after_reading(ran, readd_key(1), meanwhile)
        event.listen(engine, "after_cursor_execute", after)
        try:
            await sweep(h.app.deps)
        finally:
            event.remove(engine, "after_cursor_execute", after)
        assert ran == [True]
        assert okta.member_emails(gid) == [ALICE] and _puts(okta, gid) == 1
        assert len(await h.events("membership.added")) == 1
        (resolved,) = await h.events("drift.resolved")
        assert resolved["data"]["resolution"] == "restored"
        told = [n for n in h.notifier.notices + other_notifier.notices if LANDED in n.text]
        assert len([n for n in told if n.recipient == ALICE]) == 1, told
        assert len([n for n in told if n.recipient == SAM]) == 1, told
