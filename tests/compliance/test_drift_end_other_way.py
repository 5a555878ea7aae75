"""A grant that ends some other way (a release, its expiry in another process's sweep) while a sweep is about to end
it because its holder's drift re-add was refused (SPEC §3.6): the finding closes ``ended`` once, and the holder and
the security team are told what happened (the grant had ended: released, expired), not that the bot ended it
because the provider refused to add them back.

Alice's Okta group membership is removed behind the bot's back; Okta refuses the re-add for good (400). Between
the refusal being recorded and this sweep writing the end, another process releases the grant (Alice's command) or
runs its whole sweep after the grant's expiry. Through Okta's stand-in; the notices are read in the outbox (each
written with what decides it, handlers/outbox.py); on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.bootstrap import build_app
from handlers.sweeps import sweep
from store import schema as t
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, okta_group

ALICE = "alice@example.com"


@pytest.mark.parametrize("how", ["released", "expired"])
async def test_a_grant_ended_otherwise_before_the_refused_readd_ends_it_is_told_as_it_ended(
        database_url: str, tmp_path: Path, how: str) -> None:
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
                okta.path_faults[path] = Fault("status", status=400)
            h.clock.advance(minutes=1)

            engine = h.app.store.engine.sync_engine
            state = {"ready": False, "fired": False}
            ran: list[Any] = []

            async def other_process() -> None:
                try:
                    async with build_app(settings, clock=h.clock, notifier=theirs) as other:
                        if how == "released":
                            person = await other.service.identify(ALICE)
                            assert person is not None
                            ran.append(await other.service.handle_text(person, "release REQ-1"))
                        else:
                            h.clock.advance(minutes=30)  # past the grant's end
                            ran.append(await sweep(other.deps))
                except BaseException as exc:  # told to the test, not lost in the thread
                    ran.append(exc)

            def listener(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
                if state["fired"]:
                    return
                if not state["ready"]:  # the refusal is recorded: the next write is the end of the grant
                    state["ready"] = statement.startswith("INSERT INTO audit_events") and \
                        "membership.add_failed" in str(parameters)
                    return
                if statement.startswith("BEGIN IMMEDIATE") or "pg_advisory_xact_lock" in statement:
                    state["fired"] = True
                    okta.clear_path_faults()  # the removal behind the end finds her not a member: done
                    worker = threading.Thread(target=asyncio.run, args=(other_process(),))
                    worker.start()
                    worker.join(120)

            event.listen(engine, "before_cursor_execute", listener)
            try:
                await sweep(h.app.deps)
            finally:
                event.remove(engine, "before_cursor_execute", listener)
            assert len(ran) == 1 and not isinstance(ran[0], BaseException), ran
            assert (await h.request(1)).state == how
            assert not await h.events("grant.revoked"), "the sweep ended a grant that had ended already"
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved

            async with h.app.store.read() as repo:
                rows = (await repo.conn.execute(select(t.notice_outbox.c.recipient, t.notice_outbox.c.text))).all()
            drift = [r for r in rows if "D-1: " in r.text]
            assert not [r.text for r in drift if "the grant is ended" in r.text or "refused" in r.text], drift
            told = f"D-1: {ALICE} held REQ-1 but was not in okta/{gid}: REQ-1 had ended ({how})"
            team = sorted(h.app.deps.policy.security_members())
            assert Counter(r.recipient for r in drift if told in r.text) == Counter([ALICE, *team]), drift
