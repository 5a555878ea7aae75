"""A campaign whose sign-off failed closed (its policy version is lost; review.closed {signoff: failed, rule}),
certified and exported through the CLI: the certification PDF says the sign-off failed and why (the rule), the
removals column of report.html does not say "all done at close", and the pack verifies."""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
import zipfile

from tests.reviews.test_report import _texts
from tests.reviews.test_signoff_lost_version import _signoff_pending, _stricter
from tests.support import Harness, MutableClock, RecordingNotifier, cli


async def _failed(sqlite_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from bot.bootstrap import build_app

    files, settings = await _signoff_pending(sqlite_url, tmp_path)
    _stricter(monkeypatch)
    notifier = RecordingNotifier()
    async with build_app(settings, clock=MutableClock(), notifier=notifier) as app:
        h = Harness(app, app.deps.clock, notifier, files)  # type: ignore[arg-type]
        await app.service.sweep()
        (closed,) = await h.events("review.closed")
    assert closed["data"]["signoff"] == "failed" and "can no longer be read" in closed["data"]["rule"], closed
    return files


async def test_certification_pdf_says_the_signoff_failed_and_why(sqlite_url, tmp_path, monkeypatch):
    files = await _failed(sqlite_url, tmp_path, monkeypatch)
    monkeypatch.undo()
    out = tmp_path / "rv1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0, done.stderr
    text = b" ".join(re.findall(rb"\((.*?)\) Tj", _texts(out.read_bytes())))
    assert b"not removed" in text
    assert b"can no longer be read" in text, "the PDF never states the failed sign-off's rule (review.closed rule)"


async def test_report_html_removals_of_a_failed_signoff(sqlite_url, tmp_path, monkeypatch):
    files = await _failed(sqlite_url, tmp_path, monkeypatch)
    monkeypatch.undo()
    pack = tmp_path / "pack.zip"
    done = cli("evidence", "export", "--from", "2026-11-22", "--to", "2026-12-31", "--out", str(pack),
               db=sqlite_url, files=files)
    assert done.returncode == 0, done.stderr + done.stdout
    with zipfile.ZipFile(pack) as zf:
        report = html.unescape(zf.read("report.html").decode())
        zf.extractall(tmp_path / "pk")
    checked = await asyncio.to_thread(subprocess.run, [sys.executable, "verify_pack.py"], cwd=tmp_path / "pk",
                                      capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.startswith("OK"), checked.stdout + checked.stderr
    section = report[report.index("<h2>Access reviews"):]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", section)]
    assert cells[11] == "FAILED (could not be completed): nothing removed", cells[:13]
    assert cells[12] != "all done at close", cells[:13]
