"""Movers (SPEC §3.6): eligibility judged again when the last approval lands and at every sweep."""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.support import harness

BOB, CAROL = "bob@example.com", "carol@example.com"
MARK, DANA, DEV, SAM, SASHA = ("mark.mgr@example.com", "dana.dba@example.com", "dev.dba@example.com",
                               "sam.sec@example.com", "sasha.sec@example.com")


def move(h, email: str, department: str) -> None:  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] == email:
                u["department"] = department

    h.files.edit_directory(change)


async def test_a_mover_loses_a_standard_grant_but_keeps_an_exception(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1d")).ok  # REQ-1, manager approves
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.request(1)).state == "active"
        # carol is a contractor: prod-db-read only as an exception (REQ-2)
        assert (await h.say(CAROL, "exception prod-db-read for 2d because INC-9 migration")).ok
        assert (await h.say(SAM, "approve REQ-2")).ok and (await h.say(DANA, "approve REQ-2")).ok
        assert (await h.request(2)).state == "active"

        report = await sweep(h.app.deps, drift=False)
        assert report.revoked == []  # everyone still eligible (or an exception)

        move(h, BOB, "Finance")
        move(h, CAROL, "Finance")
        report = await sweep(h.app.deps, drift=False)
        assert report.revoked == ["REQ-1"] and report.terminated == []
        assert (await h.request(1)).state == "revoked" and (await h.request(2)).state == "active"
        (revoked,) = await h.events("grant.revoked")
        assert revoked["request_id"] == "REQ-1" and revoked["data"]["reason"] == "ineligible: not eligible"
        assert BOB not in await h.members("sg-staging-admin") and CAROL in await h.members("sg-prod-db-read")
        assert any("no longer eligible" in n.text for n in h.notifier.to(BOB))
        assert any("REQ-1" in n.text and "no longer eligible" in n.text for n in h.notifier.to(SAM))
        assert (await sweep(h.app.deps, drift=False)).revoked == []


async def test_an_approval_cannot_grant_what_the_requester_lost_meanwhile(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 2h because INC-1 replica lag")).ok
        for who in (MARK, DANA, SAM):
            assert (await h.say(who, "approve REQ-1")).ok
        move(h, BOB, "Finance")
        r = await h.say(SASHA, "approve REQ-1")
        assert "no longer eligible" in r.text
        record = await h.request(1)
        assert record.state == "failed" and record.started_at is None
        (failed,) = await h.events("request.failed")
        assert failed["data"]["rule"] == "eligible: no rule matched"
        assert [e["actor"] for e in await h.events("approval.granted")][-1] == SASHA
        assert await h.events("request.approved") == [] and BOB not in await h.members("sg-prod-db-read")
