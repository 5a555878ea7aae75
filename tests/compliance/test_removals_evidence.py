"""removals.csv and report.html of the evidence pack show a leaver's grants and standing memberships."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from bot.evidence_commands import write_pack
from handlers.evidence import Period
from handlers.sweeps import sweep
from tests.support import harness

BOB = "bob@example.com"
VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"


async def test_removals_csv_lists_a_leavers_grant_and_standing_membership(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        h.files.add_to_group("sg-prod-db-read", BOB)
        h.files.set_active(BOB, False)
        await sweep(h.app.deps, drift=False)
        h.files.add_to_group("sg-staging-admin", "pat.lead@example.com")  # drift, removed from chat
        await sweep(h.app.deps)
        assert (await h.say("sam.sec@example.com", "drift remove D-1 because no grant")).ok
        today = datetime.now(UTC).date().isoformat()
        out = tmp_path / "pack.zip"
        await write_pack(h.app.store, Period.parse(today, today), out, sla_hours=24)
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("removals.csv").decode())))
        html = zf.read("report.html").decode()
    assert sorted((r["user"], r["group"], r["reason"], r["request_id"]) for r in rows) == [
        (BOB, "sg-analytics-read", "terminated", "REQ-1"), (BOB, "sg-prod-db-read", "terminated", ""),
        ("pat.lead@example.com", "sg-staging-admin", "drift", "")]
    assert all(r["detected_at"] and r["removed_at"] and float(r["hours"]) < 1 for r in rows)
    assert "Removals by the identity provider: 3" in html and "sg-prod-db-read" in html
    # the drift finding, its resolution, who chose it and the hours to resolution
    drift = html[html.index("<h2>Drift"):]
    assert "<td>removed</td><td>sam.sec@example.com</td>" in drift and "<td>0.00</td>" in drift, drift
    ok = await asyncio.to_thread(subprocess.run, [sys.executable, "-I", str(VERIFY), str(out)], capture_output=True,
                                 text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
