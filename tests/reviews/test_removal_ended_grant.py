"""A removal decided on an item held via a grant (REQ-1) whose grant ended before the close, while the person is
back in the group outside the bot (a standing membership now): the live check finds the membership, and the
removal takes it out as a standing one (membership.removed reason review). The item is never recorded 'removed'
with a removed_at for a removal that did not run."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


async def test_ended_grant_but_member_still_in_group_is_not_recorded_removed_blind(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"]
        assert alice.request_id == 1
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice.number} because no longer on call")).ok
        assert (await h.say("mark.mgr@example.com", "keep RV-1 " + " ".join(
            str(i.number) for i in items.values() if i.reviewer == alice.reviewer and i.number != alice.number))).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        h.clock.advance(minutes=31)
        await h.app.service.sweep()  # REQ-1 expires: alice leaves the group with it
        assert (await h.request(1)).state == "expired"
        assert "alice@example.com" not in await h.members("sg-prod-db-read")
        await h.app.deps.providers["directory"].add_member("sg-prod-db-read", "alice@example.com")  # out of band
        async with h.app.store.read() as repo:  # every item decided: the campaign closed into its sign-off
            assert (await repo.get_campaign(1)).state == "signoff"
        reply = await h.say("sam.sec@example.com", "approve RV-1")
        assert reply.ok, reply.text
        async with h.app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == alice.number)
        still_there = "alice@example.com" in await h.members("sg-prod-db-read")
        removed_events = [e for e in await h.events("membership.removed")
                          if e["data"].get("user", e["data"].get("email")) == "alice@example.com"
                          or "alice@example.com" in str(e["data"])]
        if item.state == "removed":
            assert not still_there and removed_events, (
                f"item recorded removed at {item.removed_at} ({item.outcome!r}) but no removal ran: alice still in "
                f"the group={still_there}, membership.removed events={removed_events}")
