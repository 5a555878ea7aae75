"""A removal the release skips because the member left meanwhile is recorded in the audit chain (SPEC §3.5:
"Every state change appends one event to an append-only, hash-chained log"; §7: the certification record an
auditor can check).

``release`` (handlers/reviews/close.py) now sets such an item to "not removed" ("left ... before the removal:
nothing to remove") by ``save_item`` alone, with no event. The chain then shows a signed-off removal list,
``review.closed`` {removed: 1}, and neither a ``membership.removed`` nor anything saying why this item was not
removed: the evidence pack's review_items.csv (read from the tables) says "not removed", the chain it is
checked against says nothing. A correct product appends an event for the item (e.g. ``review.item_gone`` or
a ``review.removal_skipped`` {item, user, group})."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


async def test_a_removal_skipped_at_release_leaves_a_trace_in_the_chain(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        for who in ("mark.mgr@example.com", "sam.sec@example.com", "pat.lead@example.com"):
            assert (await h.say(who, "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
        assert (await h.say("sasha.sec@example.com", "review close RV-1")).ok
        seq = len(await h.events())
        h.files.edit_directory(lambda d: d["groups"]["sg-prod-db-read"].remove("bob@example.com"))
        assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        async with h.app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == bob)
        assert item.state == "not removed", item
        later = (await h.events())[seq:]
        about = [e["type"] for e in later if (e.get("data") or {}).get("item") == bob
                 or (e.get("data") or {}).get("user") == "bob@example.com"]
        assert about, [e["type"] for e in later]
