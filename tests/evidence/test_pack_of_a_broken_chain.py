"""A pack made while the audit chain did not verify from its first event says so in manifest.json
(``audit.verified`` false), and the CLI exits 1; the pack is still written, for whoever investigates. Its
own verify_pack.py must not then tell an auditor OK: an event before the period, rewritten with a hash of its
own (the chain broken only at the event after it, which the pack does not hold), travels in
audit_earlier.jsonl, passes the check of its own hash, and makes rows; only the exporter saw the chain break.
Before, verify_pack.py said OK and the signature note said the signature vouched for those events."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from bot.evidence_commands import write_pack
from handlers.audit import GENESIS, event_hash
from handlers.evidence import Period
from store.repository import SqlStore
from tests.evidence.test_segment import _chain, _seed
from tests.tamper import tamper


def _rehashed(events: list[dict]) -> list[dict]:
    prev, out = GENESIS, []
    for e in events:
        body = {k: v for k, v in e.items() if k != "hash"} | {"prev_hash": prev}
        prev = event_hash(prev, body)
        out.append({**body, "hash": prev})
    return out


def _shipped(pack: Path) -> subprocess.CompletedProcess[str]:
    script = pack.with_name("verify_pack.py")
    with zipfile.ZipFile(pack) as zf:
        script.write_bytes(zf.read("verify_pack.py"))
    return subprocess.run([sys.executable, "-I", str(script), str(pack)], capture_output=True, text=True,
                          timeout=300)


async def test_a_pack_of_a_broken_chain_does_not_verify(database_url, tmp_path) -> None:
    events = _chain(150)  # day 1 (2026-11-01) holds seq 1-2, day 2 seq 3-50
    events[0]["request_id"] = "REQ-10"  # seq 1, before the period, is an event of REQ-10, decided in it
    events = _rehashed(events)
    _seed(database_url, events)
    store = SqlStore(database_url)
    period = Period.parse("2026-11-02", "2026-11-02")
    try:
        honest = tmp_path / "honest" / "pack.zip"
        summary = await write_pack(store, period, honest, sla_hours=24)
        assert summary.audit["verified"] is True
        done = _shipped(honest)
        assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr

        # seq 1 rewritten, its own hash recomputed: seq 2's prev_hash, which no pack of the period holds, no
        # longer matches
        forged = {k: v for k, v in events[0].items() if k != "hash"} | {"actor": "mallory@example.com"}
        digest = event_hash(forged["prev_hash"], forged)
        tamper(database_url, ("UPDATE audit_events SET actor = :a, hash = :h WHERE seq = 1",
                              {"a": "mallory@example.com", "h": digest}))
        out = tmp_path / "forged" / "pack.zip"
        summary = await write_pack(store, period, out, sla_hours=24)
    finally:
        await store.close()
    assert summary.audit["verified"] is False
    with zipfile.ZipFile(out) as zf:
        assert b"mallory@example.com" in zf.read("audit_earlier.jsonl")
    done = _shipped(out)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL manifest.json: audit.verified" in done.stdout, done.stdout
