"""The live check and grants (SPEC §7): an item held through a grant that still runs is certified as the grant
(its holder, out of the group for a moment, is put back by the sweep); once the grant has ended (expired,
released, revoked) it took its membership with it, and the item is judged as any membership: out of the group
before a decision, it is gone (review.item_gone), a keep is refused, and the close's default does not
"decide" it."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


async def _expire_alice(h) -> int:  # type: ignore[no-untyped-def]
    items = await started(h)
    alice = items["alice@example.com"]
    assert alice.request_id == 1  # held via REQ-1 (30 minutes)
    h.clock.advance(minutes=31)
    await h.app.service.sweep()  # REQ-1 expires: alice leaves the group with it
    assert (await h.request(1)).state == "expired"
    assert "alice@example.com" not in await h.members("sg-prod-db-read")
    return alice.number


async def test_reviewer_cannot_certify_a_grant_membership_that_ended(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        alice = await _expire_alice(h)
        await h.say("mark.mgr@example.com", "review RV-1")  # opens the batch: the live check
        reply = await h.say("mark.mgr@example.com", f"keep RV-1 {alice}")
        gone = [e["data"]["item"] for e in await h.events("review.item_gone")]
        assert alice in gone and not reply.ok, (reply.text, gone)


async def test_close_does_not_default_and_record_removed_a_grant_membership_that_ended(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        alice = await _expire_alice(h)
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {alice + 1 if alice == 3 else 3}")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        reply = await h.say("sasha.sec@example.com", "review close RV-1")  # alice's item undecided
        assert reply.ok, reply.text
        if "sign-off" in reply.text:
            assert (await h.say("sam.sec@example.com", "approve RV-1")).ok, "approve"
        async with h.app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == alice)
            final = await repo.final_decisions(1)
        (closed,) = await h.events("review.closed")
        assert (item.state, alice in final, closed["data"]["gone"]) == ("gone", False, 1), \
            (item.state, item.outcome, item.removed_at, final.get(alice), closed["data"])
