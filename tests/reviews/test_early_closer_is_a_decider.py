"""The closer of a campaign decides its removal list as surely as a `remove` decision does when the close
turns undecided items into removals (`if_not_reviewed: remove`): they are left out of the sign-off like the
deciders, and the brake's pause keeps them out after a sign-off too. One security member alone can no longer
close on day one, sign the list off and (above safety.max_removals) resume the pause.

Example policy: fallback {any_of: security}, sign_off [{any_of: security}], if_not_reviewed: remove; sam.sec's
own membership is on the list, so sasha.sec is the only other security member."""

from __future__ import annotations

from tests.compliance.test_review_brake import _limit
from tests.reviews.test_decisions import started
from tests.support import harness

SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"


async def test_the_member_who_closed_early_does_not_sign_off_the_defaulted_removals(database_url, tmp_path):
    """Sasha's early close put all six on the list; sam's own access is on it: nobody is left to sign it off, so
    the close fails closed and nothing is removed (the chain is never completed by the closer alone)."""
    async with harness(database_url, tmp_path) as h:
        await started(h)
        reply = await h.say(SASHA, "review close RV-1")  # nobody decided anything: all six default to remove
        assert "sign-off failed" in reply.text and "nothing is removed" in reply.text, reply.text
        signed = await h.say(SASHA, "approve RV-1")
        assert not signed.ok, signed.text
        await h.app.service.sweep(drift=False)
        assert await h.events("membership.removed") == []


async def test_one_member_closes_signs_off_and_resumes_above_the_limit_alone(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 3)  # sign_off stays; 6 removals > 3: "a sign-off is always required" and the brake holds
        await started(h)
        assert (await h.say(SASHA, "review close RV-1")).ok
        signed = await h.say(SASHA, "approve RV-1")
        resumed = await h.say(SASHA, "resume removals")
        await h.app.service.sweep(drift=False)
        removed = [e["data"]["user"] for e in await h.events("membership.removed")]
        actors = {e["actor"] for t in ("review.signoff", "automation.resumed") for e in await h.events(t)}
        assert removed == [], (
            f"sasha.sec alone closed RV-1, signed it off ({signed.ok}) and resumed the brake ({resumed.ok}); "
            f"human actors {actors}; removed {removed}")
