"""A review's removal of a membership held through a grant must end the grant, even when the person was taken
out of the group by hand before the removal ran (SPEC §7 Close: "a grant behind the item ends with
grant.revoked reason review").

The release's live check (handlers/reviews/close.py ``release``) treats "not in the group right now" as
"nothing to remove" and marks the item "not removed" without touching the grant behind it. The grant stays
active, so the next sweep puts the holder back into the group (removed_holder: readd, §3.6): the reviewer's
and the sign-off's decision to remove the access is silently undone. A correct product revokes the grant
(``grant.revoked`` reason ``review``) whatever the group shows, and the holder is not added back."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


async def test_removed_grant_holder_who_was_out_of_the_group_is_not_put_back(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"]
        assert alice.request_id == 1  # held via REQ-1 (30 minutes, on call)
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {alice.number} because no longer on call")
        assert reply.ok, reply.text
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert reply.ok and "sign-off" in reply.text, reply.text
        # someone takes alice out of the group by hand while the list waits for its sign-off
        await h.app.deps.providers["directory"].remove_member("sg-prod-db-read", "alice@example.com")
        assert "alice@example.com" not in await h.members("sg-prod-db-read")
        reply = await h.say("sam.sec@example.com", "approve RV-1")
        assert reply.ok, reply.text

        record = await h.request(1)
        revoked = [e for e in await h.events("grant.revoked") if e.get("request_id") == "REQ-1"]
        h.clock.advance(minutes=1)
        await h.app.service.sweep()
        assert "alice@example.com" not in await h.members("sg-prod-db-read"), \
            "the sweep put alice back: the grant the review removed still runs"
        assert record.state == "revoked" and [e["data"]["reason"] for e in revoked] == ["review"], \
            (record.state, revoked)


async def test_undecided_grant_holder_out_of_the_group_at_close_still_loses_the_grant(database_url, tmp_path):
    """The close's live check (``close_campaign`` / ``_left_undecided``) makes an undecided item "gone" when its
    person is not in the group at that instant, so ``if_not_reviewed: remove`` never reaches the grant behind
    it: REQ-1 keeps running uncertified and the next sweep adds alice back. A grant-backed item is not gone
    while its grant runs; the default must end the grant (grant.revoked reason review)."""
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {bob}")).ok  # alice's item stays undecided
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        await h.app.deps.providers["directory"].remove_member("sg-prod-db-read", "alice@example.com")
        reply = await h.say("sasha.sec@example.com", "review close RV-1")  # if_not_reviewed: remove
        assert reply.ok, reply.text
        if "sign-off" in reply.text:
            assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        h.clock.advance(minutes=1)
        await h.app.service.sweep()
        assert "alice@example.com" not in await h.members("sg-prod-db-read"), \
            "the sweep put alice back: the grant the review never certified still runs"
        assert (await h.request(1)).state == "revoked"
