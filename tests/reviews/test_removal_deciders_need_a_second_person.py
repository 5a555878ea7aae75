"""Whoever decided a removal list (or closed the campaign that made it) never releases it alone (SPEC §7).

The sign-off of a removal list is the second pair of eyes on it ("one person once, as a request's chain", and in
a request's chain the person asking never counts as an approver): the reviewer who made a final `remove`
decision on the list is left out of every sign-off step, refused when they answer, and a chain nobody else can
sign fails closed. SQLite and PostgreSQL."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.reviews.test_own_access import on_the_list
from tests.support import harness

SAM, SASHA, PAT = "sam.sec@example.com", "sasha.sec@example.com", "pat.lead@example.com"


async def test_the_reviewer_who_decided_a_removal_cannot_sign_off_the_list_alone(database_url, tmp_path):
    """Example policy (fallback `{any_of: security}`, `sign_off: [{any_of: security}]`): sam.sec, as the fallback
    reviewer of pat.lead's item, decides `remove`, closes the campaign and says `approve RV-1`. He is refused
    (`command.refused` "decided a removal on the list"), was never asked, and pat.lead keeps the access until
    sasha.sec, the other member of the security team, signs the list off."""
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        pat = items[PAT]
        assert pat.reviewer == "group:security"  # pat.lead's manager cannot review: the fallback, the security team
        for reviewer in ("mark.mgr@example.com", PAT, SAM):
            assert (await h.say(reviewer, "keep RV-1 all")).ok
        assert (await h.say(SAM, f"remove RV-1 {pat.number} because not needed")).ok
        reply = await h.say(SAM, "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        asked = (await h.events("review.signoff_requested"))[-1]["data"]["approvers"]
        assert asked == [SASHA], asked

        reply = await h.say(SAM, "approve RV-1")
        assert not reply.ok and reply.rule == "own-decision", reply.text
        assert PAT in await h.members("sg-prod-db-read")
        refused = (await h.events("command.refused"))[-1]
        assert refused["actor"] == SAM and refused["data"]["reason"] == "decided a removal on the list"

        reply = await h.say(SASHA, "approve RV-1")
        assert reply.ok and "sign-off approved" in reply.text, reply.text
        assert PAT not in await h.members("sg-prod-db-read")


async def test_a_sign_off_only_the_decider_could_give_fails_closed(database_url, tmp_path):
    """`sign_off: [{user: sasha.sec}]` and sasha.sec decided the removal herself: nobody else may sign that step,
    so the close fails the sign-off closed (as a request chain with nobody left) and nothing is removed."""
    async with on_the_list(database_url, tmp_path, f"[{{user: {SASHA}}}]", who=PAT, by=SASHA) as h:
        reply = await h.say(SASHA, "review close RV-1")
        assert reply.ok and "sign-off failed" in reply.text and "nothing is removed" in reply.text, reply.text
        assert (await h.events("review.closed"))[-1]["data"]["signoff"] == "failed"
        assert not (await h.say(SASHA, "approve RV-1")).ok
        assert PAT in await h.members("sg-prod-db-read")
