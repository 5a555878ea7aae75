"""report.html shows first what an auditor samples first: refusals, who approved each grant,
auto-approved grants, grants without justification; it agrees with grants.csv even after a sweep
judged as of a future instant; and its tables fit a 1280 px window (a real Chromium screenshot)."""

from __future__ import annotations

import csv
import html
import io
import json
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from tests.support import chat, cli, copy_examples

TODAY = datetime.now(UTC).date().isoformat()
LONG = "INC-9 https://tickets.example.com/browse/INC-9/" + "very-long-path-segment-" * 6 + "end"


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@pytest.fixture
def pack(sqlite_url, tmp_path):  # type: ignore[no-untyped-def]
    db, files = sqlite_url, copy_examples(tmp_path)
    chat("alice@example.com", "request prod-db-read for 30m because INC-7 page", db=db, files=files)  # REQ-1, auto
    chat("bob@example.com", "request staging-admin for 1h", db=db, files=files)  # REQ-2, no justification
    chat("bob@example.com", "approve REQ-2", db=db, files=files)  # self-approval, refused
    chat("alice@example.com", "approve REQ-2", "pending", db=db, files=files)  # not an approver; security only
    chat("mark.mgr@example.com", "approve REQ-2", db=db, files=files)
    chat("carol@example.com", f"exception prod-db-read for 2d because {LONG}", db=db, files=files)  # REQ-3
    chat("sam.sec@example.com", "approve REQ-3", db=db, files=files)
    chat("dana.dba@example.com", "approve REQ-3 fine", db=db, files=files)
    as_of = (datetime.now(UTC) + timedelta(hours=10)).replace(microsecond=0)
    cli("sweep", "--as-of", as_of.strftime("%Y-%m-%dT%H:%M:%SZ"), db=db, files=files, check=True)
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(out), db=db, files=files)
    assert r.returncode == 0, r.stdout + r.stderr
    with zipfile.ZipFile(out) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    return content, as_of


def test_report_shows_what_an_auditor_samples_first(pack) -> None:
    content, as_of = pack
    manifest = json.loads(content["manifest.json"])
    report = html.unescape(content["report.html"].decode())
    grants = {g["request_id"]: g for g in csv.DictReader(io.StringIO(content["grants.csv"].decode()))}

    # the judged instant and the recording time, both; nothing recorded after the pack was made
    generated = _at(manifest["generated_at"])
    for rid in ("REQ-1", "REQ-2"):
        g = grants[rid]
        assert g["end_reason"] == "expired" and _at(g["ended_at"]) <= generated
        assert _at(g["ended_as_of"]) == as_of, g
        assert g["ended_at"][:16].replace("T", "<br>") in report
        assert g["ended_as_of"][:16].replace("T", " ") in report
    assert grants["REQ-1"]["auto_approved"] and grants["REQ-1"]["approved_by"] == ""
    assert grants["REQ-2"]["approved_by"] == "mark.mgr@example.com" and grants["REQ-2"]["justification"] == ""
    assert grants["REQ-3"]["approved_by"] == "sam.sec@example.com;dana.dba@example.com"

    sample = report[report.index("<h2>Refusals"):]
    for expected in ("self-approval", "not-an-approver", "pending", "bob@example.com", "alice@example.com"):
        assert expected in sample, expected
    table = report[report.index("<h2>Grants"):]
    rows = {rid: table[table.index(f">{rid}</td>"):].split("</tr>", 1)[0] for rid in grants}
    assert "auto-approved" in rows["REQ-1"] and "INC-7 page" in rows["REQ-1"]
    assert "mark.mgr@example.com" in rows["REQ-2"] and "no justification" in rows["REQ-2"]
    assert "sam.sec@example.com" in rows["REQ-3"] and "dana.dba@example.com" in rows["REQ-3"]
    assert "no justification" not in rows["REQ-1"] + rows["REQ-3"]
    # the report flags exactly the grants whose rows in grants.csv show them held too long
    for rid, g in grants.items():
        held = (_at(g["ended_at"]) if g["ended_at"] else generated) - _at(g["started_at"])
        too_long = held > _at(g["expires_at"]) - _at(g["started_at"]) + timedelta(minutes=1)
        assert ("held past its expiry" in rows[rid]) == too_long, (rid, rows[rid])


def test_tables_fit_a_1280_pixel_window(pack, tmp_path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed")
    content, _ = pack
    page = tmp_path / "report.html"
    page.write_bytes(content["report.html"])
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
                   capture_output=True, timeout=120)
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        assert width == 1280
        # nothing is drawn in the window's last 24 px columns: no table runs off to the right
        edge = [rgb.getpixel((x, y)) for x in range(width - 24, width) for y in range(0, height, 2)]
    assert all(p == (255, 255, 255) for p in edge), "something is drawn at the right edge of a 1280 px window"
    assert LONG[:40] in html.unescape(content["report.html"].decode())
