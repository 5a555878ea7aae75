"""A request decided while its period's pack is being written. The pack is the chain as it was when the
export began: audit.jsonl ends at the head the export read first, and audit_earlier.jsonl holds the events
before the period of every request audit.jsonl concerns. Before, audit.jsonl was read up to whatever the
chain held once audit_earlier.jsonl was written: an approval recorded meanwhile went into audit.jsonl
without its request's earlier events, so approvals.csv and grants.csv named no policy and no user for it
(rows verify_pack.py derived the same way, so it said OK), and the earlier pack given refuted the pack."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import store.repository
from bot import evidence_commands
from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.evidence import Period
from tests.support import MutableClock, RecordingNotifier, copy_examples


def _shipped(pack: Path, *earlier: Path) -> subprocess.CompletedProcess[str]:
    script = pack.with_name("verify_pack.py")
    with zipfile.ZipFile(pack) as zf:
        script.write_bytes(zf.read("verify_pack.py"))
    return subprocess.run([sys.executable, "-I", str(script), str(pack), *map(str, earlier)],
                          capture_output=True, text=True, timeout=300)


def _lines(pack: Path, name: str) -> list[dict]:
    with zipfile.ZipFile(pack) as zf:
        return [json.loads(x) for x in zf.read(name).decode("utf-8").split("\n") if x]


async def test_a_request_decided_while_the_pack_is_written(database_url, tmp_path: Path, monkeypatch) -> None:
    files = copy_examples(tmp_path)
    today = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
    clock = MutableClock(today - timedelta(days=2))
    monkeypatch.setattr(store.repository, "_wall_clock", clock.now)
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))

    async def say(app, email: str, text: str):  # type: ignore[no-untyped-def]
        reply = await app.service.handle_text(await app.service.identify(email), text)
        assert reply.ok, reply.text
        return reply

    decided: list[bool] = []

    class DecidedMeanwhile(evidence_commands.SqlEvidenceSource):
        """The store as the export reads it, with mark.mgr approving REQ-1 once the earlier events are read."""

        async def request_events(self, **kwargs):  # type: ignore[no-untyped-def, override]
            async for page in super().request_events(**kwargs):
                yield page
            if not kwargs.get("after") and not decided:
                decided.append(True)
                clock.at = today + timedelta(minutes=5)
                await say(app, "mark.mgr@example.com", "approve REQ-1")

    earlier, pack = tmp_path / "earlier.zip", tmp_path / "pack.zip"
    yesterday = (today - timedelta(days=2)).date()
    async with build_app(settings, clock=clock, notifier=RecordingNotifier()) as app:
        await say(app, "alice@example.com", "request staging-admin for 1h because deploy")  # REQ-1, waits
        await evidence_commands.write_pack(app.store, Period(yesterday, yesterday), earlier, sla_hours=24)
        clock.at = today
        await say(app, "bob@example.com", "request staging-admin for 1h because migration")  # REQ-2, in the period
        head = max([e.seq async for e in app.store.audit_events()])
        monkeypatch.setattr(evidence_commands, "SqlEvidenceSource", DecidedMeanwhile)
        await evidence_commands.write_pack(app.store, Period(today.date(), today.date()), pack, sla_hours=24)
    assert decided

    with zipfile.ZipFile(pack) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["audit"]["last_seq"] == head  # the chain as the export found it
    concerned = {e["request_id"] for e in _lines(pack, "audit.jsonl") if e["request_id"]}
    submitted = {e["request_id"] for e in _lines(pack, "audit.jsonl") + _lines(pack, "audit_earlier.jsonl")
                 if e["type"] == "request.submitted"}
    assert concerned <= submitted
    done = _shipped(pack, earlier)
    assert done.returncode == 0, done.stdout + done.stderr
