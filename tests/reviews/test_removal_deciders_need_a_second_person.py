"""Whoever decided a removal list (or closed the campaign that made it) never releases it alone (SPEC §7).

The sign-off of a removal list is the second pair of eyes on it ("one person once, as a request's chain", and in
a request's chain the person asking never counts as an approver): the reviewer who made a final `remove`
decision on the list is left out of every sign-off step, refused when they answer, and a chain nobody else can
sign fails closed. Above `safety.max_removals` a sign-off is always required; for a review without `sign_off`
the brake's `resume removals` is that second person, so the member who closed the campaign (every undecided item
defaulted to `remove`) or decided its removals cannot resume its pause. SQLite and PostgreSQL."""

from __future__ import annotations

from tests.compliance.test_review_brake import _limit
from tests.reviews.test_decisions import started
from tests.reviews.test_own_access import on_the_list
from tests.reviews.test_start import REVIEW
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


async def test_above_max_removals_the_member_who_closed_early_cannot_release_the_removals_alone(database_url,
                                                                                              tmp_path):
    """SPEC §7: a sign-off is "always required above safety.max_removals". With no `sign_off` in the review, the
    brake's `resume removals` stands in for it; sam.sec closed the campaign on its first day (every undecided item
    defaulted to `remove`), so his `resume removals` is refused, names sasha.sec as who may resume, removes
    nothing; sasha's resume runs the removals at the next sweep."""
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 3, sign_off=False)
        await started(h)
        reply = await h.say(SAM, "review close RV-1")  # nobody decided anything yet
        assert reply.ok and "6 removal(s) paused by the safety brake" in reply.text, reply.text
        resumed = await h.say(SAM, "resume removals")
        assert not resumed.ok and resumed.rule == "own-removals", resumed.text
        assert "review RV-1" in resumed.text and SASHA in resumed.text, resumed.text
        await h.app.service.sweep(drift=False)
        assert await h.events("membership.removed") == []
        assert (await h.events("command.refused"))[-1]["data"]["pause"] == "review RV-1"

        resumed = await h.say(SASHA, "resume removals")
        assert resumed.ok, resumed.text
        await h.app.service.sweep(drift=False)
        assert len(await h.events("membership.removed")) == 5  # the 6th is alice's grant: grant.revoked


async def test_the_spelled_resume_still_resumes_the_pauses_the_person_may_resume(database_url, tmp_path):
    """`resume removals` resumes every pause in force: sam.sec closed RV-1 and sasha.sec RV-2, both above the
    limit. Sam's resume releases RV-2 and says RV-1 stays paused (his own close); RV-1 waits for sasha."""
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 3, sign_off=False)
        await started(h)
        assert (await h.say(SASHA, f"review start {REVIEW}")).ok
        assert "paused by the safety brake" in (await h.say(SAM, "review close RV-1")).text
        assert "paused by the safety brake" in (await h.say(SASHA, "review close RV-2")).text

        reply = await h.say(SAM, "resume removals")
        assert reply.ok and "review RV-2" in reply.text, reply.text
        assert "Still paused" in reply.text and "review RV-1" in reply.text.split("Still paused")[1], reply.text
        resumed = [e["data"]["reason"] for e in await h.events("automation.resumed")]
        assert resumed == ["review RV-2"], resumed
        reply = await h.say(SASHA, "resume removals")
        assert reply.ok and "review RV-1" in reply.text, reply.text
