"""The sign-off fallback (handlers/reviews/close.py ``signoff_pool``): a step whose every approver's own
membership is on the removal list goes to the security team (sam, sasha) less those concerned. The campaign of
tests/reviews/test_decisions.py: group:security reviews 1 (orphan) and 2 (pat.lead), mark.mgr 3 (alice) and
4 (bob), pat.lead 5 (deploy-bot) and 6 (sam.sec). Through the service, as the console; SQLite and PostgreSQL."""

from __future__ import annotations

from tests.reviews.test_own_access import on_the_list

PAT, SAM, SASHA, DANA = "pat.lead@example.com", "sam.sec@example.com", "sasha.sec@example.com", "dana.dba@example.com"


async def test_the_fallback_asks_someone_whose_signature_then_leaves_a_later_step_unsignable(database_url, tmp_path):
    """`sign_off: [{user: pat.lead}, {user: sam.sec}]`: two distinct people, accepted by the policy check (which
    refuses `[{any_of: security}, {user: sam.sec}]` precisely because sam signing step 1 would leave step 2
    nobody). The list removes pat's own access, so step 1 goes to the security team less pat: sam and sasha are
    both asked. Sam, asked, approves step 1; step 2 is his alone and one person signs once: the campaign closes
    with its sign-off failed and nothing is removed, though sasha for step 1 and sam for step 2 completes it.
    The fallback should not offer step 1 to the only approver of a later step (or should refuse his signature
    there), so that the chain the policy check accepted stays completable.

    Sasha decided the removal, so she signs no step of it (the sign-off is a second pair of eyes): the security
    team here has a third member, dana, and step 1 goes to her."""
    chain = f"[{{user: {PAT}}}, {{user: {SAM}}}]"
    async with on_the_list(database_url, tmp_path, chain, who=PAT, by=SASHA, security=[SAM, SASHA, DANA]) as h:
        reply = await h.say(SASHA, "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        asked = (await h.events("review.signoff_requested"))[-1]["data"]["approvers"]
        assert PAT not in asked and SASHA not in asked and DANA in asked, asked

        await h.say(SAM, "approve RV-1")  # asked for step 1: either it counts and step 2 stays his, or refused
        failed = [e for e in await h.events("review.closed") if e["data"].get("signoff") == "failed"]
        assert failed == [], failed
        assert (await h.say(DANA, "approve RV-1")).ok
        reply = await h.say(SAM, "approve RV-1")
        assert reply.ok and "sign-off approved" in reply.text, reply.text
        assert PAT not in await h.members("sg-prod-db-read")
