"""Evidence packs: every file checked against the store, verified offline, tampering detected."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import chat, cli, copy_examples

VERIFY = Path(__file__).resolve().parent.parent / "bot" / "evidence_files" / "verify_pack.py"
TODAY = datetime.now(UTC).date().isoformat()


DEAD_OKTA = {"ACCESSBOT_OKTA_URL": "http://127.0.0.1:9", "ACCESSBOT_OKTA_TOKEN": "x", "ACCESSBOT_IDENTITY": "directory"}
OKTA_PROFILE = """
  - id: okta-tools
    title: Tools at Okta
    owner: pat.lead@example.com
    risk: low
    provider: okta
    group: 00g1toolsgroup
    duration: {default: 1h, max: 1d}
    approval: [owner]
    auto_approve:
      - {department: Engineering, max_duration: 1d}
"""


def _period_with_everything(db: str, files) -> None:  # type: ignore[no-untyped-def]
    """Standard, auto-approved, exception, denied, cancelled, extended, released, revoked, expired,
    terminated, drift and failed requests, all today."""
    chat("bob@example.com",
         "request prod-db-read for 2h because INC-1 replica lag",       # REQ-1 standard, approved, extended, released
         "request staging-admin for 1h",                                # REQ-2 denied
         "request analytics-read for 1d",                               # REQ-3 auto-approved, expired by sweep
         db=db, files=files)
    for who in ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"):
        chat(who, "approve REQ-1 ok", db=db, files=files)
    chat("mark.mgr@example.com", "deny REQ-2 because not needed", db=db, files=files)
    chat("bob@example.com", "extend REQ-1 by 1h because more time", db=db, files=files)
    for who in ("mark.mgr@example.com", "dev.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"):
        chat(who, "approve REQ-1", db=db, files=files)
    chat("bob@example.com", "release REQ-1", "request staging-admin for 1h", "cancel REQ-4", db=db, files=files)
    chat("carol@example.com", "exception prod-db-read for 2d because INC-9 migration", db=db, files=files)  # REQ-5
    chat("sam.sec@example.com", "approve REQ-5", db=db, files=files)
    chat("dana.dba@example.com", "approve REQ-5", db=db, files=files)
    chat("alice@example.com", "request staging-admin for 2h", db=db, files=files)  # REQ-6 revoked by security
    chat("mark.mgr@example.com", "approve REQ-6", db=db, files=files)
    chat("sam.sec@example.com", "revoke REQ-6 because left the project", db=db, files=files)
    chat("frank@example.com", "request analytics-read for 2d", db=db, files=files)  # REQ-7 (needs dana)
    chat("dana.dba@example.com", "approve REQ-7", db=db, files=files)
    # REQ-8: provisioning into an Okta group that cannot be reached fails once its retry budget is spent
    chat("dana.dba@example.com", "request okta-tools for 1h", db=db, files=files, env=DEAD_OKTA)
    files.add_to_group("sg-prod-db-read", "pat.lead@example.com")  # drift
    files.set_active("frank@example.com", False)  # termination
    later = (datetime.now(UTC) + timedelta(days=1, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cli("sweep", "--as-of", later, db=db, files=files, check=True, env=DEAD_OKTA)  # expires REQ-3, terminates frank


def _read(pack: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pack) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


@pytest.fixture
def pack(database_url, tmp_path):
    files = copy_examples(tmp_path)
    # REQ-8's retry budget is spent on the real clock by the time the sweep runs (an --as-of sweep
    # judges timers, never how long a provider has been retried)
    files.policy.write_text(files.policy.read_text() + OKTA_PROFILE + "\nschedule: {retry_budget: 1s}\n")
    _period_with_everything(database_url, files)
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(out), db=database_url, files=files)
    assert r.returncode == 0, r.stderr + r.stdout
    return out, database_url, files


def test_pack(pack, tmp_path, request):
    """One period with every kind of event (built once a backend: it takes a few dozen commands)."""
    check_matches_the_store(*pack)
    check_stdlib_verifier_and_tampering(pack[0], tmp_path)
    if "sqlite" in request.node.callspec.id:
        check_report_renders_offline_in_chromium(pack[0], tmp_path)


def check_matches_the_store(out, db, files):  # type: ignore[no-untyped-def]
    content = _read(out)
    assert {"manifest.json", "requests.csv", "approvals.csv", "grants.csv", "exceptions.csv", "audit.jsonl",
            "report.html", "VERIFYING.md", "verify_pack.py"} <= set(content)
    manifest = json.loads(content["manifest.json"])
    events = [json.loads(x) for x in cli("audit", "export", db=db, check=True).stdout.splitlines()]
    in_pack = [json.loads(x) for x in content["audit.jsonl"].decode().splitlines()]
    pack_seqs = {e["seq"] for e in in_pack}
    assert in_pack == [e for e in events if e["seq"] in pack_seqs]  # byte-for-byte the exported events
    assert manifest["audit"]["verified"] is True and manifest["audit"]["prev_hash"] == "0" * 64
    assert manifest["audit"]["head_hash"] == in_pack[-1]["hash"]

    requests = _rows(content["requests.csv"])
    states = {r["request_id"]: r["state"] for r in requests}
    assert states == {"REQ-1": "released", "REQ-2": "denied", "REQ-3": "expired", "REQ-4": "cancelled",
                      "REQ-5": "active", "REQ-6": "revoked", "REQ-7": "revoked", "REQ-8": "failed"}
    assert all(r["policy_sha256"] == manifest["policy_versions"][0]["sha256"] for r in requests)
    grants = {g["request_id"]: g for g in _rows(content["grants.csv"])}
    assert {k: g["end_reason"] for k, g in grants.items()} == {
        "REQ-1": "released", "REQ-3": "expired", "REQ-5": "", "REQ-6": "revoked", "REQ-7": "terminated"}
    approvals = _rows(content["approvals.csv"])
    assert ("REQ-2", "1", "mark.mgr@example.com", "denied", "not needed") in {
        (a["request_id"], a["step"], a["approver"], a["decision"], a["comment"]) for a in approvals}
    assert len([a for a in approvals if a["request_id"] == "REQ-1"]) == 8  # the chain twice (extension)
    exceptions = _rows(content["exceptions.csv"])
    assert [(e["request_id"], e["approvers"]) for e in exceptions] == [
        ("REQ-5", "sam.sec@example.com;dana.dba@example.com")]
    policy_files = [n for n in content if n.startswith("policy/")]
    assert len(policy_files) == 1 and content[policy_files[0]] == files.policy.read_bytes()
    for name, digest in manifest["files"].items():
        import hashlib

        assert hashlib.sha256(content[name]).hexdigest() == digest
    assert manifest["counts"]["requests.csv"] == 8 and manifest["counts"]["audit.jsonl"] == len(in_pack)
    types = {e["type"] for e in in_pack}
    assert {"drift.detected", "user.terminated", "grant.extended", "grant.expired", "request.cancelled",
            "grant.provision_failed", "request.denied", "grant.released", "grant.revoked"} <= types
    failed = next(e for e in in_pack if e["type"] == "grant.provision_failed")
    assert failed["request_id"] == "REQ-8" and failed["data"]["correlation_id"]
    report = content["report.html"].decode()
    assert "REQ-5" in report and "Requests: 8" in report and "<svg" in report
    assert "http://" not in report and "https://" not in report


def check_stdlib_verifier_and_tampering(out, tmp_path):  # type: ignore[no-untyped-def]
    ok = subprocess.run([sys.executable, "-I", str(VERIFY), str(out)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    # the copy inside the pack verifies the unpacked folder too
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as zf:
        zf.extractall(folder)
    ok = subprocess.run([sys.executable, "-I", "verify_pack.py", "."], capture_output=True, text=True, cwd=folder)
    assert ok.returncode == 0, ok.stdout
    content = _read(out)
    for name in content:
        if name == "manifest.json" or not content[name]:
            continue
        data = bytearray(content[name])
        data[len(data) // 2] ^= 0x01
        bad = tmp_path / f"bad-{name.replace('/', '_')}.zip"
        with zipfile.ZipFile(bad, "w") as zf:
            for other, raw in content.items():
                zf.writestr(other, bytes(data) if other == name else raw)
        r = subprocess.run([sys.executable, "-I", str(VERIFY), str(bad)], capture_output=True, text=True)
        assert r.returncode == 1 and f"FAIL {name}" in r.stdout, (name, r.stdout)


def test_segment_of_a_later_period_verifies_on_its_own(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request analytics-read for 1d", db=sqlite_url, files=files)
    tomorrow = datetime.fromordinal(datetime.now(UTC).date().toordinal() + 1).date().isoformat()
    out = tmp_path / "empty.zip"
    r = cli("evidence", "export", "--from", tomorrow, "--to", tomorrow, "--out", str(out), db=sqlite_url, files=files)
    assert r.returncode == 0, r.stderr
    manifest = json.loads(_read(out)["manifest.json"])
    assert manifest["counts"]["audit.jsonl"] == 0 and manifest["audit"]["prev_hash"] != "0" * 64
    assert subprocess.run([sys.executable, "-I", str(VERIFY), str(out)], capture_output=True).returncode == 0
    r = cli("evidence", "export", "--from", "2026-13-01", "--to", tomorrow, "--out", str(out), db=sqlite_url)
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr


def test_reports_and_chat(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request analytics-read for 1d", db=sqlite_url, files=files)
    files.add_to_group("sg-prod-db-read", "pat.lead@example.com")
    files.set_active("bob@example.com", False)
    cli("sweep", db=sqlite_url, files=files, check=True)
    drift = json.loads(cli("report", "drift", "--format", "json", db=sqlite_url, files=files, check=True).stdout)
    found = [(d["group"], d["user"], d["status"]) for d in drift]
    assert found == [("sg-prod-db-read", "pat.lead@example.com", "open")]
    terms = cli("report", "terminations", "--format", "csv", db=sqlite_url, files=files, check=True).stdout
    assert "bob@example.com" in terms and "REQ-1" in terms and ",yes" in terms
    access = cli("report", "access", "--profile", "analytics-read", db=sqlite_url, files=files, check=True).stdout
    assert "none" in access
    out = chat("sam.sec@example.com", f"evidence {TODAY} {TODAY}", "report drift", db=sqlite_url, files=files)
    assert "Evidence pack for" in out and ".zip" in out and "pat.lead@example.com" in out
    out = chat("alice@example.com", f"evidence {TODAY} {TODAY}", db=sqlite_url, files=files)
    assert "security team only" in out


def check_report_renders_offline_in_chromium(out, tmp_path):  # type: ignore[no-untyped-def]
    if not shutil.which("chromium") and not os.environ.get("CI"):
        return  # Chromium is not installed here (CI installs it and requires it)
    folder = tmp_path / "report"
    with zipfile.ZipFile(out) as zf:
        zf.extract("report.html", folder)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Chromium is required in CI"
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'chr'}"]
    dom = subprocess.run([*args, "--dump-dom", (folder / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert "Access evidence" in dom.stdout and "REQ-5" in dom.stdout and "<svg" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([*args, f"--screenshot={shot}", "--window-size=1000,1400", (folder / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
