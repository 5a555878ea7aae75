"""``accessbot serve --workers N``: real worker processes sharing one port on one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import text

from bot.errors import CliError
from bot.health import label_worker
from bot.workers import worker_count
from store.db import make_sync_engine
from tests.slack.conftest import SECRET, UID, fixture, sign
from tests.standins.slack import SlackWebApi
from tests.support import ROOT, copy_examples

ALICE, MARK = "alice@example.com", "mark.mgr@example.com"
CLICKS = 24


def test_worker_count_defaults_and_sqlite_refusal() -> None:
    assert worker_count(None, "sqlite:///x.db") == (1, None)
    count, reason = worker_count(4, "sqlite:///x.db")
    assert count == 1 and reason is not None and "SQLite" in reason and "\n" not in reason
    assert worker_count(None, "postgresql://u@h/db") == (os.cpu_count() or 1, None)
    assert worker_count(3, "postgresql+psycopg://u@h/db") == (3, None)
    with pytest.raises(CliError):
        worker_count(0, "postgresql://u@h/db")


def test_metrics_of_a_worker_carry_its_label() -> None:
    body = (b"# HELP a_total x\n# TYPE a_total counter\na_total 3.0\n"
            b'b{state="active"} 2.0\nc{} 1.0\n')
    assert label_worker(body, 1).decode().splitlines() == [
        "# HELP a_total x", "# TYPE a_total counter", 'a_total{worker="1"} 3.0',
        'b{worker="1",state="active"} 2.0', 'c{worker="1"} 1.0']


def test_sqlite_serve_says_why_it_runs_one_worker(tmp_path) -> None:
    files = copy_examples(tmp_path)
    env = {**os.environ, "ACCESSBOT_PORT": "0", "ACCESSBOT_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", "3", "--database-url",
                             f"sqlite:///{tmp_path / 'w.db'}", "--policy", str(files.policy),
                             "--directory", str(files.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        line = _serving_line(proc)
        assert "workers" not in line
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "--workers 3 ignored: SQLite" in err


def _serving_line(proc: subprocess.Popen[str]) -> str:
    """The line that says where it serves (the log may come first)."""
    for _ in range(200):
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line or "accessbot serving on" in line:
            return line
    return ""


def _signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    return {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(body, ts)}


def _click(uid: str, value: str, n: int, api: SlackWebApi) -> str:
    payload = fixture("block_actions")
    payload["user"] = {"id": uid, "username": uid.lower(), "name": uid.lower(), "team_id": "T0ACCESS"}
    payload["container"].update(channel_id="D" + uid, message_ts="1763884899.999999")
    payload["channel"]["id"] = "D" + uid
    payload["message"]["ts"] = "1763884899.999999"
    payload["trigger_id"] = f"{n}.1763884850.{n:032x}"
    payload["response_url"] = f"{api.url}/response/{n}"
    payload["actions"][0].update(action_id="approve", value=value, action_ts=f"1763884851.{n}")
    return urlencode({"payload": json.dumps(payload)})


async def _drive(base: str, api: SlackWebApi, engine) -> set[int]:  # type: ignore[no-untyped-def]
    pids: set[int] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(60):  # a fresh connection each time: the kernel spreads them over the workers
            async with http.get(f"{base}/healthz") as resp:
                pids.add((await resp.json())["worker"]["pid"])
            if len(pids) > 1:
                break
        form = fixture("slash_command")
        form.update(user_id=UID[ALICE], user_name="alice", text="request staging-admin for 2h because deploy",
                    response_url=f"{api.url}/response/0", trigger_id="0.1763884850.0")
        body = urlencode(form)
        async with http.post(f"{base}/slack/events", data=body, headers=_signed(body)) as resp:
            assert resp.status == 200
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if api.dm(UID[MARK]):
                break
            await asyncio.sleep(0.2)
        assert api.dm(UID[MARK]), "the approver's card was never posted"

        async def click(n: int) -> int:
            body = _click(UID[MARK], "REQ-1", n, api)
            async with http.post(f"{base}/slack/events", data=body, headers=_signed(body)) as resp:
                return resp.status

        statuses = await asyncio.gather(*(click(n) for n in range(1, CLICKS + 1)))
        assert set(statuses) == {200}, statuses
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                state = conn.execute(text("SELECT state FROM requests WHERE id = 1")).scalar()
            if state == "active" and len(api.responses) >= CLICKS:
                break
            await asyncio.sleep(0.3)
        await asyncio.sleep(2)  # anything doubled would land now
    return pids


@pytest.mark.postgres
def test_two_workers_share_the_port_and_never_double_a_decision(pg_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    api = SlackWebApi().start()
    env = {**os.environ, "SLACK_BOT_TOKEN": SlackWebApi.TOKEN, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": api.url + "/api/", "ACCESSBOT_HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", "2", "--port", "0",
                             "--database-url", pg_url, "--policy", str(files.policy),
                             "--directory", str(files.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    engine = make_sync_engine(pg_url)
    try:
        line = _serving_line(proc)
        assert "accessbot serving on http://127.0.0.1:" in line and "with 2 workers" in line, line
        port = int(line.split("http://127.0.0.1:", 1)[1].split(" ", 1)[0])
        pids = asyncio.run(_drive(f"http://127.0.0.1:{port}", api, engine))
        with engine.connect() as conn:
            events = Counter(r[0] for r in conn.execute(
                text("SELECT type FROM audit_events WHERE request_id IN ('1', 'REQ-1')")))
            adds = conn.execute(text("SELECT count(*) FROM provider_ops WHERE op = 'add' AND request_id = 1")
                                ).scalar()
            members = conn.execute(text("SELECT count(*) FROM directory_memberships WHERE present")).scalar()
            messages = Counter(conn.execute(text("SELECT recipient, kind FROM channel_messages")).all())
        dms = Counter((m.channel, m.text) for m in api.all_messages())
        mark_cards = api.dm(UID[MARK])
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            out = proc.communicate(timeout=30)[0]
        finally:
            proc.kill()
            engine.dispose()
            api.stop()
        stopped_in = time.monotonic() - started
    assert len(pids) == 2, f"one port, two workers answering: {pids}"
    assert events["approval.granted"] == 1, events
    assert events["request.approved"] == 1 and events["grant.provisioned"] == 1, events
    assert adds <= 1 and members == 1, (adds, members)
    assert messages and set(messages.values()) == {1}, messages
    assert dms and set(dms.values()) == {1}, dms  # no notice posted twice
    assert len(mark_cards) == 1 and mark_cards[0].action_ids == [], "one card, closed once decided"
    assert proc.returncode == 0 and stopped_in < 15, (proc.returncode, stopped_in, out)
    assert "exited with code" not in out
    verify = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "verify", "--database-url", pg_url],
                            capture_output=True, text=True, cwd=ROOT)
    assert verify.returncode == 0 and verify.stdout.startswith("OK "), verify.stdout


def test_one_process_on_postgresql_migrates_in_a_child_and_serves_without_its_driver(pg_url, tmp_path) -> None:
    """``accessbot serve`` alone on PostgreSQL (one worker: a one-core machine, or ``--workers 1``) brings a fresh
    database to the head revision in a child process (``db upgrade``), then serves on asyncpg alone: the migrations'
    synchronous driver (psycopg's binary library) is never loaded into the serving process, whose peak RSS it grew
    by about 18 MB for nothing a click uses. A database the serving role may not migrate stops it with one line."""
    from store.db import current_revision, head_revision

    files = copy_examples(tmp_path)
    env = {**os.environ, "ACCESSBOT_HOST": "127.0.0.1", "ACCESSBOT_TEAMS_EMULATOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", "1", "--port", "0",
                             "--database-url", pg_url, "--policy", str(files.policy),
                             "--directory", str(files.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    try:
        line = _serving_line(proc)
        assert "accessbot serving on http://127.0.0.1:" in line, line
        with open(f"/proc/{proc.pid}/maps") as f:
            mapped = f.read()
        assert "asyncpg" in mapped and "psycopg" not in mapped
        assert current_revision(pg_url) == head_revision()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out


def test_one_process_on_postgresql_that_cannot_migrate_stops_with_one_line(pg_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    done = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--workers", "1", "--port", "0",
                           "--database-url", missing, "--policy", str(files.policy), "--directory",
                           str(files.directory)], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "ACCESSBOT_HOST": "127.0.0.1", "ACCESSBOT_TEAMS_EMULATOR": "1"})
    assert done.returncode != 0
    said = (done.stdout + done.stderr).strip().splitlines()
    assert said and said[-1].startswith("accessbot:") and "no_such_database" in said[-1], said
    assert "Traceback" not in done.stdout + done.stderr
