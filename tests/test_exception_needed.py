"""`exception` is no shortcut around the standard chain.

SPEC §3.3: an exception "asks for access outside eligibility or over the maximum". Bob is eligible for
prod-db-read and asks for 1h (max 8h): the policy says such a request needs his manager, a DBA and two
security people. Phrased as `exception`, the same access is granted by one security person and the owner.
"""

from __future__ import annotations

from tests.support import harness

BOB, SAM, DANA = "bob@example.com", "sam.sec@example.com", "dana.dba@example.com"


async def test_an_eligible_request_within_max_cannot_skip_its_chain_as_an_exception(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "exception prod-db-read for 1h because INC-4411 replica lag")
        if r.ok:
            await h.say(SAM, "approve REQ-1")
            await h.say(DANA, "approve REQ-1")
        provisioned = await h.events("grant.provisioned")
        assert provisioned == [], "granted with 2 of the 4 approvals its policy requires: " + r.text
        assert not r.ok and r.rule == "exception: not needed" and "request prod-db-read for 1h" in r.text, r.text
        assert [e["data"]["rule"] for e in await h.events("request.refused")] == ["exception: not needed"]


async def test_an_exception_over_the_maximum_is_still_an_exception(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(BOB, "exception prod-db-read for 2d because INC-4411 replica lag")
        assert r.ok and r.request is not None, r.text
