"""The certification and the pack hold a campaign's close time, due date and policy version against the chain: a
close lies after every decision and sign-off and no later than review.closed (a late close moved back before the
due date was certified), and review.started records the due date and the policy version."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from tests.reviews.test_decisions import started
from tests.support import MutableClock, cli, harness


def _past_clock() -> MutableClock:
    # the bot judges time on its clock but stamps events with the wall clock (data.as_of keeps the judged time):
    # the whole campaign lies in the past so that the untampered close is consistent with review.closed's ts
    at = (datetime.now(UTC) - timedelta(days=70)).replace(hour=8, minute=0, second=0, microsecond=0)
    return MutableClock(at + timedelta(days=(7 - at.weekday()) % 7))  # a Monday


async def _closed_late(sqlite_url, tmp_path):  # type: ignore[no-untyped-def]
    async with harness(sqlite_url, tmp_path, clock=_past_clock()) as h:
        await started(h)
        h.clock.advance(days=3)  # the decisions come days after the start, before the due date (they end there)
        for reviewer in ("mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"):
            assert (await h.say(reviewer, "keep RV-1 all")).ok
        h.clock.advance(days=27)  # well past the 10 business days: the close is late
        assert "kept 6" in (await h.say("sasha.sec@example.com", "review close RV-1")).text
        return h.files


def _db(sqlite_url: str) -> sqlite3.Connection:
    return sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))


async def test_a_late_close_moved_back_before_the_due_date_and_every_decision_is_certified(sqlite_url, tmp_path):
    files = await _closed_late(sqlite_url, tmp_path)
    db = _db(sqlite_url)
    with db:
        started_at, due_at, closed_at = db.execute(
            "SELECT started_at, due_at, closed_at FROM review_campaigns WHERE id = 1").fetchone()
        # one minute after the start: inside [start, review.closed], before the due date and before any decision
        forged = started_at[:14] + "01" + started_at[16:]
        assert forged > started_at
        db.execute("UPDATE review_campaigns SET closed_at = ? WHERE id = 1", (forged,))
    db.close()
    assert cli("audit", "verify", db=sqlite_url, files=files).returncode == 0
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), (
        f"closed_at rewritten from {closed_at} (after due {due_at}) to {forged}, before the due date and before "
        f"every review.decided, and certified: {done.stdout}{done.stderr}")


async def test_a_late_close_moved_back_goes_into_the_evidence_pack(sqlite_url, tmp_path):
    files = await _closed_late(sqlite_url, tmp_path)
    db = _db(sqlite_url)
    with db:
        (started_at,) = db.execute("SELECT started_at FROM review_campaigns WHERE id = 1").fetchone()
        db.execute("UPDATE review_campaigns SET closed_at = ? WHERE id = 1", (started_at,))
    db.close()
    out = tmp_path / "pack.zip"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    done = cli("evidence", "export", "--from", started_at[:10], "--to", tomorrow, "--out", str(out),
               db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), (
        "evidence pack written with closed_at rewritten to the start time: " + done.stdout + done.stderr)


async def test_a_rewritten_due_date_is_certified_though_review_started_records_it(sqlite_url, tmp_path):
    files = await _closed_late(sqlite_url, tmp_path)
    db = _db(sqlite_url)
    with db:
        due_at, closed_at = db.execute("SELECT due_at, closed_at FROM review_campaigns WHERE id = 1").fetchone()
        later = (datetime.fromisoformat(closed_at) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        db.execute("UPDATE review_campaigns SET due_at = ? WHERE id = 1", (later,))
    db.close()
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), (
        f"due_at rewritten from {due_at} (missed: closed {closed_at}) to {later}, after the close, and certified "
        f"although review.started records due_at: {done.stdout}{done.stderr}")


async def test_control_the_untampered_late_close_is_certified(sqlite_url, tmp_path):
    """Not an attack: the set-up itself is consistent (the three tests above fail only for their rewrite)."""
    files = await _closed_late(sqlite_url, tmp_path)
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0 and out.exists(), done.stdout + done.stderr


async def test_a_rewritten_policy_version_is_certified_though_the_chain_says_which_was_in_force(sqlite_url, tmp_path):
    """review.started follows the policy.loaded that put the campaign's version in force, so the chain says which
    version it started under; the certification prints policy_version / policy_sha256 from the row unchecked (and
    the pinned version is what judges the close's default and sign-off)."""
    files = await _closed_late(sqlite_url, tmp_path)
    db = _db(sqlite_url)
    with db:
        version, sha = db.execute("SELECT policy_version, policy_sha256 FROM review_campaigns WHERE id = 1").fetchone()
        db.execute("UPDATE review_campaigns SET policy_version = 'v999-approved-by-board', policy_sha256 = ? "
                   "WHERE id = 1", ("f" * 64,))
    db.close()
    out = tmp_path / "rv-1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), (
        f"policy version rewritten from {version} ({sha}) to v999-approved-by-board (ffff…), a version no "
        f"policy.loaded records, and certified: {done.stdout}{done.stderr}")
