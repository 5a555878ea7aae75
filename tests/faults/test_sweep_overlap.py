"""Two sweeps in two processes (serve's workers, or a worker and ``accessbot sweep``) judge the same state at once.

What one of them recorded under the write lock is what the other finds there: a drift finding is
recorded, and told, once. The stand-ins hold both processes' listing of a group until both are
waiting on it, so both have judged the group before either records anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import FaultyGraph, FaultyOkta, World, make_world
from tests.faults.test_races import finish, spawn
from tests.slack.conftest import SECRET, UID
from tests.standins.slack import SlackWebApi
from tests.standins.tls import LocalTLS
from tests.support import ROOT

BOB, SAM = "bob@example.com", "sam.sec@example.com"
LEAVERS = ("bob@example.com", "carol@example.com")


@pytest.fixture
def overlap_world(database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta,
                  fault_tls: LocalTLS) -> World:
    return make_world(database_url, tmp_path, graph, okta, fault_tls)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_two_sweeps_at_once_record_one_drift_finding(overlap_world: World) -> None:
    world, okta = overlap_world, overlap_world.okta
    okta.add_member(world.okta_group, BOB)  # added at Okta by hand: no grant behind it
    listing = f"/groups/{world.okta_group}/users"
    gate = threading.Event()
    okta.hold_path(listing, gate)
    try:
        first = spawn(world, "sweep")
        _wait_for(lambda: len(okta.received("GET", listing)) >= 1 or first.poll() is not None,
                  "the first sweep never listed the group")
        second = spawn(world, "sweep")
        _wait_for(lambda: len(okta.received("GET", listing)) >= 2 or second.poll() is not None,
                  "the second sweep never listed the group")
    finally:
        gate.set()
        okta.clear_path_faults()
    outs = [finish(first), finish(second)]
    found = [e for e in world.events() if e["type"] == "drift.detected"]
    assert Counter((e["data"]["group"], e["data"]["user"]) for e in found) == {(world.okta_group, BOB): 1}, found
    assert len(world.rows("SELECT id FROM drift_findings WHERE resolved_at IS NULL")) == 1
    # each sweep says what it recorded: one of them reports the finding, the other found it recorded
    assert sorted("report drift: 1" in out for out in outs) == [False, True], outs
    world.sweep()  # and the next sweep neither reports it again nor resolves it
    assert len([e for e in world.events() if e["type"] == "drift.detected"]) == 1
    world.verify()


def _serve(world: World, api: SlackWebApi) -> subprocess.Popen[str]:
    """``accessbot serve`` on the world's database and stand-ins, telling people through the Slack stand-in."""
    cmd = [sys.executable, "-m", "bot.cli", "serve", "--workers", "1", "--database-url", world.db,
           "--policy", str(world.files.policy), "--directory", str(world.files.directory)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    env = {**clean, **world.env, "ACCESSBOT_PORT": "0", "ACCESSBOT_HOST": "127.0.0.1",
           "SLACK_BOT_TOKEN": SlackWebApi.TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": api.url + "/api/"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=60)[0]
    finally:
        proc.kill()


def _told(api: SlackWebApi, uid: str, words: str) -> list[str]:
    return [m.text for m in api.dm(uid) if words in m.text]


def test_two_servers_tell_each_leaver_once(overlap_world: World) -> None:
    """The first server is held on the first leaver's removal, after it judged both leavers; the second server
    terminates the other one meanwhile. The first one, let go, finds that leaver done: it tells nobody again."""
    world, graph = overlap_world, overlap_world.graph
    for person in LEAVERS:
        assert "REQ-" in world.chat(person, "request entra-tools for 8h")
    assert sorted(graph.member_emails(world.entra_group)) == sorted(LEAVERS)
    world.files.edit_directory(lambda d: [u.update(active=False) for u in d["users"] if u["email"] in LEAVERS])
    api = SlackWebApi().start()
    gate = threading.Event()
    graph.writes_only = True
    graph.slow_next(1, until=gate)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(_serve(world, api))
        _wait_for(lambda: len(graph.received("DELETE", "/members/")) >= 1 or procs[0].poll() is not None,
                  "the first server never removed a leaver")
        assert procs[0].poll() is None, procs[0].communicate()
        procs.append(_serve(world, api))
        # the second server terminates the leaver the first one has not reached yet, and says so (the first
        # leaver's notice, in the outbox, may be sent by either server before that)
        _wait_for(lambda: len(_told(api, UID[SAM], f"{LEAVERS[1]} is no longer active")) >= 1
                  or procs[1].poll() is not None,
                  "the second server never told the security team")
        gate.set()
        _wait_for(lambda: world.rows("SELECT count(*) FROM provider_ops WHERE status = 'pending'")[0][0] == 0,
                  "the removals never finished")
        time.sleep(3)  # a second notice would be posted by now
        told = _told(api, UID[SAM], "is no longer active")
    finally:
        gate.set()
        outs = [_stop(p) for p in procs]
        api.stop()
    assert all("accessbot serving on" in out and "Traceback" not in out for out in outs), outs
    assert sorted(told) == sorted(f"{p} is no longer active: revoked {ref}." for p, ref in
                                  ((e["data"]["user"], e["data"]["grants"][0]) for e in world.events()
                                   if e["type"] == "user.terminated")), told
    assert len(told) == len(LEAVERS), told
    removals = world.rows("SELECT email, count(*) FROM provider_ops WHERE op = 'remove' GROUP BY email")
    assert sorted((e, int(n)) for e, n in removals) == [(p, 1) for p in sorted(LEAVERS)], removals
    assert graph.member_emails(world.entra_group) == []
    world.verify()
