"""``accessbot serve`` killed (SIGKILL) while Slack holds the expiry notice its sweep is sending.

The expiry is committed with its notice in the outbox; the process dies before Slack answers. The next
``accessbot sweep``, once the dead process's lease on the notice ran out, tells the requester, once; a sweep
after that tells nobody again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.faults.conftest import FaultyGraph, FaultyOkta, World, make_world
from tests.faults.test_races import execute
from tests.faults.test_sweep_overlap import _serve, _told, _wait_for
from tests.slack.conftest import SECRET, UID
from tests.standins.slack import SlackWebApi
from tests.standins.tls import LocalTLS
from tests.support import ROOT

BOB = "bob@example.com"


@pytest.fixture
def kill_world(database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> World:
    return make_world(database_url, tmp_path, graph, okta, fault_tls)


def _sweep(world: World, api: SlackWebApi) -> str:
    """``accessbot sweep`` telling people through the Slack stand-in (as serve would)."""
    cmd = [sys.executable, "-m", "bot.cli", "sweep", "--database-url", world.db,
           "--policy", str(world.files.policy), "--directory", str(world.files.directory)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    env = {**clean, **world.env, "SLACK_BOT_TOKEN": SlackWebApi.TOKEN, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": api.url + "/api/"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.stdout


def test_a_notice_whose_sender_was_killed_is_sent_once_by_the_next_sweep(kill_world: World) -> None:
    world = kill_world
    assert "REQ-1" in world.chat(BOB, "request entra-tools for 8h")
    execute(world, "UPDATE requests SET expires_at = :t", t=datetime.now(UTC) - timedelta(minutes=1))
    held, after = SlackWebApi().start(), SlackWebApi().start()
    gate = threading.Event()
    held.hold_path("chat.postMessage", gate)  # Slack takes the message and never answers
    proc = _serve(world, held)
    try:
        _wait_for(lambda: len(held.received("POST", "chat.postMessage")) >= 1 or proc.poll() is not None,
                  "the expiry sweep never sent its notice")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert world.state(1) == "expired"
        [(status, attempts, lease)] = world.rows("SELECT status, attempts, next_attempt_at FROM notice_outbox")
        assert (status, attempts) == ("pending", 0) and lease is not None  # taken by the dead process

        _sweep(world, after)  # at once: the dead process's lease still holds the notice
        assert _told(after, UID[BOB], "REQ-1 expired") == []
        execute(world, "UPDATE notice_outbox SET next_attempt_at = :t",  # its lease ran out
                t=datetime.now(UTC) - timedelta(seconds=1))
        _sweep(world, after)
        assert len(_told(after, UID[BOB], "REQ-1 expired")) == 1, after.dm(UID[BOB])
        _sweep(world, after)
        assert len(_told(after, UID[BOB], "REQ-1 expired")) == 1, after.dm(UID[BOB])
        assert world.rows("SELECT status, attempts FROM notice_outbox") == [("sent", 1)]
        assert _told(held, UID[BOB], "REQ-1 expired") == []  # the held post never completed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        gate.set()
        held.stop()
        after.stop()
    world.verify()
