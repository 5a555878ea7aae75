"""A whole campaign through the real command line: accessbot review start, the chat words piped into
accessbot chat, and accessbot sweep --as-of driving the close; SQLite."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

from tests.reviews.test_start import REVIEW, staff
from tests.support import chat, cli, copy_examples


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_campaign_through_the_console_and_the_sweep(tmp_path, sqlite_url):
    files = copy_examples(tmp_path)
    staff(files)
    now = datetime.now(UTC)
    done = cli("review", "start", REVIEW, "--as-of", iso(now - timedelta(hours=1)), db=sqlite_url, files=files)
    assert done.returncode == 0 and done.stdout.startswith("started RV-1"), done.stderr + done.stdout
    # items by reviewer: group:security 1-2 (orphan, pat.lead), mark.mgr 3 (bob), pat.lead 4-5
    out = chat("mark.mgr@example.com", "review RV-1", "remove RV-1 2 because no", "keep RV-1 all",
               "remove RV-1 3 because no sign-in since January", "remove RV-1 3", db=sqlite_url, files=files)
    assert "1 item(s) for you" in out and "Item 2 of RV-1 is not yours to decide." in out, out
    assert "RV-1: keep recorded for 1 item(s) (3)" in out and "RV-1: remove recorded for 1 item(s) (3)" in out
    assert "Say why: `remove RV-1 <items> because <reason>`" in out, out
    out = chat("sam.sec@example.com", "keep RV-1 1-2", "keep RV-1 5", db=sqlite_url, files=files)
    assert "RV-1: keep recorded for 2 item(s) (1, 2)" in out and "your own access" in out, out
    swept = cli("sweep", "--as-of", iso(now + timedelta(days=30)), db=sqlite_url, files=files)
    assert swept.returncode == 0 and "close review: 1 — RV-1 waits for sign-off" in swept.stdout, swept.stdout
    out = chat("sasha.sec@example.com", "approve RV-1", db=sqlite_url, files=files)
    assert "RV-1: sign-off approved. RV-1 closed:" in out, out
    events = [json.loads(line) for line in cli("audit", "export", db=sqlite_url, check=True).stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types.count("review.opened") == 1 and "review.closed" in types
    opened = next(e for e in events if e["type"] == "review.opened")
    assert opened["data"]["channel"] == "console"
    assert any(e["type"] == "membership.removed" and e["data"]["reason"] == "review" for e in events)
    assert cli("audit", "verify", db=sqlite_url).returncode == 0
    pack = tmp_path / "pack.zip"
    day = (now - timedelta(days=1)).date().isoformat()
    exported = cli("evidence", "export", "--from", day, "--to", now.date().isoformat(), "--out", str(pack),
                   db=sqlite_url, files=files)
    assert exported.returncode == 0, exported.stderr + exported.stdout
    with zipfile.ZipFile(pack) as zf:
        reviews = list(csv.DictReader(io.StringIO(zf.read("reviews.csv").decode())))
        rows = list(csv.DictReader(io.StringIO(zf.read("review_items.csv").decode())))
        manifest = json.loads(zf.read("manifest.json"))
        report = html.unescape(zf.read("report.html").decode())
    assert [(r["review_id"], r["items"], r["kept"], r["removed"], r["defaulted"], r["failed"]) for r in reviews] == [
        ("RV-1", "5", "2", "3", "2", "0")]
    assert list(rows[0]) == ["review_id", "item", "user", "profile", "provider", "group", "held_via", "reviewer",
                             "decision", "decided_by", "decided_at", "comment", "recommendation", "removed_at",
                             "outcome"]
    bob = next(r for r in rows if r["user"] == "bob@example.com")
    assert (bob["decision"], bob["decided_by"], bob["held_via"], bob["outcome"]) == (
        "remove", "mark.mgr@example.com", "standing", "removed")
    assert bob["comment"] == "no sign-in since January" and bob["removed_at"]
    robot = next(r for r in rows if r["user"] == "deploy-bot@example.com")
    assert (robot["decided_by"], robot["reviewer"]) == ("system", "pat.lead@example.com")
    assert "reviews.csv" in manifest["files"] and "review_items.csv" in manifest["files"]
    # report.html's reviews section, from the review.* events of audit.jsonl
    section = report[report.index("<h2>Access reviews: 1 campaign(s)</h2>"):]
    assert "Final decisions: 2 kept, 3 removed (removal rate 60%)" in section, section[:2000]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", section)]
    assert cells[:13] == ["RV-1", REVIEW, cells[2], f"closed {cells[3][7:]}", "5", "3 (60%)", "2", "3", "2", "0",
                          "0 / 0", "approved", "all done at close"], cells[:13]
    assert "<h3>Completion by department</h3>" in section and "Time to decide" in section
    departments = {r[0]: r[1:] for r in zip(cells[13::4], cells[14::4], cells[15::4], cells[16::4], strict=False)}
    assert departments["Engineering"][0] == "3", departments
