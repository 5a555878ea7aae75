"""A campaign that opened its all_of sign-off step before the people each step asked were kept (no
review_campaigns.signoff_asked) counts the policy's list. A member of that list who turns inactive while it
waits means the step can no longer be completed: it fails closed (SPEC §2.1, §7), at the next sweep or at the
remaining member's signature, and never waits for ever."""

from __future__ import annotations

from sqlalchemy import text

from tests.reviews.test_close import sign_off_harness


async def _legacy(h) -> None:
    async with h.app.store.engine.begin() as conn:  # as a campaign that asked before 0012 is stored
        await conn.execute(text("UPDATE review_campaigns SET signoff_asked = NULL"))
    async with h.app.store.read() as repo:
        assert (await repo.get_campaign(1)).signoff_asked is None


async def test_legacy_all_of_signoff_member_left_fails_closed_at_the_sweep(database_url, tmp_path):
    async with sign_off_harness(database_url, tmp_path, "[{all_of: security}]") as h:
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "waits for sign-off" in reply.text, reply.text
        await _legacy(h)
        h.files.set_active("sasha.sec@example.com", False)
        await h.app.service.sweep()
        await h.app.service.sweep()
        async with h.app.store.read() as repo:
            campaign = await repo.get_campaign(1)
        assert (campaign.state, campaign.signoff) == ("closed", "failed"), (campaign.state, campaign.signoff)


async def test_legacy_all_of_signoff_member_left_fails_closed_at_the_other_signature(database_url, tmp_path):
    async with sign_off_harness(database_url, tmp_path, "[{all_of: security}]") as h:
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        await _legacy(h)
        h.files.set_active("sasha.sec@example.com", False)
        reply = await h.say("sam.sec@example.com", "approve RV-1")
        await h.app.service.sweep()
        async with h.app.store.read() as repo:
            campaign = await repo.get_campaign(1)
        assert (campaign.state, campaign.signoff) == ("closed", "failed"), (reply.text, campaign.state)
