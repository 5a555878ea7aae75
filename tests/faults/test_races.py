"""Races between processes around provider calls (issue: as-of clock, ended requests, ordering, drift).

Each test drives the real ``accessbot`` command line in separate processes against the Graph
stand-in, which holds a membership write (``slow_next``) so that a second process acts while the
first one's call is in flight, or kills a process at that exact point. Run on SQLite and on
PostgreSQL. The provider lease is set by the policy: long enough for a second process to start
inside it, short enough that a lease left by a killed process runs out inside the test. Writes are
held long enough for a second process to start on a busy machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import App, build_app
from tests.faults.conftest import FaultyGraph, FaultyOkta, World, as_utc, make_world, utc_in
from tests.standins.tls import LocalTLS
from tests.support import ROOT, RecordingNotifier

BOB, MARK, SAM = "bob@example.com", "mark.mgr@example.com", "sam.sec@example.com"
LEASE_S = 20  # seconds a process owns a provider call it claimed
HOLD = 6.0  # seconds the stand-in holds a write while another process acts


@pytest.fixture
def race_world(database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta,
               fault_tls: LocalTLS) -> World:
    world = make_world(database_url, tmp_path, graph, okta, fault_tls)
    world.set_lease(LEASE_S)
    return world


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Until ``predicate``; the waits are for another process (an ``accessbot chat`` started for the step, which
    imports, loads the policy and resolves its groups first), which took over 20 s with the suite's four workers
    beside it on two cores."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.03)


def spawn(world: World, *args: str, input: str | None = None) -> subprocess.Popen[str]:
    """An ``accessbot`` process in the background, with the world's files, database and stand-ins."""
    cmd = [sys.executable, "-m", "bot.cli", *args, "--database-url", world.db,
           "--policy", str(world.files.policy), "--directory", str(world.files.directory)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**clean, **world.env})
    assert proc.stdin is not None
    if input is not None:
        proc.stdin.write(input)
    proc.stdin.close()
    proc.stdin = None  # communicate() must not flush it again
    return proc


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0 and "Traceback" not in err, err + out
    return out


def kill_when(world: World, proc: subprocess.Popen[str], method: str, path_part: str, before: int) -> None:
    """SIGKILL ``proc`` once the stand-in has received ``method`` (it is holding it)."""
    try:
        _wait_for(lambda: len(world.graph.received(method, path_part)) > before or proc.poll() is not None,
                  f"the stand-in never received the {method}")
        assert proc.poll() is None, f"the process ended before the call: {proc.communicate()}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def op_rows(world: World, n: int) -> list[Any]:
    return world.rows("SELECT op, status, attempts, next_attempt_at FROM provider_ops WHERE request_id = :n "
                      "ORDER BY id", n=n)


def execute(world: World, sql: str, **params: Any) -> None:
    from sqlalchemy import bindparam, text

    from store.db import make_sync_engine
    from store.schema import UTCDateTime

    statement = text(sql).bindparams(*(bindparam(k, type_=UTCDateTime) for k, v in params.items()
                                       if isinstance(v, datetime)))
    engine = make_sync_engine(world.db)
    try:
        with engine.begin() as conn:
            conn.execute(statement, params)
    finally:
        engine.dispose()


def events_of(world: World, ref: str) -> list[dict[str, Any]]:
    return [e for e in world.events() if e.get("request_id") == ref]


def aware(value: Any) -> datetime:
    return as_utc(value.replace("Z", "+00:00") if isinstance(value, str) else value)


async def say(app: App, email: str, line: str) -> str:
    person = await app.service.identify(email)
    assert person is not None
    return (await app.service.handle_text(person, line)).text


def active_grant(world: World) -> None:
    world.chat(BOB, "request entra-ops for 1h")
    world.chat(MARK, "approve REQ-1")
    assert world.state(1) == "active" and world.graph.member_emails(world.entra_group) == [BOB]


# -- the as-of clock judges timers only -------------------------------------------------------

def test_a_future_dated_sweep_provisions_on_the_real_clock(race_world: World) -> None:
    """The add queued by an approval is finished by ``sweep --as-of now+2h``: the grant runs from
    the real now for its hour (and the judged instant then finds it expired), never from the as-of."""
    world, graph = race_world, race_world.graph
    world.chat(BOB, "request entra-ops for 1h")
    graph.writes_only = True
    graph.down(status=503, retry_after=0.05)
    world.chat(MARK, "approve REQ-1")
    assert world.state(1) == "approved"
    graph.up()
    time.sleep(0.5)
    before = datetime.now(UTC)
    world.sweep(as_of=utc_in(hours=2))
    after = datetime.now(UTC)
    [provisioned] = [e for e in events_of(world, "REQ-1") if e["type"] == "grant.provisioned"]
    expires = aware(provisioned["data"]["expires_at"])
    assert before + timedelta(hours=1) - timedelta(seconds=1) <= expires <= after + timedelta(hours=1)
    assert "as_of" not in provisioned["data"]  # recorded at the real instant
    [expired] = [e for e in events_of(world, "REQ-1") if e["type"] == "grant.expired"]
    assert expired["data"]["as_of"]  # the expiry was judged as of the sweep's instant, and says so
    rows = world.rows("SELECT started_at, expires_at FROM requests WHERE id = 1")
    assert aware(rows[0][0]) <= after and abs(aware(rows[0][1]) - expires) < timedelta(milliseconds=1)
    world.verify()


def test_a_future_dated_sweep_killed_mid_removal_leaves_a_lease_on_the_real_clock(race_world: World) -> None:
    world, graph = race_world, race_world.graph
    world.set_lease(5)
    active_grant(world)
    graph.writes_only = True
    graph.slow_next(1, seconds=HOLD)
    before = len(graph.received("DELETE", "/members/"))
    kill_when(world, spawn(world, "sweep", "--as-of", utc_in(hours=20)), "DELETE", "/members/", before)
    assert world.state(1) == "expired"
    [_, (op, status, attempts, next_at)] = op_rows(world, 1)
    assert (op, status, attempts) == ("remove", "pending", 1)
    assert aware(next_at) <= datetime.now(UTC) + timedelta(seconds=5)  # the lease, not 20 h away
    _wait_for(lambda: datetime.now(UTC) > aware(next_at), "the lease never ran out")
    world.sweep()  # a plain sweep after the real lease finishes the removal
    assert [(r[0], r[1]) for r in op_rows(world, 1)] == [("add", "done"), ("remove", "done")]
    assert graph.member_emails(world.entra_group) == []
    world.verify()


# -- a request that ends before its add completed ---------------------------------------------

def test_release_while_a_dead_process_holds_the_add(race_world: World) -> None:
    """The approver dies while Graph holds its POST; the requester releases before the write lands.
    The release says the grant was never provisioned; the add, once its lease runs out, is not
    provisioned but undone: the user is not left a member."""
    world, graph = race_world, race_world.graph
    world.chat(BOB, "request entra-ops for 1h")
    graph.writes_only = True
    landed = threading.Event()  # the held add lands only after the release (however loaded the machine)
    graph.slow_next(1, until=landed)
    kill_when(world, spawn(world, "chat", "--as", MARK, input="approve REQ-1\n"), "POST", "/members/$ref", 0)
    try:
        out = world.chat(BOB, "release REQ-1")
    finally:
        landed.set()
    assert "removed from" not in out, out
    assert world.state(1) == "released"
    _wait_for(lambda: graph.member_emails(world.entra_group) == [BOB], "the held add never landed")
    world.wait_for_leases()
    world.sweep()
    assert graph.member_emails(world.entra_group) == []
    types = [e["type"] for e in events_of(world, "REQ-1")]
    assert "grant.provisioned" not in types
    [released] = [e for e in events_of(world, "REQ-1") if e["type"] == "grant.released"]
    assert released["data"]["provisioned"] is False
    assert [(r[0], r[1]) for r in op_rows(world, 1)] in ([("add", "skipped"), ("remove", "done")],
                                                          [("add", "done"), ("remove", "done")])
    world.sweep()
    assert graph.member_emails(world.entra_group) == [] and "drift.detected" not in {e["type"] for e in world.events()}
    world.verify()


def test_revoke_while_a_live_process_adds_is_undone_when_the_add_returns(race_world: World) -> None:
    world, graph = race_world, race_world.graph
    world.chat(BOB, "request entra-ops for 1h")
    graph.writes_only = True
    returns = threading.Event()  # the add returns only after the revoke (however loaded the machine)
    graph.slow_next(1, until=returns)
    approver = spawn(world, "chat", "--as", MARK, input="approve REQ-1\n")
    try:
        _wait_for(lambda: len(graph.received("POST", "/members/$ref")) == 1, "the add never reached Graph")
        out = world.chat(SAM, "revoke REQ-1 because wrong person")
    finally:
        returns.set()
    assert "removed from" not in out and "REQ-1 revoked" in out, out
    finish(approver)
    # no sweep: the process whose add returned after the revoke undid it at once
    assert graph.member_emails(world.entra_group) == []
    assert world.state(1) == "revoked"
    assert [(r[0], r[1]) for r in op_rows(world, 1)] == [("add", "done"), ("remove", "done")]
    assert [r.status for r in graph.received("DELETE", "/members/")] == [204]  # after the add, never before
    types = [e["type"] for e in events_of(world, "REQ-1")]
    assert "grant.provisioned" not in types
    [revoked] = [e for e in events_of(world, "REQ-1") if e["type"] == "grant.revoked"]
    assert revoked["data"]["provisioned"] is False
    world.verify()


@pytest.mark.parametrize("status", [503, 504])
async def test_release_before_the_add_was_tried_cancels_it(race_world: World, status: int) -> None:
    """The add was answered 503 (turned away: nothing was done) or 504 (Graph's gateway gave up waiting: it may have
    been carried out) at every try, and waits for its retry when the grant is released."""
    world, graph = race_world, race_world.graph
    async with build_app(world.settings()) as app:
        await say(app, BOB, "request entra-ops for 1h")
        graph.writes_only = True
        graph.down(status=status, retry_after=0.05)
        await say(app, MARK, "approve REQ-1")
        assert world.state(1) == "approved"
        graph.up()
        # as a provider that asked for a long Retry-After would: the add waits half a minute
        execute(world, "UPDATE provider_ops SET next_attempt_at = :at WHERE request_id = 1",
                at=datetime.now(UTC) + timedelta(seconds=30))
        out = await say(app, BOB, "release REQ-1")
    assert "the add was cancelled" in out, out
    [released] = [e for e in events_of(world, "REQ-1") if e["type"] == "grant.released"]
    assert released["data"]["provisioned"] is False
    # the add waiting for its retry is cancelled at once; after a 504 the removal after it (an earlier
    # attempt may have landed) runs now, not after the add's backoff; after 503s there is nothing to undo
    if status == 504:
        assert [(r[0], r[1]) for r in op_rows(world, 1)] == [("add", "skipped"), ("remove", "done")]
        assert len(graph.received("DELETE", "/members/")) == 1
    else:
        assert [(r[0], r[1]) for r in op_rows(world, 1)] == [("add", "skipped")]
        assert not graph.received("DELETE", "/members/")
    assert graph.member_emails(world.entra_group) == []
    world.verify()


# -- add and remove of one (user, group) run in order -----------------------------------------

def test_a_new_grant_waits_for_the_removal_in_flight(race_world: World) -> None:
    """REQ-1's removal is held at Graph when REQ-2 (another profile, the same group) is approved: its
    add runs after the removal, so the removal cannot take REQ-2's membership away."""
    world, graph = race_world, race_world.graph
    active_grant(world)
    graph.writes_only = True
    graph.slow_next(1, seconds=HOLD)
    releasing = spawn(world, "chat", "--as", BOB, input="release REQ-1\n")
    _wait_for(lambda: len(graph.received("DELETE", "/members/")) == 1, "the removal never reached Graph")
    out = world.chat(BOB, "request entra-tools for 1h")
    assert "REQ-2 auto-approved" in out, out
    finish(releasing)
    assert world.state(2) == "active"
    assert graph.member_emails(world.entra_group) == [BOB]
    writes = [(r.method, r.status) for r in graph.received() if "/members/" in r.path and r.method != "GET"]
    assert writes[-2:] == [("DELETE", 204), ("POST", 204)]
    world.sweep()
    assert graph.member_emails(world.entra_group) == [BOB]
    assert "drift.detected" not in {e["type"] for e in world.events()}
    world.verify()


# -- drift -------------------------------------------------------------------------------------

def test_no_drift_reported_while_the_removal_is_in_flight(race_world: World) -> None:
    world, graph = race_world, race_world.graph
    active_grant(world)
    graph.writes_only = True
    graph.slow_next(1, seconds=HOLD)
    releasing = spawn(world, "chat", "--as", BOB, input="release REQ-1\n")
    _wait_for(lambda: len(graph.received("DELETE", "/members/")) == 1, "the removal never reached Graph")
    out = world.sweep()
    assert "report drift: 0" in out, out
    finish(releasing)
    world.sweep()
    assert graph.member_emails(world.entra_group) == []
    assert "drift.detected" not in {e["type"] for e in world.events()}
    world.verify()


async def test_a_grant_holder_who_is_not_a_member_is_drift(race_world: World) -> None:
    world, graph = race_world, race_world.graph
    notifier = RecordingNotifier()
    async with build_app(world.settings(), notifier=notifier) as app:
        await say(app, BOB, "request entra-ops for 1h")
        await say(app, MARK, "approve REQ-1")
        uid = graph.user_id(BOB)
        with graph.lock:
            graph.members[world.entra_group].remove(uid)  # someone removed Bob at Entra by hand
        report = await app.service.sweep()
        assert report.drift == [f"{BOB} not in entra/{world.entra_group} despite REQ-1"]
        [found] = [e for e in world.events() if e["type"] == "drift.detected"]
        assert found["data"]["user"] == BOB and found["data"]["request_id"] == "REQ-1"
        assert found["data"]["member"] is False
        [told] = notifier.to(SAM, "drift")
        # put back through Graph while the grant runs, and said so (SPEC §3.6)
        assert "holds REQ-1 but was not in" in told.text and "added back" in told.text, told.text
        assert any("added back" in n.text for n in notifier.to(BOB, "status"))
        assert uid in graph.members[world.entra_group]
        [added] = [e for e in world.events() if e["type"] == "membership.added"]
        assert added["data"]["reason"] == "drift" and added["data"]["user"] == BOB
        await app.service.sweep()  # reported once, resolved once
        assert len([e for e in world.events() if e["type"] == "drift.detected"]) == 1
    resolved = [e for e in world.events() if e["type"] == "drift.resolved"]
    assert [(e["data"]["user"], e["data"]["member"], e["data"]["resolution"], e["data"]["request_id"])
            for e in resolved] == [(BOB, False, "restored", "REQ-1")]
    world.verify()


async def test_a_holder_graph_will_not_take_back_loses_the_grant(race_world: World) -> None:
    world, graph = race_world, race_world.graph
    notifier = RecordingNotifier()
    async with build_app(world.settings(), notifier=notifier) as app:
        await say(app, BOB, "request entra-ops for 1h")
        await say(app, MARK, "approve REQ-1")
        uid = graph.user_id(BOB)
        with graph.lock:
            graph.members[world.entra_group].remove(uid)
        graph.fail_path("members/$ref", status=403)  # Graph refuses the add for good
        await app.service.sweep()
        graph.clear_path_faults()
        [failed] = [e for e in world.events() if e["type"] == "membership.add_failed"]
        assert failed["data"]["reason"] == "drift"
        [revoked] = [e for e in world.events() if e["type"] == "grant.revoked"]
        assert revoked["request_id"] == "REQ-1" and revoked["data"]["reason"] == "drift"
        [resolved] = [e for e in world.events() if e["type"] == "drift.resolved"]
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1")
        assert any("the grant is ended" in n.text for n in notifier.to(BOB, "status"))
        assert any("the grant is ended" in n.text for n in notifier.to(SAM, "drift"))
        assert uid not in graph.members[world.entra_group]
        await app.service.sweep()
        assert len([e for e in world.events() if e["type"] == "drift.resolved"]) == 1
    world.verify()
