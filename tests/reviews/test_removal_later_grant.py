"""A removal ends the access the item certifies (SPEC §7 Close). When the grant the snapshot saw (REQ-1) ended
during the campaign and a later grant of its own chain (REQ-2) holds the membership at the removal, the item is
not recorded as removed: it is `not removed`, and its outcome names the grant that holds the membership now."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


async def test_an_item_whose_grant_a_later_grant_replaced_is_not_recorded_removed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"]
        assert alice.request_id == 1
        h.clock.advance(minutes=31)
        await h.app.service.sweep()  # REQ-1 expires
        assert (await h.request(1)).state == "expired"
        reply = await h.say("alice@example.com", "request prod-db-read for 1h because INC-8 page")
        assert reply.ok, reply.text
        assert (await h.request(2)).state == "active", (await h.request(2)).state
        assert "alice@example.com" in await h.members("sg-prod-db-read")
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {alice.number} because no longer on call")
        assert reply.ok, reply.text
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert reply.ok, reply.text
        if "sign-off" in reply.text:
            assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        h.clock.advance(minutes=1)
        await h.app.service.sweep()
        async with h.app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == alice.number)
        still = "alice@example.com" in await h.members("sg-prod-db-read")
        assert not (still and item.state == "removed"), (item.state, item.outcome, (await h.request(2)).state)
