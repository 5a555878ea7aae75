"""Who decided a removal is read from the audit chain as well as from the `review_decisions` rows when the
sign-off and the brake leave the deciders out (SPEC §7). The rows may be rewritten by the serving role (every
table but `audit_events`, docs/audit-integrity.md); the chain may not. A decider whose row was rewritten to
name somebody else is still left out of the sign-off and refused (`own-decision`). SQLite and PostgreSQL."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness
from tests.tamper import tamper

SAM, SASHA, PAT, MARK = "sam.sec@example.com", "sasha.sec@example.com", "pat.lead@example.com", "mark.mgr@example.com"
REWRITE = "UPDATE review_decisions SET actor = :actor WHERE item = :item AND decision = 'remove'"


async def _sam_removes_pat(h) -> int:  # type: ignore[no-untyped-def]
    items = await started(h)
    pat = items[PAT].number
    for reviewer in (MARK, PAT, SAM):
        assert (await h.say(reviewer, "keep RV-1 all")).ok
    assert (await h.say(SAM, f"remove RV-1 {pat} because not needed")).ok
    return pat


async def test_a_decider_rewritten_before_the_close_is_still_not_asked_nor_counted(database_url, tmp_path):
    """sam.sec decided pat.lead's removal; the row is rewritten to say mark.mgr decided it. The close still asks
    only sasha.sec, and sam.sec's `approve RV-1` is refused as his own decision: pat.lead keeps the access."""
    async with harness(database_url, tmp_path) as h:
        pat = await _sam_removes_pat(h)
        tamper(database_url, (REWRITE, {"actor": MARK, "item": pat}))
        reply = await h.say(SAM, "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        asked = (await h.events("review.signoff_requested"))[-1]["data"]["approvers"]
        assert asked == [SASHA], asked
        reply = await h.say(SAM, "approve RV-1")
        assert not reply.ok and reply.rule == "own-decision", reply.text
        assert PAT in await h.members("sg-prod-db-read")


async def test_a_decider_rewritten_after_the_close_is_still_refused(database_url, tmp_path):
    """The rewrite comes after the close asked sasha.sec: sam.sec's signature is refused all the same, and
    sasha.sec's goes through."""
    async with harness(database_url, tmp_path) as h:
        pat = await _sam_removes_pat(h)
        assert (await h.say(SAM, "review close RV-1")).ok
        tamper(database_url, (REWRITE, {"actor": MARK, "item": pat}))
        reply = await h.say(SAM, "approve RV-1")
        assert not reply.ok and reply.rule == "own-decision", reply.text
        assert PAT in await h.members("sg-prod-db-read")
        reply = await h.say(SASHA, "approve RV-1")
        assert reply.ok and "sign-off approved" in reply.text, reply.text
