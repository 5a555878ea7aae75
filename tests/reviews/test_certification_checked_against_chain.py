"""The signed certification (`accessbot review report`) is built from the store's review tables, which the
serving role may UPDATE (every table but `audit_events`, docs/audit-integrity.md). Before anything is written,
its rows are held against the campaign's `review.*` events: a rewritten decider, justification or outcome stops
the report (exit 1, the first disagreement named), as `evidence export` refuses a database that contradicts
the chain (docs/audit-integrity.md §4)."""

from __future__ import annotations

import sqlite3

from tests.reviews.test_decisions import started
from tests.reviews.test_report import _texts, make_signing_pair
from tests.support import cli, harness


async def test_a_certification_never_signs_decisions_the_audit_chain_contradicts(sqlite_url, tmp_path):
    """RV-1 closed with everything kept: its certification is written. Then bob's decision row is rewritten
    (decided by pat.lead, with a justification nobody gave) while the chain stays intact: the report is refused,
    names the decision the chain contradicts, and writes nothing."""
    async with harness(sqlite_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        for reviewer in ("mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"):
            assert (await h.say(reviewer, "keep RV-1 all")).ok
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert reply.ok and "kept 6" in reply.text, reply.text
        decided = [e for e in await h.events("review.decided") if e["data"]["item"] == bob]
        assert [(e["actor"], e["data"]["decision"]) for e in decided] == [("mark.mgr@example.com", "keep")]
        files = h.files

    honest = tmp_path / "rv-1-before.pdf"
    done = cli("review", "report", "RV-1", "--out", str(honest), db=sqlite_url, files=files)
    assert done.returncode == 0 and "RV-1 certification" in done.stdout, done.stdout + done.stderr
    assert b"Access review certification" in _texts(honest.read_bytes())

    # a write to the review tables only (as the serving role may): bob's keep now looks decided by pat.lead,
    # with a justification nobody gave
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE review_decisions SET actor = 'pat.lead@example.com', comment = 'confirmed by the "
                   "team lead' WHERE campaign_id = 1 AND item = ?", (bob,))
    db.close()
    verify = cli("audit", "verify", db=sqlite_url, files=files)
    assert verify.returncode == 0, verify.stdout + verify.stderr  # the chain itself is intact

    key, cert, _ = make_signing_pair(tmp_path)
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files,
               env={"ACCESSBOT_SIGNING_KEY": str(key), "ACCESSBOT_SIGNING_CERT": str(cert)})
    assert done.returncode == 1 and not out.exists(), done.stdout + done.stderr
    assert "contradicts the audit chain" in done.stderr and f"item {bob} keep by pat.lead" in done.stderr, done.stderr
    assert "mark.mgr@example.com" in done.stderr, done.stderr  # what the chain says


async def test_a_rewritten_outcome_stops_the_certification(sqlite_url, tmp_path):
    """A closed campaign whose item outcome is rewritten in the store (bob's `kept` now reads `removed`) while
    its decisions and the chain stay as they were: the report is refused and names the item."""
    async with harness(sqlite_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        for reviewer in ("mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"):
            assert (await h.say(reviewer, "keep RV-1 all")).ok
        assert (await h.say("sasha.sec@example.com", "review close RV-1")).ok
        files = h.files
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE review_items SET state = 'removed', outcome = 'removed' WHERE campaign_id = 1 "
                   "AND number = ?", (bob,))
    db.close()
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), done.stdout + done.stderr
    assert f"item {bob} (bob@example.com) is removed" in done.stderr and "the audit chain says kept" in done.stderr


async def closed_with_a_signoff(h) -> int:  # type: ignore[no-untyped-def]
    """RV-1 through the real commands: bob removed by mark.mgr with a reason, pat.lead's items kept, the rest
    defaulted at sam.sec's close, the removal list signed off by sasha.sec and run. Returns bob's item."""
    items = await started(h)
    bob = items["bob@example.com"].number
    assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
    assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
    assert "sign-off of" in (await h.say("sam.sec@example.com", "review close RV-1")).text
    reply = await h.say("sasha.sec@example.com", "approve RV-1")
    assert reply.ok and "closed" in reply.text, reply.text
    return int(bob)


async def test_a_closed_campaign_with_removals_and_a_sign_off_is_certified(sqlite_url, tmp_path):
    """The check does not stop an honest campaign: RV-1 with bob removed by mark.mgr, undecided items defaulted
    at the close, the list signed off by sasha.sec and run, is certified (exit 0, the certification's title)."""
    async with harness(sqlite_url, tmp_path) as h:
        await closed_with_a_signoff(h)
        files = h.files
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0 and "RV-1 certification" in done.stdout, done.stdout + done.stderr
    assert b"Access review certification" in _texts(out.read_bytes())
