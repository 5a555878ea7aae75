"""A grant whose end has passed but whose expiry is not recorded yet, when the drift pass would end it because its
holder's re-add was refused for good (SPEC §3.6): it ends as what it is, expired (``grant.expired``, the holder's
"expired" notice, as the expiry sweep writes them), not as a drift revocation; the finding closes ``ended`` and says
the grant had ended (expired).

Alice's Okta group membership is removed behind the bot's back; her re-add is queued (Okta answers 503), then
refused for good (400) at the server's expiry job's retry while the grant still runs. The server's drift job runs
after the grant's end and before the expiry job has recorded it. Through Okta's stand-in and the server's own jobs
(bot/scheduler.py); on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.scheduler import run_sweep
from handlers.sweeps import sweep
from store import schema as t
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import okta_holder

ALICE = "alice@example.com"


async def test_a_grant_past_its_end_whose_readd_was_refused_ends_expired(database_url: str, tmp_path: Path) -> None:
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # 30 minutes, auto-approved
            gid, path = okta_app.gid, okta_app.path
            with okta.lock:
                okta.members[gid].remove(okta_app.user)  # by hand at Okta, not through the bot
                okta.path_faults[path] = Fault("status", status=503)
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)  # D-1, the re-add queued
            assert not await h.events("membership.add_failed") and (await h.request(1)).state == "active"
            okta.path_faults[path] = Fault("status", status=400)
            h.clock.advance(minutes=5)
            await run_sweep(h.app, "expiry")  # retries the re-add: refused for good; the grant still runs
            assert len(await h.events("membership.add_failed")) == 1 and (await h.request(1)).state == "active"
            okta.clear_path_faults()

            h.clock.advance(minutes=25)  # past the grant's end; the expiry job has not run since
            await run_sweep(h.app, "drift")
            record = await h.request(1)
            assert record.state == "expired", record.state
            assert not await h.events("grant.revoked"), "a grant past its end was revoked as drift"
            (expired,) = await h.events("grant.expired")
            assert expired["request_id"] == "REQ-1" and expired["data"]["expires_at"], expired
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1"), resolved
            to_alice = [n.text for n in h.notifier.to(ALICE)]
            assert f"REQ-1 expired: you were removed from {gid}." in to_alice, to_alice
            told = f"D-1: {ALICE} held REQ-1 but was not in okta/{gid}: REQ-1 had ended (expired)"
            assert any(told in text for text in to_alice), to_alice
            async with h.app.store.read() as repo:
                texts = (await repo.conn.execute(select(t.notice_outbox.c.text))).scalars().all()
            assert not [x for x in texts if "the grant is ended" in x or "refused to add" in x], texts

            await run_sweep(h.app, "expiry")  # nothing left to expire
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            assert len(await h.events("grant.expired")) == 1 and len(await h.events("drift.resolved")) == 1
            assert ALICE not in okta.member_emails(gid)
