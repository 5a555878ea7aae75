"""The bytes of a pack: a fixed chain, recorded at fixed instants, gives the very same members.

Every member of the pack (each CSV, audit.jsonl, audit_earlier.jsonl, report.html, manifest.json,
the policies, VERIFYING.md, verify_pack.py) is compared by SHA-256 with the digest it had when this
test was written, so that a change to how a pack is made that changes what it holds is seen. When a
change to a pack's content is intended, the digests below change with it, in the same commit."""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import handlers.evidence
import handlers.evidence_state
import store.repository
from bot.bootstrap import build_app
from bot.evidence_commands import _file
from bot.pack_check import verifier_module
from bot.settings import Settings
from cards.report_html import render_report
from handlers.audit import format_ts
from handlers.evidence import EvidenceMismatch, Period, build_pack
from store.db import make_sync_engine
from store.evidence_queries import SqlEvidenceSource
from tests.support import MutableClock, RecordingNotifier, copy_examples

DAY = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # the period is 2026-11-10 .. 2026-11-11
GENERATED = datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
FIXED = Path(__file__).resolve().parent.parent / "fixtures" / "pack_bytes"  # the policy and directory recorded

GOLDEN = {
    "VERIFYING.md": "1634b4afe71051bb444e4f6bb0e7258aaf990e28a9128b71b6af968178aabba9",
    "approvals.csv": "02498d38c019ba9e06328821b99c55b7d7d70d97d1768a0298642df03ed8e8d7",
    "audit.jsonl": "28fc35b3351d33b51e24447e6fff5909969da6eec3bf16e859a36419d699679a",
    "audit_earlier.jsonl": "77bfee1b3fa4e7cfb2079dedb6ca6c2dcc0d35e9e91aae8287fe289a524ffd75",
    "exceptions.csv": "dc256be98e1f3ff329337280d01861fc2a0a425c11e9377883299dd7b4ed2e56",
    "grants.csv": "86cf11a8a261f03739ca8db700f4f01cb3e4a438875d959e0b0f326c912c567e",
    "manifest.json": "eca31becac268be807360e3c616702ef2a8a24ae2e8d1b88782b11da898ecca6",
    "policy/2026.11-287f98b13866.yaml": "287f98b138662858083e961c783afba046b1c07130fad3dc243d51dc841796d1",
    "policy/2026.12-db7dd2450365.yaml": "db7dd2450365f19a48fcdd8859b191514ecbf78be9dd47b9c6aa670ed77f0472",
    "removals.csv": "a194b35be576dbb475e6e048f3ea962a950cb4e2a0afab9e473bc2f182a7b885",
    "report.html": "1f5ee8eaac8aa50e64bedf176c899974d55c9561142d192311c3fd3329c79e4f",
    "requests.csv": "fedd3240342e6599bdad168b5e7f52ca1a2ea5f17aae12af5fc0c27f3b54beac",
    "review_items.csv": "fc8a44945a8e573272c373a25cdefab9675ee9886feb7bbfa41439cf4f95aaea",
    "reviews.csv": "94d3db46cf3659ff8eac20f9560b578d212defc265b80678c02e634cfbd6613d",
    "verify_pack.py": "e40431843766b9879c1b3d4d22172780fbb380c81185915584aa0cf3128c9fd5",
}


async def _record(database_url: str, tmp_path: Path, monkeypatch) -> Settings:  # type: ignore[no-untyped-def]
    """Requests before, inside and after the period: approved, auto-approved, denied, cancelled,
    extended, released, revoked, expired by a sweep, a leaver's grants ended, an exception, a policy
    change inside the period, a review campaign, refusals."""
    files = copy_examples(tmp_path, FIXED)  # its own copy: the examples may change, these bytes may not
    clock = MutableClock(DAY - timedelta(days=1))
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)
    ids = itertools.count(1)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(ids)))  # provider operations' correlation ids
    notifier = RecordingNotifier()
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))

    async def say(app, email: str, text: str) -> None:  # type: ignore[no-untyped-def]
        clock.advance(minutes=7)
        person = await app.service.identify(email)
        await app.service.handle_text(person, text)

    async with build_app(settings, clock=clock, notifier=notifier) as app:  # policy 2026.11
        await say(app, "carol@example.com", "exception prod-db-read for 5d because INC-9 migration")  # REQ-1
        await say(app, "sam.sec@example.com", "approve REQ-1 ok")
        await say(app, "dana.dba@example.com", "approve REQ-1 fine")
        await say(app, "bob@example.com", "request staging-admin for 4h because before the period")  # REQ-2
        await say(app, "mark.mgr@example.com", "approve REQ-2")
        await say(app, "bob@example.com", "release REQ-2")
        await say(app, "frank@example.com", "request analytics-read for 2d")  # REQ-3, needs dana
        clock.at = DAY
        await say(app, "dana.dba@example.com", "approve REQ-3 =1+1")
        await say(app, "bob@example.com", "request prod-db-read for 2h because INC-1 replica lag")  # REQ-4
        for who in ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"):
            await say(app, who, "approve REQ-4 ok")
        await say(app, "bob@example.com", "extend REQ-4 by 1h because more time")
        for who in ("mark.mgr@example.com", "dev.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"):
            await say(app, who, "approve REQ-4")
        await say(app, "bob@example.com", "release REQ-4")
        await say(app, "bob@example.com", "request staging-admin for 1h")  # REQ-5 denied
        await say(app, "mark.mgr@example.com", "deny REQ-5 because not needed")
        await say(app, "bob@example.com", "request analytics-read for 1d")  # REQ-6 auto-approved, expires
        await say(app, "alice@example.com", "request staging-admin for 1h because =cmd|' /C calc'!A0")  # REQ-7
        await say(app, "alice@example.com", "cancel REQ-7")
        await say(app, "alice@example.com", "request staging-admin for 2h")  # REQ-8 revoked
        await say(app, "mark.mgr@example.com", "approve REQ-8")
        await say(app, "sam.sec@example.com", "revoke REQ-8 because left the project")
        await say(app, "bob@example.com", "approve REQ-1")  # refused: not an approver
        await say(app, "bob@example.com", "status REQ-99")
        await say(app, "sam.sec@example.com", "review start quarterly-privileged")
    files.policy.write_text(files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"'))
    clock.advance(hours=2)
    async with build_app(settings, clock=clock, notifier=notifier) as app:  # policy 2026.12, in the period
        await say(app, "carol@example.com", "release REQ-1")
        await say(app, "carol@example.com", "exception prod-db-read for 2d because INC-10 \"quoted\"\ntext")  # REQ-9
        await say(app, "sam.sec@example.com", "approve REQ-9")
        await say(app, "dana.dba@example.com", "approve REQ-9")
        files.set_active("frank@example.com", False)  # REQ-3's grant ends with its holder
        clock.at = DAY + timedelta(days=1, hours=10)
        await app.service.sweep()  # expires REQ-6
        await say(app, "alice@example.com", "request staging-admin for 1h")  # REQ-10, decided after the period
        clock.at = DAY + timedelta(days=2, hours=1)
        await say(app, "mark.mgr@example.com", "approve REQ-10 later")
        await say(app, "carol@example.com", "extend REQ-9 by 1h because after the period")
        await app.service.sweep()
    return settings


async def _pack(settings: Settings, out: Path) -> dict[str, bytes]:
    async with build_app(settings, record_policy=False) as app:
        def report(figures) -> str:  # type: ignore[no-untyped-def]
            return render_report(figures, generated_at=format_ts(GENERATED), sla_hours=24, chain_ok=figures.chain_ok)

        summary = await build_pack(SqlEvidenceSource(app.store), Period.parse("2026-11-10", "2026-11-11"), out,
                                   generated_at=GENERATED, verifying=_file("VERIFYING.md"),
                                   verifier_script=_file("verify_pack.py"), report=report, rules=verifier_module())
        assert summary.audit["verified"], summary.audit
    with zipfile.ZipFile(out) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


@pytest.mark.parametrize("hot", [None, 2])
async def test_a_fixed_chain_gives_the_same_bytes(database_url, tmp_path: Path, monkeypatch, hot) -> None:
    """``hot``: requests kept in memory while the rows are derived (2: nearly all of them go to the
    temporary file and are read back, in the order the rows need, three at a time)."""
    if hot is not None:
        monkeypatch.setattr(handlers.evidence_state, "HOT", hot)
        monkeypatch.setattr(handlers.evidence_state, "EVICT", 1)
        monkeypatch.setattr(handlers.evidence, "ROW_BATCH", 3)
    settings = await _record(database_url, tmp_path, monkeypatch)
    content = await _pack(settings, tmp_path / "pack.zip")
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(content.items())}
    counts = content["manifest.json"].decode()
    for name in ("requests.csv", "approvals.csv", "grants.csv", "exceptions.csv", "removals.csv", "reviews.csv",
                 "audit_earlier.jsonl"):
        assert f'"{name}": 0' not in counts, (name, counts)  # the chain exercises every file
    assert verifier_module().verify(content) == []  # the shipped verifier derives every row again
    assert digests == GOLDEN, "\n".join(f"{k}: {v}" for k, v in digests.items())


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


async def test_the_store_is_checked_with_the_state_on_file(database_url, tmp_path: Path, monkeypatch) -> None:
    """With nearly every request's state in the temporary file, an edited row, a missing decision
    and a request the chain never held still stop the export, each named."""
    monkeypatch.setattr(handlers.evidence_state, "HOT", 2)
    monkeypatch.setattr(handlers.evidence_state, "EVICT", 1)
    settings = await _record(database_url, tmp_path, monkeypatch)
    [[copy]] = _sql(database_url, "SELECT * FROM requests WHERE id = 5")
    copy.update(id=99, justification="never asked for")
    columns = ", ".join(copy)
    _sql(database_url, "UPDATE requests SET justification = 'edited' WHERE id = 4",
         "DELETE FROM decisions WHERE id = (SELECT max(id) FROM decisions WHERE request_id = 9)",
         (f"INSERT INTO requests ({columns}) VALUES ({', '.join(':' + c for c in copy)})", copy))
    out = tmp_path / "refused.zip"
    with pytest.raises(EvidenceMismatch) as refused:
        await _pack(settings, out)
    problems = refused.value.problems
    assert [p.split(":")[0] for p in problems] == ["requests.csv REQ-4", "approvals.csv REQ-9", "requests.csv REQ-99"]
    assert "in the database but not in the audit chain" in problems[2]
    assert not [name for name in os.listdir(tmp_path) if name.startswith("refused.zip")]  # nor a partial one
