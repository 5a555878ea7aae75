"""The audit segment of a pack: exact §3.5 lines, paging by seq inside a ts window, the hash of the
event before the period, the whole chain checked around the segment, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import insert

import store.evidence_queries as queries
from bot.evidence_commands import write_pack
from handlers.audit import GENESIS, ChainVerifier, canonical_json, event_hash, format_ts
from handlers.evidence import Period, audit_lines, verify_rows
from store import schema as t
from store.db import make_sync_engine, upgrade
from store.evidence_queries import SqlEvidenceSource
from store.repository import SqlStore
from tests.tamper import tamper

VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"
DAY1 = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
ODD = ['quote " and \\ backslash', "tab\tnewline\n", "ünïcødé ✓ 日本", "\u2028line sep", "nul \x00 bell \x07",
       "emoji 🙂", "</script><!--"]


def _chain(n: int, start: datetime = DAY1, step: timedelta = timedelta(minutes=30)) -> list[dict]:
    events, prev = [], GENESIS
    for i in range(1, n + 1):
        body = {"seq": i, "ts": format_ts(start + step * (i - 1)), "type": "approval.granted" if i % 3 else "note",
                "actor": "system" if i % 5 == 0 else f"user{i}@example.com",
                "request_id": None if i % 4 == 0 else f"REQ-{i}", "profile": None if i % 6 == 0 else "prod-db-read",
                "data": {"step": i % 3, "comment": ODD[i % len(ODD)], "nested": {"z": [1, 2.5, None, True]}},
                "prev_hash": prev}
        prev = event_hash(prev, body)
        events.append({**body, "hash": prev})
    return events


def _verifier() -> ModuleType:
    """The stand-alone verifier shipped in every pack, loaded from its file."""
    spec = importlib.util.spec_from_file_location("verify_pack", VERIFY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(e: dict) -> tuple:
    return (e["seq"], e["ts"], e["type"], e["actor"], e["request_id"], e["profile"], canonical_json(e["data"]),
            e["prev_hash"], e["hash"])


def test_lines_are_canonical_json_of_each_event() -> None:
    events = _chain(40)
    verifier = ChainVerifier()
    data = audit_lines([_row(e) for e in events], verifier)
    assert data.decode("utf-8").split("\n")[:-1] == [canonical_json(e) for e in events]
    assert verifier.result().ok and verifier.result().head_hash == events[-1]["hash"]
    assert verify_rows([_row(e) for e in events], ChainVerifier())

    changed = [_row(e) for e in events]
    changed[7] = (*changed[7][:6], changed[7][6].replace('"step":', '"step": '), *changed[7][7:])
    verifier = ChainVerifier()
    assert not verify_rows(changed, verifier) and verifier.result().bad_seq == 8


def _seed(url: str, events: list[dict]) -> None:
    upgrade(url)
    engine = make_sync_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(t.audit_events), [dict(zip(
            ("seq", "ts", "type", "actor", "request_id", "profile", "data", "prev_hash", "hash"), _row(e),
            strict=True)) for e in events])
    engine.dispose()


def _set_actor(url: str, seq: int, actor: str) -> None:
    """Change a stored event behind the application's back (the database's guard off meanwhile)."""
    tamper(url, ("UPDATE audit_events SET actor = :a WHERE seq = :s", {"a": actor, "s": seq}))


async def test_pages_window_and_chain_around_it(database_url, tmp_path, monkeypatch) -> None:
    events = _chain(150)  # 2026-11-01 23:00 onwards, every 30 min: day 1 holds seq 1-2, day 2 seq 3-50
    _seed(database_url, events)
    monkeypatch.setattr(queries, "AUDIT_PAGE", 7)  # many pages, a boundary inside the window
    store = SqlStore(database_url)
    try:
        source = SqlEvidenceSource(store)
        period = Period.parse("2026-11-02", "2026-11-02")
        start, end = format_ts(period.start_at), format_ts(period.end_at)
        pages = [list(p) async for p in source.audit_pages(ts_from=start, ts_to=end)]
        seqs = [int(r[0]) for p in pages for r in p]
        assert seqs == [e["seq"] for e in events if start <= e["ts"] < end] == list(range(3, 51))
        assert all(len(p) <= 7 for p in pages)
        assert await source.event_before(start) == {"seq": 2, "hash": events[1]["hash"]}
        assert [p async for p in source.audit_pages(ts_from="2027-01-01T00:00:00.000Z", ts_to="2027-01-02")] == []

        out = tmp_path / "pack.zip"
        summary = await write_pack(store, period, out, sla_hours=24)
        assert summary.audit == {"first_seq": 3, "last_seq": 50, "prev_hash": events[1]["hash"],
                                 "head_hash": events[49]["hash"], "verified": True, "segment_verified": True}
        with zipfile.ZipFile(out) as zf:
            lines = zf.read("audit.jsonl").decode("utf-8").split("\n")[:-1]
        assert lines == [canonical_json(e) for e in events[2:50]]
        assert _verifier().verify(_verifier().load(out)) == []

        # a changed event outside the period: the segment still verifies, the chain at export does not
        for bad in (1, 120):
            _set_actor(database_url, bad, "mallory@example.com")
            check = await source.verify_range(first_seq=1, last_seq=None, prev_hash=GENESIS)
            assert not check.ok and check.bad_seq == bad
            summary = await write_pack(store, period, out, sla_hours=24)
            assert summary.audit["segment_verified"] is True and summary.audit["verified"] is False
            with zipfile.ZipFile(out) as zf:
                manifest = json.loads(zf.read("manifest.json"))
                assert "did NOT verify" in zf.read("report.html").decode()
            assert manifest["audit"]["verified"] is False
            _set_actor(database_url, bad, events[bad - 1]["actor"])
    finally:
        await store.close()


@pytest.mark.parametrize("first,last", [("2026-11-01", "2026-11-01"), ("2026-11-01", "2026-11-04")])
async def test_period_from_the_first_event(sqlite_url, tmp_path, first, last) -> None:
    events = _chain(150)
    _seed(sqlite_url, events)
    store = SqlStore(sqlite_url)
    try:
        summary = await write_pack(store, Period.parse(first, last), tmp_path / "p.zip", sla_hours=24)
    finally:
        await store.close()
    inside = [e for e in events if e["ts"] < format_ts(Period.parse(first, last).end_at)]
    assert summary.audit["prev_hash"] == GENESIS and summary.audit["first_seq"] == 1
    assert summary.audit["last_seq"] == inside[-1]["seq"] and summary.audit["verified"] is True
    assert summary.counts["audit.jsonl"] == len(inside)
