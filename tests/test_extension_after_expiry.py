"""An extension approved after the grant's expiry instant (before a sweep recorded the expiry)."""

from __future__ import annotations

from datetime import timedelta

from tests.support import T0, harness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_extension_approved_after_expiry_does_not_revive_the_grant(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        assert (await h.say(MARK, "approve REQ-1")).ok
        rec = await h.request(1)
        assert rec.state == "active" and rec.expires_at == T0 + timedelta(hours=1)
        # the requester asks in time
        h.clock.advance(minutes=50)
        r = await h.say(BOB, "extend REQ-1 by 2h because release night")
        assert r.ok, r.text
        # the server was down: no sweep ran; the manager approves 40 minutes after the grant expired
        h.clock.advance(minutes=50)
        r = await h.say(MARK, "approve REQ-1")
        assert "failed: the grant expired at" in r.text, r.text
        assert [e["data"]["rule"] for e in await h.events("request.failed")] == ["expired"]
        # the grant ended at T0+1h (SPEC §3.4); an extension approved afterwards must not revive it
        await h.app.service.sweep()
        rec = await h.request(1)
        members = await h.members("sg-staging-admin")
        assert rec.state == "expired" and BOB not in members, (r.text, rec.state, rec.expires_at, members)


async def test_a_grant_past_its_expiry_is_revived_by_an_extension_asked_afterwards(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok
        assert (await h.say(MARK, "approve REQ-1")).ok
        h.clock.advance(hours=3)  # two hours past its expiry; no sweep ran yet (downtime, a failing sweep)
        r = await h.say(BOB, "extend REQ-1 by 4h because release night")
        asked_ok = r.ok
        assert r.rule == "expired" and "cannot be extended" in r.text, r.text
        r = await h.say(MARK, "approve REQ-1")
        await h.app.service.sweep()  # "caught up at once after downtime" (SPEC §3.4)
        rec = await h.request(1)
        members = await h.members("sg-staging-admin")
        assert not asked_ok and rec.state == "expired" and BOB not in members, (
            asked_ok, r.text, rec.state, rec.expires_at, members)
