"""A review's removal that ends a grant whose extension waits on its chain closes that extension's cards: each
person its open step asked is told, through the outbox written with the close, that it closed and why (the access
review that revoked the grant); on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness
from tests.test_notice_outbox import _outbox

ALICE = "alice@example.com"


async def test_a_review_removal_closes_the_pending_extensions_cards(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        reply = await h.say(ALICE, "extend REQ-1 by 30m because the migration runs long")
        assert reply.ok and (await h.request(1)).ext_duration is not None, reply.text
        [asked] = [e for e in await h.events("approval.requested") if e["data"].get("extension")]
        approvers = asked["data"]["approvers"]
        alice = items[ALICE].number
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {alice} because not on call any more")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 1 2")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all because needed")).ok
        assert (await h.say("mark.mgr@example.com", "keep RV-1 4")).ok
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        assert (await h.request(1)).state == "revoked"
        rows = [r for r in await _outbox(h) if r["kind"] == "outcome" and r["request_id"] == 1]
        assert sorted((r["recipient"], r["text"]) for r in rows) == [
            (who, "The extension of REQ-1 waiting on you was closed: the grant was revoked by access review RV-1.")
            for who in sorted(approvers)], rows
        # written with the close, and sent once it is committed: the sign-off's command delivers them
        for who in approvers:
            assert [n.text for n in h.notifier.to(who) if n.kind == "outcome"] == [rows[0]["text"]]
