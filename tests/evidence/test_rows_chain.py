"""Every row of requests.csv, approvals.csv, grants.csv and exceptions.csv is derived from the audit
events in the pack: a database row that contradicts the chain stops the export (naming it), and a
CSV edited inside the zip (its hash written into the manifest) is named by verify_pack.py."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import store.repository
from bot.evidence_commands import write_pack
from handlers.evidence import EvidenceMismatch, Period
from store.db import make_sync_engine
from tests.support import MutableClock, chat, cli, copy_examples, harness

TODAY = datetime.now(UTC).date().isoformat()
VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"


def _read(pack: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pack) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def repack(content: dict[str, bytes], out: Path, changes: dict[str, bytes]) -> Path:
    """The pack with some members changed, their SHA-256 and row counts written into the manifest."""
    content = {**content, **changes}
    manifest = json.loads(content["manifest.json"])
    for name, data in changes.items():
        manifest["files"][name] = hashlib.sha256(data).hexdigest()
        if name.endswith(".csv"):
            manifest["counts"][name] = sum(1 for _ in csv.reader(io.StringIO(data.decode()))) - 1
    content["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in content.items():
            zf.writestr(name, data)
    return out


def _verify(pack: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(VERIFY), str(pack)], capture_output=True, text=True)


def _sql(url: str, *statements: str | tuple[str, dict]) -> list:
    engine = make_sync_engine(url)
    out = []
    with engine.begin() as conn:
        for s in statements:
            sql, params = s if isinstance(s, tuple) else (s, {})
            result = conn.execute(text(sql), params)
            out.append([dict(r) for r in result.mappings()] if result.returns_rows else None)
    engine.dispose()
    return out


def _csv_edit(data: bytes, request_id: str, column: str, value: str | None) -> bytes:
    """A CSV with one cell changed (``value`` None: the row removed)."""
    rows = list(csv.reader(io.StringIO(data.decode())))
    header, body = rows[0], rows[1:]
    for row in body:
        if row[0] == request_id:
            if value is None:
                body.remove(row)
            else:
                row[header.index(column)] = value
            break
    else:
        raise AssertionError(f"{request_id} not in the file")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    return out.getvalue().encode()


@pytest.fixture
def recorded(database_url, tmp_path):  # type: ignore[no-untyped-def]
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h because deploy the fix", "request analytics-read for 1d",
         db=database_url, files=files)  # REQ-1 (manager), REQ-2 auto-approved
    chat("mark.mgr@example.com", "approve REQ-1 fine", db=database_url, files=files)
    chat("carol@example.com", "exception prod-db-read for 2d because INC-9 migration", db=database_url,
         files=files)  # REQ-3
    chat("sam.sec@example.com", "approve REQ-3", db=database_url, files=files)
    chat("dana.dba@example.com", "approve REQ-3 ok", db=database_url, files=files)
    return database_url, files


def _export(db: str, files, out: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return cli("evidence", "export", "--from", TODAY, "--to", TODAY, "--out", str(out), db=db, files=files)


def test_export_refuses_rows_that_contradict_the_chain(recorded, tmp_path) -> None:
    db, files = recorded
    good = tmp_path / "good.zip"
    r = _export(db, files, good)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _verify(good).returncode == 0

    def refused(fragment: str) -> None:
        out = tmp_path / "bad.zip"
        r = _export(db, files, out)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
        assert fragment in r.stderr, r.stderr
        assert not out.exists() and not list(tmp_path.glob("bad.zip*"))
        assert cli("audit", "verify", db=db).returncode == 0  # the chain itself is intact

    _sql(db, "UPDATE requests SET justification = 'approved change' WHERE id = 1")
    refused("requests.csv REQ-1: justification")
    _sql(db, "UPDATE requests SET justification = 'deploy the fix' WHERE id = 1")
    assert _export(db, files, tmp_path / "again.zip").returncode == 0

    [[decision]] = _sql(db, "SELECT * FROM decisions WHERE request_id = 3 AND approver = 'dana.dba@example.com'")
    _sql(db, f"UPDATE decisions SET approver = 'mallory@example.com' WHERE id = {decision['id']}")
    refused("approvals.csv REQ-3")
    _sql(db, f"UPDATE decisions SET approver = 'dana.dba@example.com' WHERE id = {decision['id']}")

    [[grant]] = _sql(db, "SELECT * FROM requests WHERE id = 2")
    _sql(db, ("UPDATE requests SET expires_at = :e WHERE id = 2",
              {"e": grant["expires_at"] + timedelta(days=30) if isinstance(grant["expires_at"], datetime)
               else "2099-01-01 00:00:00"}))
    refused("grants.csv REQ-2: expires_at")
    _sql(db, ("UPDATE requests SET expires_at = :e WHERE id = 2", {"e": grant["expires_at"]}))

    _sql(db, "DELETE FROM requests WHERE id = 2")
    refused("requests.csv REQ-2: in the audit chain but not in the database")


def test_verify_pack_names_the_file_and_row(recorded, tmp_path, request) -> None:
    if "postgresql" in request.node.callspec.id:
        pytest.skip("the pack is the same on both backends; tampering with it needs no database")
    db, files = recorded
    good = tmp_path / "good.zip"
    assert _export(db, files, good).returncode == 0
    content = _read(good)
    assert "audit_earlier.jsonl" in content and json.loads(content["manifest.json"])["rows"]
    cases = [
        ("requests.csv", "REQ-1", "justification", "approved change", "requests.csv row 1 (REQ-1): justification"),
        ("requests.csv", "REQ-2", "state", "released", "requests.csv row 2 (REQ-2): state"),
        ("requests.csv", "REQ-2", "ticket", None, "requests.csv row 2: missing REQ-2"),
        ("approvals.csv", "REQ-3", "approver", "mallory@example.com", "approvals.csv row 2 (REQ-3): approver"),
        ("grants.csv", "REQ-1", "expires_at", "2099-01-01T00:00:00.000Z", "grants.csv row 1 (REQ-1): expires_at"),
        ("grants.csv", "REQ-2", "approved_by", "", None),
        ("exceptions.csv", "REQ-3", "approvers", "sam.sec@example.com", "exceptions.csv row 1 (REQ-3): approvers"),
    ]
    for name, rid, column, value, expected in cases:
        changed = _csv_edit(content[name], rid, column, value)
        bad = repack(content, tmp_path / "bad.zip", {name: changed})
        r = _verify(bad)
        if expected is None:  # REQ-2 was auto-approved: nobody approved it, and that is what the row says
            assert r.returncode == 0, r.stdout
            continue
        assert r.returncode == 1, (name, r.stdout)
        assert f"FAIL {expected}" in r.stdout, (name, r.stdout)
        check = cli("evidence", "verify", str(bad))
        assert check.returncode == 1 and expected in check.stdout


async def test_grant_from_before_the_period_is_derived_from_earlier_events(sqlite_url, tmp_path,
                                                                           monkeypatch) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = MutableClock(now - timedelta(days=3))
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)  # events recorded three days ago
    async with harness(sqlite_url, tmp_path, clock=clock) as h:
        await h.say("carol@example.com", "exception prod-db-read for 5d because INC-9 migration")  # REQ-1
        await h.say("sam.sec@example.com", "approve REQ-1")
        await h.say("dana.dba@example.com", "approve REQ-1 fine")
        clock.at = now
        await h.say("bob@example.com", "request analytics-read for 1d")  # REQ-2
        period = Period.parse(str(now.date()), str(now.date()))
        out = tmp_path / "pack.zip"
        await write_pack(h.app.store, period, out, sla_hours=24)
        earlier_events = [e for e in await h.events() if e["ts"] < f"{now.date()}T00:00:00.000Z"]

        content = _read(out)
        earlier = [json.loads(x) for x in content["audit_earlier.jsonl"].decode().split("\n")[:-1]]
        assert earlier == [e for e in earlier_events if e["request_id"] == "REQ-1"]
        grants = list(csv.DictReader(io.StringIO(content["grants.csv"].decode())))
        assert [(g["request_id"], g["approved_by"], g["kind"], g["justification"]) for g in grants] == [
            ("REQ-1", "sam.sec@example.com;dana.dba@example.com", "exception", "INC-9 migration"),
            ("REQ-2", "", "standard", "")]
        assert grants[1]["auto_approved"]
        assert _verify(out).returncode == 0

        # an earlier event changed in the pack (its hash in the manifest too) is caught
        forged = content["audit_earlier.jsonl"].replace(b"INC-9 migration", b"INC-9 approved!")
        r = _verify(repack(content, tmp_path / "forged.zip", {"audit_earlier.jsonl": forged}))
        assert r.returncode == 1 and "FAIL audit_earlier.jsonl seq 2: hash does not match" in r.stdout, r.stdout

        # the database row of that earlier grant edited: the export refuses, naming it
        async with h.app.store.engine.begin() as conn:
            await conn.execute(text("UPDATE requests SET justification = 'x' WHERE id = 1"))
        with pytest.raises(EvidenceMismatch, match="REQ-1: justification"):
            await write_pack(h.app.store, period, tmp_path / "refused.zip", sla_hours=24)
        assert not (tmp_path / "refused.zip").exists()
        reply = await h.say("sam.sec@example.com", f"evidence {now.date()} {now.date()}")  # the chat command too
        assert not reply.ok and "No evidence pack written" in reply.text and "REQ-1: justification" in reply.text


def test_the_exporter_and_the_verifier_share_their_columns() -> None:
    from bot.pack_check import verifier_module
    from handlers import evidence

    rules = verifier_module()
    assert rules.REQUEST_COLUMNS == evidence.REQUEST_COLUMNS and rules.APPROVAL_COLUMNS == evidence.APPROVAL_COLUMNS
    assert rules.GRANT_COLUMNS == evidence.GRANT_COLUMNS and rules.EXCEPTION_COLUMNS == evidence.EXCEPTION_COLUMNS
