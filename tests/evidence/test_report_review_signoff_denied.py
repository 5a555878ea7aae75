"""A campaign whose removal sign-off is denied (SPEC §7: "a denial removes nothing"), driven through the CLI
(review start, chat, sweep, chat `deny`), exported (`accessbot evidence export`) and certified (`accessbot review
report`): report.html's removals column says nothing was removed (not "all done at close"), and the certification
PDF states the sign-off's result: denied, by whom, and the reason given."""

from __future__ import annotations

import html
import re
import zipfile
from datetime import UTC, datetime, timedelta

from tests.reviews.test_report import _texts
from tests.reviews.test_review_cli import iso
from tests.reviews.test_start import REVIEW, staff
from tests.support import chat, cli, copy_examples


def _denied(tmp_path, sqlite_url):  # type: ignore[no-untyped-def]
    files = copy_examples(tmp_path)
    staff(files)
    now = datetime.now(UTC)
    done = cli("review", "start", REVIEW, "--as-of", iso(now - timedelta(hours=1)), db=sqlite_url, files=files)
    assert done.returncode == 0, done.stderr + done.stdout
    out = chat("mark.mgr@example.com", "keep RV-1 all", "remove RV-1 3 because no sign-in since January",
               db=sqlite_url, files=files)
    assert "remove recorded" in out, out
    chat("sam.sec@example.com", "keep RV-1 1-2", "keep RV-1 5", db=sqlite_url, files=files)
    swept = cli("sweep", "--as-of", iso(now + timedelta(days=30)), db=sqlite_url, files=files)
    assert "waits for sign-off" in swept.stdout, swept.stdout
    out = chat("sasha.sec@example.com", "deny RV-1 because bob covers the on-call rota", db=sqlite_url, files=files)
    assert "denied" in out.lower(), out
    return files, now


def test_report_html_does_not_say_denied_removals_were_all_done(tmp_path, sqlite_url):
    files, now = _denied(tmp_path, sqlite_url)
    pack = tmp_path / "pack.zip"
    exported = cli("evidence", "export", "--from", (now - timedelta(days=1)).date().isoformat(),
                   "--to", now.date().isoformat(), "--out", str(pack), db=sqlite_url, files=files)
    assert exported.returncode == 0, exported.stderr + exported.stdout
    with zipfile.ZipFile(pack) as zf:
        report = html.unescape(zf.read("report.html").decode())
    section = report[report.index("<h2>Access reviews: 1 campaign(s)</h2>"):]
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", section)]
    assert cells[11] == "DENIED: nothing removed", cells[:13]
    assert cells[12] != "all done at close", (
        f"sign-off denied, nothing removed, yet the removals column says {cells[12]!r}: {cells[:13]}")


def test_certification_pdf_states_the_denied_signoff(tmp_path, sqlite_url):
    files, _ = _denied(tmp_path, sqlite_url)
    out = tmp_path / "rv1.pdf"
    done = cli("review", "report", "RV-1", "--out", str(out), db=sqlite_url, files=files)
    assert done.returncode == 0, done.stderr
    text = b" ".join(re.findall(rb"\((.*?)\) Tj", _texts(out.read_bytes())))
    assert b"sign-off denied: not removed" in text  # the item's outcome is there
    assert b"bob covers the on-call rota" in text and b"sasha.sec@example.com" in text, (
        "the certification never says who denied the removal list nor why (review.signoff denied)")
