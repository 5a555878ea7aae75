"""The chain's head is anchored outside the database: every sweep appends (seq, hash, time) to a
private append-only file, and `audit verify` against that file names a rewrite that the chain
alone cannot show (an owner who edits an event and recomputes every hash after it)."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from handlers.audit import event_hash
from store.db import make_sync_engine
from tests.support import MutableClock, chat, cli, copy_examples, harness
from tests.tamper import tamper


def _anchors(path) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in path.read_text().splitlines()]


def _head(url: str) -> tuple[int, str]:
    engine = make_sync_engine(url)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
    engine.dispose()
    return int(row[0]), str(row[1])


def rewrite_history(url: str, seq: int, data: dict) -> None:
    """Change one event and recompute the hash of it and of every event after it: the chain verifies."""
    engine = make_sync_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_events WHERE seq >= :s ORDER BY seq"), {"s": seq}).mappings()
        rows = [dict(r) for r in rows]
    engine.dispose()
    statements = []
    prev = rows[0]["prev_hash"]
    for row in rows:
        body = {k: row[k] for k in ("seq", "ts", "type", "actor", "request_id", "profile")}
        body["data"] = data if row["seq"] == seq else json.loads(row["data"])
        body["prev_hash"] = prev
        digest = event_hash(prev, body)
        statements.append(("UPDATE audit_events SET data = :d, prev_hash = :p, hash = :h WHERE seq = :s",
                           {"d": json.dumps(body["data"], sort_keys=True, separators=(",", ":")), "p": prev,
                            "h": digest, "s": row["seq"]}))
        prev = digest
    tamper(url, *statements)


def test_sweeps_anchor_the_head_and_verify_names_a_rewrite(database_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    anchor = tmp_path / "anchors" / "accessbot.anchors"
    env = {"ACCESSBOT_ANCHOR_FILE": str(anchor)}
    chat("bob@example.com", "request staging-admin for 1h because deploy", db=database_url, files=files)
    cli("sweep", db=database_url, files=files, check=True, env=env)
    first = _anchors(anchor)
    assert len(first) == 1 and (first[0]["seq"], first[0]["hash"]) == _head(database_url)
    assert first[0]["anchored_at"].endswith("Z") and first[0]["ts"].endswith("Z")
    assert stat.S_IMODE(anchor.stat().st_mode) == 0o600
    cli("sweep", db=database_url, files=files, check=True, env=env)
    assert len(_anchors(anchor)) == 1  # nothing new recorded: no new anchor
    chat("mark.mgr@example.com", "approve REQ-1 fine", db=database_url, files=files)
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cli("sweep", "--as-of", later, db=database_url, files=files, check=True, env=env)  # expires REQ-1
    lines = _anchors(anchor)
    assert len(lines) == 2 and lines[0] == first[0] and (lines[1]["seq"], lines[1]["hash"]) == _head(database_url)

    ok = cli("audit", "verify", "--anchors", str(anchor), db=database_url, check=True).stdout.splitlines()
    assert ok[0].startswith("OK ") and "2 of 2 anchors match" in ok[1]
    # the setting is enough: no option needed
    ok = cli("audit", "verify", db=database_url, check=True, env=env).stdout
    assert "2 of 2 anchors match" in ok

    # the owner rewrites the justification of REQ-1 and recomputes every hash after it
    submitted = next(json.loads(x) for x in cli("audit", "export", db=database_url, check=True).stdout.splitlines()
                     if json.loads(x)["type"] == "request.submitted")
    rewrite_history(database_url, submitted["seq"], {**submitted["data"], "justification": "approved change"})
    plain = cli("audit", "verify", db=database_url)
    assert plain.returncode == 0, plain.stdout  # the chain alone cannot tell
    r = cli("audit", "verify", "--anchors", str(anchor), db=database_url)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"REWRITTEN at seq {first[0]['seq']}" in r.stdout and first[0]["hash"] in r.stdout, r.stdout


def test_verify_names_events_removed_after_an_anchor(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    anchor = tmp_path / "a.anchors"
    env = {"ACCESSBOT_ANCHOR_FILE": str(anchor)}
    chat("bob@example.com", "request staging-admin for 1h because deploy", db=sqlite_url, files=files)
    cli("sweep", db=sqlite_url, files=files, check=True, env=env)
    seq, _ = _head(sqlite_url)
    tamper(sqlite_url, ("DELETE FROM audit_events WHERE seq >= :s", {"s": seq - 1}))
    assert cli("audit", "verify", db=sqlite_url).returncode == 0  # a shorter chain still verifies
    r = cli("audit", "verify", db=sqlite_url, env=env)
    assert r.returncode == 1 and f"seq {seq} was anchored" in r.stdout and f"ends at seq {seq - 2}" in r.stdout


def test_anchor_file_is_appended_never_rewritten(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    anchor = tmp_path / "a.anchors"
    anchor.write_text('{"note": "kept"}\n')
    os.chmod(anchor, 0o644)
    env = {"ACCESSBOT_ANCHOR_FILE": str(anchor)}
    chat("bob@example.com", "request staging-admin for 1h because deploy", db=sqlite_url, files=files)
    cli("sweep", db=sqlite_url, files=files, check=True, env=env)
    lines = anchor.read_text().splitlines()
    assert lines[0] == '{"note": "kept"}' and len(lines) == 2
    assert stat.S_IMODE(anchor.stat().st_mode) == 0o600
    # a planted symlink is not followed
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "link.anchors"
    link.symlink_to(target)
    r = cli("sweep", db=sqlite_url, files=files, env={"ACCESSBOT_ANCHOR_FILE": str(link)})
    assert target.read_text() == "" and "anchor" in r.stdout + r.stderr
    bad = cli("audit", "verify", "--anchors", str(tmp_path / "missing.anchors"), db=sqlite_url)
    assert bad.returncode == 1 and "missing.anchors" in bad.stdout + bad.stderr


async def test_the_server_sweep_anchors_too(sqlite_url, tmp_path) -> None:
    from bot.scheduler import run_sweep

    anchor = tmp_path / "server.anchors"
    async with harness(sqlite_url, tmp_path, clock=MutableClock(datetime.now(UTC)),
                       env={"ACCESSBOT_ANCHOR_FILE": str(anchor)}) as h:
        await h.say("bob@example.com", "request staging-admin for 1h because deploy")
        await run_sweep(h.app, "expiry")
        events = await h.events()
    [line] = _anchors(anchor)
    assert (line["seq"], line["hash"]) == (events[-1]["seq"], events[-1]["hash"])
