"""/dashboard/posture 'Kept by a review' (handlers/dashboard/posture.py kept_by_reviews,
store/review_repository.py kept_standing) counts memberships as the chain leaves them: a grant's end or a leaver's
removal after the review's snapshot takes one out, an undo puts one back. The campaign of
tests/reviews/test_start.py: group:security reviews 1-2, mark 3 (alice, REQ-1) and 4 (bob), pat.lead 5 and 6."""

from __future__ import annotations

import re

from tests.reviews.test_start import REVIEW, staff

MARK, PAT, SAM, SASHA, DANA = ("mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com",
                               "sasha.sec@example.com", "dana.dba@example.com")
BOB, ALICE = "bob@example.com", "alice@example.com"


async def shown(h) -> int:  # type: ignore[no-untyped-def]
    page = (await h.get("/dashboard/posture", cookie=await h.sign_in(SAM))).text
    return int(re.search(r'id="cov-reviewed">(\d+)<', page).group(1))


def no_signoff(h) -> None:  # type: ignore[no-untyped-def]
    h.files.policy.write_text(h.files.policy.read_text().replace("    sign_off: [{any_of: security}]", ""))
    staff(h.files)


async def members(h, group: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.lower() for m in await h.app.deps.providers["directory"].list_members(group)}


async def test_kept_membership_taken_out_by_an_ending_grant_is_not_counted(web_harness) -> None:
    """Bob's standing membership of sg-prod-db-read is kept by RV-1. Later bob asks for prod-db-read through the
    bot (approved by the whole chain); while that grant holds, the membership is counted as the grant's. When
    the grant expires its removal takes bob out of the group (grant.expired, no membership.removed), yet
    'Kept by a review' counts bob again: a membership that no longer exists."""
    h = web_harness
    no_signoff(h)
    assert (await h.say(SAM, f"review start {REVIEW}")).ok
    for who in (SAM, MARK, PAT):
        assert (await h.say(who, "keep RV-1 all")).ok
    assert (await h.say(SAM, "review close RV-1")).ok
    before = await shown(h)
    assert BOB in await members(h, "sg-prod-db-read")
    h.clock.advance(hours=1)
    reply = await h.say(BOB, "request prod-db-read for 2h because INC-4411 replica lag")
    assert reply.ok, reply.text
    ref = reply.request.id
    for approver in (MARK, DANA, SAM, SASHA):
        r = await h.say(approver, f"approve {ref} looks fine")
        assert r.ok, (approver, r.text)
    h.clock.advance(hours=3)
    report = await h.app.service.sweep()
    assert ref in report.expired, report.lines()
    assert BOB not in await members(h, "sg-prod-db-read")  # the grant's end took bob out of the group
    assert await shown(h) == before - 1, (before, await shown(h))


async def test_kept_membership_removed_before_the_close_is_not_counted(web_harness) -> None:
    """Mark keeps bob (3: no REQ-1 in this campaign) early in RV-1. Bob then leaves; the termination sweep removes
    him from sg-prod-db-read (membership.removed reason terminated) while RV-1 is still open. RV-1 closes later with
    bob's item 'kept'. 'Kept by a review' counts bob's membership, which was already gone when the review
    closed (the removal is older than the close, so kept_by_reviews ignores it)."""
    from datetime import UTC, datetime

    h = web_harness
    h.clock.at = datetime.now(UTC)  # the service's clock as in production: the wall clock the audit ts is read from
    no_signoff(h)
    assert (await h.say(SAM, f"review start {REVIEW}")).ok
    assert (await h.say(SAM, "keep RV-1 all")).ok
    assert (await h.say(MARK, "keep RV-1 all")).ok
    assert (await h.say(PAT, "keep RV-1 4")).ok  # 5 still open: the campaign stays open (no REQ-1 here: bob is 3)
    h.clock.at = datetime.now(UTC)
    h.files.set_active(BOB, False)
    report = await h.app.service.sweep()
    assert report.terminated == [BOB], report.lines()
    assert BOB not in await members(h, "sg-prod-db-read")
    h.clock.at = datetime.now(UTC)
    r6 = await h.say(PAT, "keep RV-1 5")
    assert r6.ok, r6.text
    reply = await h.say(SAM, "review close RV-1")
    async with h.app.store.read() as raw:
        campaign = await raw.get_campaign(1)
    assert campaign.state == "closed", (reply.text, campaign.state)
    standing = set()
    for group in ("sg-prod-db-read", "sg-prod-k8s-admin"):
        standing |= await members(h, group)
    assert await shown(h) <= len(standing), (await shown(h), sorted(standing))


async def test_an_undone_removal_of_a_grant_backed_item_counts_as_kept(web_harness) -> None:
    """Mark removes alice (3, held via REQ-1) in RV-1; the close ends her grant (grant.revoked reason review).
    Two security team members undo it: she is re-added as a standing membership the review now stands behind
    (item state 'restored'; the drift check treats it as backed). 'Kept by a review' ('memberships ... backed
    by a review: kept, or an undo restored') leaves her out because the item once named a request."""
    h = web_harness
    no_signoff(h)
    assert (await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")).ok  # on call: REQ-1, active
    assert (await h.say(SAM, f"review start {REVIEW}")).ok
    assert (await h.say(SAM, "keep RV-1 all")).ok
    assert (await h.say(MARK, "keep RV-1 4")).ok
    assert (await h.say(MARK, "remove RV-1 3 because not on call any more")).ok
    assert (await h.say(PAT, "keep RV-1 all")).ok
    reply = await h.say(SAM, "review close RV-1")
    assert reply.ok, reply.text
    if "sign-off" in reply.text:
        reply = await h.say(SASHA, "approve RV-1")
        assert reply.ok, reply.text
    assert ALICE not in await members(h, "sg-prod-db-read")
    before = await shown(h)
    h.clock.advance(hours=1)
    assert (await h.say(SAM, "review undo RV-1 3 because she is on call after all")).ok
    reply = await h.say(SASHA, "approve RV-1 3")
    assert reply.ok, reply.text
    assert ALICE in await members(h, "sg-prod-db-read")
    async with h.app.store.read() as raw:
        held = await raw.find_requests(requester=ALICE, states=("active",))
        from handlers.reviews.campaign import repo_of
        backed = await repo_of(raw).kept_memberships()
    assert held == []  # her grant stays ended: the membership is standing
    assert ("directory", "sg-prod-db-read", ALICE) in backed  # drift treats it as backed by the review
    assert await shown(h) == before + 1, (before, await shown(h))
