"""A sign-off step asks its active approvers when it opens, and a chain fails closed only when it can no longer
be completed. A campaign whose first step opened before the asked people were kept counts the policy's list for
that open step, not for a later all_of step: that one, when it opens, asks the people active then. One approver
of a later step who is inactive today does not fail the sign-off (the same campaign with the asked people
recorded waits and completes)."""

from __future__ import annotations

from sqlalchemy import text

from tests.reviews.test_close import sign_off_harness

CHAIN = "[{any_of: security}, {all_of: dba}]"


async def _legacy(h) -> None:
    async with h.app.store.engine.begin() as conn:  # as a campaign whose first step asked before 0013
        await conn.execute(text("UPDATE review_campaigns SET signoff_asked = NULL"))
    async with h.app.store.read() as repo:
        assert (await repo.get_campaign(1)).signoff_asked is None


async def test_legacy_campaign_not_failed_for_an_inactive_approver_of_a_step_not_open_yet(database_url, tmp_path):
    async with sign_off_harness(database_url, tmp_path, CHAIN) as h:
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "waits for sign-off" in reply.text, reply.text
        await _legacy(h)
        h.files.set_active("dev.dba@example.com", False)  # step 2 will ask dana only
        await h.app.service.sweep()
        async with h.app.store.read() as repo:
            campaign = await repo.get_campaign(1)
        assert (campaign.state, campaign.signoff) != ("closed", "failed"), "failed closed though completable"
        assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        reply = await h.say("dana.dba@example.com", "approve RV-1")
        assert reply.ok, reply.text
        await h.app.service.sweep()
        assert "bob@example.com" not in await h.members("sg-prod-db-read")


async def test_control_same_campaign_with_asked_people_recorded_completes(database_url, tmp_path):
    async with sign_off_harness(database_url, tmp_path, CHAIN) as h:
        reply = await h.say("sam.sec@example.com", "review close RV-1")
        assert reply.ok and "waits for sign-off" in reply.text, reply.text
        h.files.set_active("dev.dba@example.com", False)
        await h.app.service.sweep()
        async with h.app.store.read() as repo:
            campaign = await repo.get_campaign(1)
        assert (campaign.state, campaign.signoff) != ("closed", "failed")
        assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        reply = await h.say("dana.dba@example.com", "approve RV-1")
        assert reply.ok, reply.text
        await h.app.service.sweep()
        assert "bob@example.com" not in await h.members("sg-prod-db-read")
