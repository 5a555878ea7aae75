"""removals.csv (SPEC §6: user, provider, group, reason, request_id, detected_at, removed_at, hours) says whose
access was removed and the hours from detection to removal, for a mover, a review and a leaver alike."""

from __future__ import annotations

import store.repository
from handlers.sweeps import sweep
from tests.evidence.test_auditor_rows import _csv, _limit, _pack
from tests.support import MutableClock, harness

BOB, ALICE, SAM, SASHA = "bob@example.com", "alice@example.com", "sam.sec@example.com", "sasha.sec@example.com"
PAT, DANA = "pat.lead@example.com", "dana.dba@example.com"


def _to_sales(*who: str):  # type: ignore[no-untyped-def]
    def move(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in who:
                u["department"] = "Sales"
    return move


async def test_a_movers_removal_the_brake_held_counts_from_when_it_was_held_not_from_the_resume(database_url,
                                                                                                tmp_path,
                                                                                                monkeypatch):
    """Bob and Alice move out of Engineering; the brake holds the two revocations (limit 1); the security team
    resumes 20 hours later and the next sweep revokes. The removals were found 20 hours before they ran (the
    commit's own rule: 'detected is the sweep that found it, or the first the brake held it at'). The security
    team's `automation.resumed` must not erase when the brake first held them: removals.csv must not say they
    were detected at the instant they were removed, 0 hours."""
    clock = MutableClock()
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)  # events recorded at the test's clock
    async with harness(database_url, tmp_path, clock=clock) as h:
        _limit(h, 1)
        for who in (BOB, ALICE):
            assert (await h.say(who, "request analytics-read for 1d")).ok
        h.files.edit_directory(_to_sales(BOB, ALICE))
        first = await sweep(h.app.deps, drift=False)
        assert first.paused == 2 and first.revoked == [], first.lines()
        held_at = (await h.events("automation.paused"))[0]["ts"]
        h.clock.advance(hours=20)
        assert (await h.say(SAM, "resume removals")).ok
        report = await sweep(h.app.deps, drift=False)
        assert sorted(report.revoked) == ["REQ-1", "REQ-2"], report.lines()
        files = await _pack(h, tmp_path)
    rows = [r for r in _csv(files["removals.csv"]) if r["reason"] == "ineligible"]
    assert len(rows) == 2, rows
    for row in rows:
        assert row["detected_at"] == held_at and float(row["hours"]) >= 20, row


async def test_a_removal_whose_request_was_submitted_before_the_period_names_the_person(database_url, tmp_path,
                                                                                      monkeypatch):
    """Bob's grant was submitted on 30 November and revoked on 1 December when he moved (`ineligible`). The pack
    of December carries REQ-1's `request.submitted` in audit_earlier.jsonl; removals.csv of December must still
    say whose grant it was (an empty user tells an auditor nothing, SPEC §6)."""
    clock = MutableClock()
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)  # events recorded at the test's clock
    async with harness(database_url, tmp_path, clock=clock) as h:
        h.clock.advance(days=7, hours=15)  # 2026-11-30 23:00
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        assert (await h.request(1)).state == "active"
        h.clock.advance(hours=2)  # 2026-12-01 01:00: the pack's period starts on 1 December
        h.files.edit_directory(_to_sales(BOB))
        report = await sweep(h.app.deps, drift=False)
        assert report.revoked == ["REQ-1"], report.lines()
        files = await _pack(h, tmp_path)
    (row,) = [r for r in _csv(files["removals.csv"]) if r["request_id"] == "REQ-1"]
    assert row["reason"] == "ineligible", row
    assert row["user"] == BOB, row


async def test_a_reviews_removal_of_a_drift_accepted_exception_names_the_member_not_the_filer(database_url,
                                                                                              tmp_path):
    """Pat was put into sg-prod-db-read outside the bot; sam.sec accepted the drift (`request.submitted` actor
    sam.sec, data.requester pat.lead: README, drift accept) and the exception was approved. A review then removes
    Pat's access (`grant.revoked` reason `review`). removals.csv must say it was Pat's access that was removed,
    not the security team member who filed the accept."""
    from tests.compliance.test_drift_accept import WHY, _finding
    from tests.reviews.test_start import REVIEW

    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", PAT)
        assert (await h.say(SAM, f"drift accept {d} for 2d {WHY}")).ok
        assert (await h.say(SASHA, "approve REQ-1")).ok
        assert (await h.say(DANA, "approve REQ-1")).ok
        assert (await h.request(1)).state == "active"
        reply = await h.say(SAM, f"review start {REVIEW}")
        assert reply.ok, reply.text
        async with h.app.store.read() as repo:
            items = {i.user: i for i in await repo.items(1)}
        item = items[PAT]
        reviewer = item.reviewer if "@" in item.reviewer else SASHA
        reply = await h.say(reviewer, f"remove RV-1 {item.number} because no longer on the migration")
        assert reply.ok, reply.text
        for other in items.values():
            if other.user != PAT:
                who = other.reviewer if "@" in other.reviewer else SASHA
                assert (await h.say(who, f"keep RV-1 {other.number} because needed")).ok
        reply = await h.say(SASHA, "review close RV-1")
        assert reply.ok, reply.text
        if "sign-off" in reply.text:
            signer = SAM if SAM != reviewer else SASHA
            reply = await h.say(signer, "approve RV-1")
            assert reply.ok, reply.text
        assert (await h.request(1)).state == "revoked"
        files = await _pack(h, tmp_path)
    (row,) = [r for r in _csv(files["removals.csv"]) if r["request_id"] == "REQ-1"]
    assert row["reason"] == "review", row
    assert row["user"] == PAT, row
