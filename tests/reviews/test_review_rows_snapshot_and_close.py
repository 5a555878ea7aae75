"""The certification and the evidence pack's review files are held against the chain: deleting the campaign's
snapshot row (the serving role may DELETE from every table but audit_events) must not switch the snapshot and
membership checks off, and a rewritten close time (review.closed records when the close happened) is seen."""

from __future__ import annotations

import sqlite3
import zipfile

from tests.reviews.test_decisions import started
from tests.support import cli, harness


async def _closed(sqlite_url, tmp_path):  # type: ignore[no-untyped-def]
    async with harness(sqlite_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        for reviewer in ("mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"):
            assert (await h.say(reviewer, "keep RV-1 all")).ok
        assert "kept 6" in (await h.say("sasha.sec@example.com", "review close RV-1")).text
        return h.files, bob


def _forge(sqlite_url: str, bob: int) -> None:
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with db:  # the snapshot goes; bob's kept membership now reads as a different group at a different provider
        db.execute("DELETE FROM review_snapshots WHERE campaign_id = 1")
        db.execute("UPDATE review_items SET provider = 'entra', group_name = 'sg-harmless-wiki-readers' "
                   "WHERE campaign_id = 1 AND number = ?", (bob,))
    db.close()


async def test_a_deleted_snapshot_lets_a_rewritten_membership_into_the_certification(sqlite_url, tmp_path):
    files, bob = await _closed(sqlite_url, tmp_path)
    _forge(sqlite_url, bob)
    assert cli("audit", "verify", db=sqlite_url, files=files).returncode == 0  # the chain is intact
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), (
        "certification written for a membership review.started's snapshot never listed: " + done.stdout + done.stderr)


async def test_a_deleted_snapshot_lets_a_rewritten_membership_into_the_evidence_pack(sqlite_url, tmp_path):
    files, bob = await _closed(sqlite_url, tmp_path)
    _forge(sqlite_url, bob)
    out = tmp_path / "pack.zip"
    done = cli("evidence", "export", "--from", "2026-11-01", "--to", "2026-11-30", "--out", str(out),
               db=sqlite_url, files=files)
    rows = ""
    if out.exists():
        rows = zipfile.ZipFile(out).read("review_items.csv").decode()
    assert done.returncode == 1 and not out.exists(), (
        "evidence pack written with a rewritten membership: "
        + next((r for r in rows.splitlines() if "sg-harmless" in r), done.stdout + done.stderr))


async def test_a_rewritten_close_time_is_certified_though_review_closed_records_it(sqlite_url, tmp_path):
    """docs/audit-integrity.md says a campaign's `closed_at` is not checked because no event records it; but
    review.closed carries the close's ts. Moving the close back (to three weeks before the campaign even started,
    long before its reviewers decided) goes into the signed certification and reviews.csv unchallenged."""
    files, _ = await _closed(sqlite_url, tmp_path)
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    with db:
        (before,) = db.execute("SELECT closed_at FROM review_campaigns WHERE id = 1").fetchone()
        db.execute("UPDATE review_campaigns SET closed_at = '2026-11-01 09:00:00.000000' WHERE id = 1")
    db.close()
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), (
        f"closed_at rewritten from {before} to 2026-11-01 09:00 and certified: " + done.stdout + done.stderr)
