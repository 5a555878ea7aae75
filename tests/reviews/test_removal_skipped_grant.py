"""A decided removal the close does not run because a later grant (REQ-2) holds the membership is recorded in the
chain (review.removal_skipped, its reason naming REQ-2), as one whose member had left: an auditor holding only
audit.jsonl sees why it did not happen."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


async def test_removal_not_run_because_a_later_grant_holds_it_is_in_the_audit_chain(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice = items["alice@example.com"]
        assert alice.request_id == 1
        h.clock.advance(minutes=31)
        await h.app.service.sweep()  # REQ-1 expires
        assert (await h.say("alice@example.com", "request prod-db-read for 1h because INC-8 page")).ok
        assert (await h.request(2)).state == "active"
        for who in ("mark.mgr@example.com", "sam.sec@example.com", "pat.lead@example.com"):
            assert (await h.say(who, "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice.number} because no longer on call")).ok
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert reply.ok, reply.text
        if "sign-off" in reply.text:
            assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        async with h.app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == alice.number)
        assert item.state == "not removed" and "REQ-2" in (item.outcome or ""), (item.state, item.outcome)
        said = [e for e in await h.events() if e["type"].startswith("review.")
                and e["data"].get("item") == alice.number and e["type"] != "review.decided"]
        assert said, (f"the store says item {alice.number} was not removed ({item.outcome!r}) but no review.* event "
                      "in the audit chain records it (no review.removal_skipped)")
