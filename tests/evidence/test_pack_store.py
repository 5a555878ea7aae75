"""Every file of a pack against the store itself, in-process: a grant that began before the period
under an older policy version, a policy change inside the period, the chat commands."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

import store.repository
from bot.bootstrap import build_app
from bot.evidence_commands import write_pack
from bot.settings import Settings
from handlers.audit import canonical_json, format_ts
from handlers.evidence import APPROVAL_COLUMNS, EXCEPTION_COLUMNS, GRANT_COLUMNS, REQUEST_COLUMNS, Period
from handlers.records import req_id
from store import schema as t
from tests.support import MutableClock, RecordingNotifier, copy_examples


def _rows(data: bytes, columns: list[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    assert reader.fieldnames == columns
    return list(reader)


def _defused(text: str | None) -> str:
    """A cell a spreadsheet would run as a formula starts with a quote; everything else is verbatim."""
    text = text or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _ts(value: datetime | None) -> str:
    return format_ts(value) if value is not None else ""


async def test_every_file_against_the_store(database_url, tmp_path: Path, monkeypatch) -> None:
    files = copy_examples(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    clock = MutableClock(now - timedelta(days=3))
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)  # events are recorded at the test's clock
    notifier = RecordingNotifier()
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory),
                        env={"ACCESSBOT_EVIDENCE_DIR": str(tmp_path / "server")})

    async def say(app, email: str, text: str):  # type: ignore[no-untyped-def]
        person = await app.service.identify(email)
        return await app.service.handle_text(person, text)

    async with build_app(settings, clock=clock, notifier=notifier) as app:  # policy 2026.11
        await say(app, "carol@example.com", "exception prod-db-read for 5d because INC-9 migration")  # REQ-1
        await say(app, "sam.sec@example.com", "approve REQ-1 ok")
        await say(app, "dana.dba@example.com", "approve REQ-1 fine")
    old_policy = files.policy.read_bytes()
    files.policy.write_text(files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"'))
    clock.at = now
    async with build_app(settings, clock=clock, notifier=notifier) as app:  # policy 2026.12
        await say(app, "bob@example.com", "request analytics-read for 1d")  # REQ-2, auto-approved
        await say(app, "bob@example.com", "request staging-admin for 1h because odd, \"quoted\"\ntext")  # REQ-3
        await say(app, "mark.mgr@example.com", "deny REQ-3 because =cmd|' /C calc'!A0")
        await say(app, "alice@example.com", "request staging-admin for 1h because =1+1")  # REQ-4
        await say(app, "mark.mgr@example.com", "approve REQ-4")
        await say(app, "alice@example.com", "release REQ-4")
        reply = await say(app, "sam.sec@example.com",
                          f"evidence {(now - timedelta(days=1)).date()} {(now + timedelta(days=1)).date()}")
        assert reply.ok and "chain verified: True" in reply.text, reply.text
        served = Path(reply.data["path"])
        assert served.parent == tmp_path / "server"
        refused = await say(app, "bob@example.com", f"evidence {now.date()} {now.date()}")
        assert not refused.ok
        access = await say(app, "sam.sec@example.com", "report access prod-db-read")
        assert "carol@example.com" in access.text and "REQ-1" in access.text and "sam.sec@example.com" in access.text

        period = Period.parse(str((now - timedelta(days=1)).date()), str((now + timedelta(days=1)).date()))
        out = tmp_path / "pack.zip"
        summary = await write_pack(app.store, period, out, sla_hours=24)
        start, end = period.start_at, period.end_at
        async with app.store.engine.connect() as conn:
            requests = (await conn.execute(select(t.requests).order_by(t.requests.c.id))).mappings().all()
            decisions = (await conn.execute(select(t.decisions).order_by(t.decisions.c.id))).mappings().all()
            policies = (await conn.execute(select(t.policy_versions))).mappings().all()
        events = [e.as_dict() async for e in app.store.audit_events()]

    with zipfile.ZipFile(served) as zf:
        assert "manifest.json" in zf.namelist()
    with zipfile.ZipFile(out) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(content["manifest.json"])
    by_id = {r["id"]: r for r in requests}

    submitted = [r for r in requests if start <= r["submitted_at"] < end]
    got = _rows(content["requests.csv"], REQUEST_COLUMNS)
    assert [g["request_id"] for g in got] == [req_id(r["id"]) for r in submitted] == ["REQ-2", "REQ-3", "REQ-4"]
    for g, r in zip(got, submitted, strict=True):
        assert (g["requester"], g["profile"], g["kind"], g["state"], g["policy_version"], g["policy_sha256"],
                g["submitted_at"], g["ticket"]) == (
            r["requester"], r["profile"], r["kind"], r["state"], r["policy_version"], r["policy_sha256"],
            format_ts(r["submitted_at"]), r["ticket"] or "")
        assert g["justification"] == _defused(r["justification"])
    assert {g["policy_version"] for g in got} == {"2026.12"}

    made = [d for d in decisions if start <= d["decided_at"] < end]
    got = _rows(content["approvals.csv"], APPROVAL_COLUMNS)
    assert [(g["request_id"], g["step"], g["approver"], g["decision"], g["comment"], g["decided_at"], g["round"],
             g["policy_version"]) for g in got] == [
        (req_id(d["request_id"]), str(d["step"] + 1), d["approver"], d["decision"],
         _defused(d["comment"]), format_ts(d["decided_at"]),
         str(d["round"]), by_id[d["request_id"]]["policy_version"]) for d in made]
    assert {g["request_id"] for g in got} == {"REQ-3", "REQ-4"}  # REQ-1 was decided before the period

    active = [r for r in requests if r["started_at"] is not None and r["started_at"] < end
              and (r["ended_at"] is None or r["ended_at"] >= start)]
    got = _rows(content["grants.csv"], GRANT_COLUMNS)
    assert [(g["request_id"], g["user"], g["group"], g["started_at"], g["expires_at"], g["ended_at"], g["end_reason"],
             g["policy_version"], g["policy_sha256"]) for g in got] == [
        (req_id(r["id"]), r["requester"], r["group_name"], _ts(r["started_at"]), _ts(r["expires_at"]),
         _ts(r["ended_at"]), r["end_reason"] or "", r["policy_version"], r["policy_sha256"]) for r in active]
    assert {g["request_id"]: g["end_reason"] for g in got} == {"REQ-1": "", "REQ-2": "", "REQ-4": "released"}
    assert {g["request_id"]: g["policy_version"] for g in got}["REQ-1"] == "2026.11"

    assert _rows(content["exceptions.csv"], EXCEPTION_COLUMNS) == []  # REQ-1 was submitted before the period

    in_period = [e for e in events if format_ts(start) <= e["ts"] < format_ts(end)]
    assert content["audit.jsonl"].decode("utf-8").split("\n")[:-1] == [canonical_json(e) for e in in_period]
    assert manifest["audit"]["first_seq"] == in_period[0]["seq"] and manifest["audit"]["verified"] is True

    # both policy versions governed something in the period: the old one REQ-1's grant, byte for byte
    raw = {p["sha256"]: bytes(p["raw"]) for p in policies}
    listed = {p["sha256"] for p in manifest["policy_versions"]}
    assert listed == set(raw) and hashlib.sha256(old_policy).hexdigest() in listed
    for sha, data in raw.items():
        [name] = [n for n in content if n.startswith("policy/") and n.endswith(f"-{sha[:12]}.yaml")]
        assert content[name] == data
    assert summary.files == manifest["files"]
    assert {n for n in content if n != "manifest.json"} == set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(content[name]).hexdigest() == digest

    report = content["report.html"].decode("utf-8")
    assert "Requests: 3" in report and "2026.11" in report and "2026.12" in report
    assert "evidence.exported" in {e["type"] for e in events}
