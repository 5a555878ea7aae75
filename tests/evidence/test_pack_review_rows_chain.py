"""An evidence pack's reviews.csv and review_items.csv come from the review tables, which the serving role may
UPDATE (every table but `audit_events`, docs/audit-integrity.md). Before a pack is written, every campaign whose
rows go into them is held against its `review.*` events, with the certification's own check: a rewritten
decision, decider, justification, outcome, member, item count or start time stops `accessbot evidence export`
(exit 1, the file, the campaign and the first disagreement named, no file written), exactly as a contradicted
request does. The honest store, and the same store once a forgery is undone, export as before."""

from __future__ import annotations

import contextlib
import csv
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select, update

from handlers.audit import format_ts
from store import review_schema as rt
from store.db import make_sync_engine
from tests.reviews.test_certification_checked_against_chain import closed_with_a_signoff
from tests.reviews.test_decisions import started
from tests.support import MutableClock, cli, harness

REFUSED = "no evidence pack written: the database contradicts the audit chain"


@contextlib.contextmanager
def forged(url: str, table: Table, where: Any, **values: Any) -> Iterator[None]:
    """``UPDATE table SET values WHERE where`` as the serving role could, put back as it was afterwards."""
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            cols = [table.c.id, *(table.c[k] for k in values)]
            before = [r._mapping for r in conn.execute(select(*cols).where(where)).all()]
            assert before, f"nothing to forge in {table.name}"
            conn.execute(update(table).where(where).values(**values))
        yield
    finally:
        with engine.begin() as conn:
            for row in before:
                conn.execute(update(table).where(table.c.id == row["id"]).values(
                    **{k: row[k] for k in values}))
        engine.dispose()


def _rows(pack: Path, name: str) -> list[dict[str, str]]:
    with zipfile.ZipFile(pack) as zf:
        return list(csv.DictReader(io.StringIO(zf.read(name).decode("utf-8"))))


async def test_a_pack_never_carries_review_rows_the_audit_chain_contradicts(database_url, tmp_path):
    """RV-1 runs through the real commands: bob removed by mark.mgr with a reason, the rest kept or defaulted at
    the close, the removal list signed off by sasha.sec. The pack exports. Then each forgery of the review tables
    in turn (the chain untouched) makes the export refuse, naming the file, RV-1 and what the chain says; nothing
    is written. With each forgery undone, the pack exports again, byte for byte the rows it had."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with harness(database_url, tmp_path, clock=MutableClock(now)) as h:
        bob = await closed_with_a_signoff(h)
        files = h.files
    folder = tmp_path / "packs"
    first, last = (now - timedelta(days=1)).date().isoformat(), (now + timedelta(days=1)).date().isoformat()

    def export(name: str):  # type: ignore[no-untyped-def]
        return cli("evidence", "export", "--from", first, "--to", last, "--out", str(folder / name),
                   db=database_url, files=files)

    done = export("honest.zip")
    assert done.returncode == 0, done.stdout + done.stderr
    honest = {name: _rows(folder / "honest.zip", name) for name in ("reviews.csv", "review_items.csv")}
    assert [(r["review_id"], r["items"], r["removed"]) for r in honest["reviews.csv"]] == [("RV-1", "6", "4")]
    row = next(r for r in honest["review_items.csv"] if r["user"] == "bob@example.com")
    assert (row["decision"], row["decided_by"], row["comment"], row["outcome"]) == (
        "remove", "mark.mgr@example.com", "left the team", "removed")

    d, i, c = rt.review_decisions.c, rt.review_items.c, rt.review_campaigns.c
    bobs_decision = (d.campaign_id == 1) & (d.item == bob)
    bobs_item = (i.campaign_id == 1) & (i.number == bob)
    forgeries: list[tuple[str, Table, Any, dict[str, Any], list[str]]] = [
        ("decision", rt.review_decisions, bobs_decision, {"decision": "keep"},
         ["review_items.csv RV-1: decision", f"item {bob} keep by mark.mgr@example.com", f"item {bob} remove by"]),
        ("decider", rt.review_decisions, bobs_decision, {"actor": "pat.lead@example.com"},
         ["review_items.csv RV-1: decision", f"item {bob} remove by pat.lead@example.com",
          "the audit chain says", "mark.mgr@example.com"]),
        ("justification", rt.review_decisions, bobs_decision, {"comment": "approved by the CISO"},
         ["review_items.csv RV-1: decision", "'approved by the CISO'", "'left the team'"]),
        ("outcome", rt.review_items, bobs_item, {"state": "kept", "outcome": "kept"},
         [f"review_items.csv RV-1: item {bob} (bob@example.com) is kept", "the audit chain says removed"]),
        ("member", rt.review_items, bobs_item, {"user_email": "mallory@example.com"},
         [f"review_items.csv RV-1: item {bob} in the database is mallory@example.com", "snapshot does not list"]),
        ("item count", rt.review_campaigns, c.id == 1, {"items": 5},
         ["reviews.csv RV-1: the database holds 6 items (the campaign says 5), review.started says 6"]),
        ("start moved out of the period", rt.review_campaigns, c.id == 1, {"started_at": now - timedelta(days=40)},
         [f"reviews.csv RV-1: started at {format_ts(now - timedelta(days=40))} in the database",
          "review.started was recorded at"]),
    ]
    for what, table, where, values, said in forgeries:
        with forged(database_url, table, where, **values):
            out = folder / f"forged-{what.replace(' ', '-')}.zip"
            done = export(out.name)
            assert done.returncode == 1, (what, done.stdout + done.stderr)
            assert REFUSED in done.stderr, (what, done.stderr)
            for text in said:
                assert text in done.stderr, (what, text, done.stderr)
            assert not out.exists() and not list(folder.glob("*.partial")), (what, sorted(folder.iterdir()))

    done = export("undone.zip")  # every forgery put back: the same rows as before
    assert done.returncode == 0, done.stdout + done.stderr
    assert {name: _rows(folder / "undone.zip", name) for name in honest} == honest


async def test_a_deleted_campaign_stops_the_pack(sqlite_url, tmp_path):
    """A campaign removed from the review tables (the chain holds its review.started in the period) is not left
    out of reviews.csv in silence: the export refuses and names it."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with harness(sqlite_url, tmp_path, clock=MutableClock(now)) as h:
        await started(h)
        files = h.files
    engine = make_sync_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(rt.review_campaigns.delete().where(rt.review_campaigns.c.id == 1))
    engine.dispose()
    out = tmp_path / "pack.zip"
    done = cli("evidence", "export", "--from", (now - timedelta(days=1)).date().isoformat(), "--to",
               (now + timedelta(days=1)).date().isoformat(), "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 1 and not out.exists(), done.stdout + done.stderr
    assert REFUSED in done.stderr and "reviews.csv RV-1: in the audit chain but not in the database" in done.stderr


async def test_the_chat_command_refuses_a_forged_review_too(sqlite_url, tmp_path):
    """The security team's `evidence` chat command (the same pack) answers the refusal, naming RV-1."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with harness(sqlite_url, tmp_path, clock=MutableClock(now),
                       env={"ACCESSBOT_EVIDENCE_DIR": str(tmp_path / "server")}) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        days = f"{(now - timedelta(days=1)).date()} {(now + timedelta(days=1)).date()}"
        assert (await h.say("sam.sec@example.com", f"evidence {days}")).ok
        d = rt.review_decisions.c
        with forged(sqlite_url, rt.review_decisions, (d.campaign_id == 1) & (d.item == bob),
                    actor="pat.lead@example.com"):
            reply = await h.say("sam.sec@example.com", f"evidence {days}")
        assert not reply.ok and "No evidence pack written" in reply.text, reply.text
        assert f"review_items.csv RV-1: decision 2 in the database is item {bob} keep by pat.lead" in reply.text, \
            reply.text
