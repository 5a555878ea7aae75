"""A drift re-add whose grant ends while it is still queued (SPEC §3.6): it is not carried out. The add never
reaches the provider once the grant has ended (no moment where the member is back in the group without a grant,
the removal behind it is not left waiting), the drop is recorded with why (``membership.add_dropped``), and the
finding closes ``ended``, not ``restored``. Through Okta's stand-in, which answers the first adds 503; on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event

from bot.bootstrap import build_app
from handlers.compliance.settle import restore_holders
from handlers.records import DriftRecord
from handlers.sweeps import sweep
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, RecordingNotifier, okta_holder

ALICE, SAM = "alice@example.com", "sam.sec@example.com"


@asynccontextmanager
async def _readd_queued(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Harness, OktaStandIn, str, str]]:
    """Alice's 30-minute grant of an Okta group, Alice removed there by hand, and a sweep whose re-add Okta refused
    for now (503): the re-add is queued."""
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, alice = okta_app.gid, okta_app.user
            path = f"/groups/{gid}/users/{alice}"
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
                okta.path_faults[path] = Fault("status", status=503)
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)
            assert ALICE not in okta.member_emails(gid)
            (detected,) = await h.events("drift.detected")
            assert detected["data"]["request_id"] == "REQ-1"
            assert len(okta.received("PUT", path)) >= 1 and not await h.events("membership.added")
            okta.clear_path_faults()  # Okta would add her now
            yield h, okta, gid, path


async def _ended_not_restored(h: Harness, okta: OktaStandIn, gid: str, path: str, puts: int, why: str) -> None:
    """What the end of the grant left: no add reached Okta since it ended, the re-add dropped with why, and the
    finding closed ``ended`` by the next sweep."""
    assert len(okta.received("PUT", path)) == puts, "the re-add reached Okta after the grant ended"
    assert ALICE not in okta.member_emails(gid)
    assert not await h.events("membership.added")
    (dropped,) = await h.events("membership.add_dropped")
    assert (dropped["data"]["user"], dropped["data"]["reason"]) == (ALICE, "drift")
    assert (dropped["data"]["id"], dropped["data"]["request_id"]) == ("D-1", "REQ-1")
    assert why in dropped["data"]["why"], dropped
    h.clock.advance(minutes=2)
    await sweep(h.app.deps)
    await sweep(h.app.deps)
    (resolved,) = await h.events("drift.resolved")
    assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
    assert len(okta.received("PUT", path)) == puts and ALICE not in okta.member_emails(gid)
    assert not await h.events("membership.added") and len(await h.events("membership.add_dropped")) == 1


async def test_a_queued_readd_whose_grant_expired_is_dropped(database_url, tmp_path: Path):
    async with _readd_queued(database_url, tmp_path) as (h, okta, gid, path):
        puts = len(okta.received("PUT", path))
        h.clock.advance(minutes=30)  # past the grant's end: the sweep's retry of the re-add comes after it
        report = await sweep(h.app.deps)
        assert report.expired == ["REQ-1"] and (await h.request(1)).state == "expired"
        await _ended_not_restored(h, okta, gid, path, puts, "REQ-1 expired")


async def test_a_queued_readd_whose_grant_was_released_is_dropped(database_url, tmp_path: Path):
    async with _readd_queued(database_url, tmp_path) as (h, okta, gid, path):
        puts = len(okta.received("PUT", path))
        h.clock.advance(minutes=2)  # the re-add is due again
        r = await h.say(ALICE, "release REQ-1")
        assert r.ok, r.text
        # the removal the release planned is not left behind the dropped re-add: it is done with the command
        assert len(okta.received("DELETE", path)) == 1
        await _ended_not_restored(h, okta, gid, path, puts, "REQ-1 is no longer active (released)")


async def test_a_readd_dropped_because_the_grant_ended_before_it_was_tried_is_said_dropped(database_url,
                                                                                           tmp_path: Path):
    """The grant's end passes between restore_holders' check that it runs and the re-add's first try: the re-add
    is dropped at once, and the line restore_holders gives for it says so, not that it is queued and retried."""
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, alice = okta_app.gid, okta_app.user
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
            h.clock.advance(minutes=29)
            puts = len(okta.received("PUT", f"/groups/{gid}/users/{alice}"))
            record = await h.request(1)
            finding = DriftRecord(provider="okta", group=gid, email=ALICE, first_seen=h.clock.at, kind="missing")
            async with h.app.store.write() as repo:  # as a sweep records it before putting her back
                await repo.add_drift(finding)
            engine = h.app.store.engine.sync_engine
            state = {"ready": False, "fired": False}

            def listener(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                if state["fired"]:
                    return
                if not state["ready"]:  # the re-add is planned: its first try is the next write
                    state["ready"] = statement.startswith("INSERT INTO compliance_state") and \
                        "drift_readd:1" in str(parameters)
                    return
                if statement.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in statement:
                    state["fired"] = True
                    h.clock.advance(minutes=2)  # past the grant's end

            event.listen(engine, "before_cursor_execute", listener)
            try:
                lines = await restore_holders(h.app.deps, [(finding, record)])
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert state["fired"]
            (dropped,) = await h.events("membership.add_dropped")
            assert "REQ-1 expired" in dropped["data"]["why"], dropped
            assert len(okta.received("PUT", f"/groups/{gid}/users/{alice}")) == puts, "the re-add reached Okta"
            (line,) = lines
            assert "queued" not in line and "retried" not in line, line
            assert "adding them back was dropped (REQ-1 expired at " in line, line


async def test_a_readd_left_queued_after_its_grant_ended_during_the_call_is_said_to_be_dropped(database_url,
                                                                                              tmp_path: Path):
    """Alice releases her grant (another process) while the sweep's re-add is at Okta, which answers 503: no grant
    backs the re-add any more, so the next try drops it. The sweep's line says so, not that it is queued and
    retried; nobody is told it is queued; and the next sweep drops it and closes the finding ``ended``."""
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, path = okta_app.gid, okta_app.path
            with okta.lock:
                okta.members[gid].remove(okta_app.user)  # by hand at Okta, not through the bot
                okta.path_faults[path] = Fault("status", status=503)
            h.clock.advance(minutes=1)
            engine = h.app.store.engine.sync_engine
            state = {"planned": False, "writes": 0, "fired": False}
            ran: list[object] = []

            async def release() -> None:
                async with build_app(okta_app.settings, clock=h.clock, notifier=RecordingNotifier()) as other:
                    person = await other.service.identify(ALICE)
                    assert person is not None
                    ran.append(await other.service.handle_text(person, "release REQ-1"))

            def listener(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                if state["fired"]:
                    return
                if not state["planned"]:  # the re-add is planned: the next write claims it, the one after records
                    state["planned"] = statement.startswith("INSERT INTO compliance_state") and \
                        "drift_readd:1" in str(parameters)
                    return
                if statement.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in statement:
                    state["writes"] += 1
                    if state["writes"] == 2:  # Okta has answered 503; the answer is not recorded yet
                        state["fired"] = True
                        worker = threading.Thread(target=asyncio.run, args=(release(),))
                        worker.start()
                        worker.join(120)

            event.listen(engine, "before_cursor_execute", listener)
            try:
                report = await sweep(h.app.deps)
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert state["fired"] and len(ran) == 1 and getattr(ran[0], "ok", False), ran
            assert (await h.request(1)).state == "released"
            (line,) = report.drift_settled
            assert "retried" not in line, line
            assert "adding them back was queued (pending), but REQ-1 is no longer active (released): it is dropped " \
                   "at its next try; the finding closes ended." in line, line
            assert not [n for n in h.notifier.notices if "queued" in n.text], h.notifier.notices

            okta.clear_path_faults()
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            (dropped,) = await h.events("membership.add_dropped")
            assert "REQ-1 is no longer active (released)" in dropped["data"]["why"], dropped
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
            assert ALICE not in okta.member_emails(gid) and not await h.events("membership.added")
