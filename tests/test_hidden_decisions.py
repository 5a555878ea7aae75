"""A decision by someone who may not see the request (SPEC §4.1) is answered as for a request that
does not exist, whatever the request's state, and the attempt is recorded as any non-approver's is.

A decision judges who may see the request on what it reads under the write lock; these pin that
this says exactly what the separate look beforehand said."""

from __future__ import annotations

from handlers.approvals import not_found
from tests.support import harness

BOB, MARK, DANA = "bob@example.com", "mark.mgr@example.com", "dana.dba@example.com"
FRANK = "frank@example.com"  # in no step of prod-db-read's chain, not in the security team
UNSEEN = not_found(1).text


async def test_an_outsider_deciding_is_told_nothing_and_the_attempt_is_recorded(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 replica lag")).ok
        for words in ("approve REQ-1", "approve REQ-1 looks fine", "deny REQ-1 because no", "deny REQ-1"):
            reply = await h.say(FRANK, words)
            assert (reply.ok, reply.rule, reply.text) == (False, "unknown-request", UNSEEN), words
            assert reply.request is None
        refused = [e for e in await h.events("approval.refused") if e["actor"] == FRANK]
        assert [e["data"]["reason"] for e in refused] == ["not-an-approver"] * 4
        assert not await h.events("approval.granted") and not await h.events("approval.denied")
        record = await h.request(1)
        assert (record.state, record.step) == ("pending", 0)
        # the form asking for a reason is for who may see the request only
        form = await h.say(MARK, "deny REQ-1")
        assert (form.kind, form.rule) == ("form", "reason")


async def test_a_decided_request_stays_unseen_by_outsiders(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 replica lag")).ok
        assert (await h.say(MARK, "deny REQ-1 because not now")).ok
        outsider = await h.say(FRANK, "approve REQ-1")
        assert (outsider.rule, outsider.text) == ("unknown-request", UNSEEN)  # not "REQ-1 is denied"
        nobody = await h.say(FRANK, "approve REQ-99")
        assert (nobody.rule, nobody.text) == ("unknown-request", not_found(99).text)
        insider = await h.say(DANA, "approve REQ-1")  # named by the chain: may see it, and is told why not
        assert insider.rule == "not-open" and "denied" in insider.text
        decider = await h.say(MARK, "approve REQ-1")
        assert decider.rule == "not-open"
