"""A process killed between the provider call and the record (SPEC §3.4, "repaired on restart").

The approver's ``accessbot chat`` is SIGKILLed while the Graph stand-in holds the
``POST …/members/$ref`` it has received (``slow_next``); the stand-in then completes the write,
so the membership exists while the store still says "intended". Recovery is ``accessbot sweep``
once the dead process's lease has run out (on the real clock: ``--as-of`` does not move it): the
grant becomes active exactly once, the membership exists once, the chain verifies and holds no
duplicate event. The same for a release killed during the ``DELETE``.
Run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.faults.conftest import FaultyGraph, FaultyOkta, World, make_world, utc_in
from tests.standins.tls import LocalTLS
from tests.support import ROOT

BOB = "bob@example.com"
HOLD = 1.0  # seconds the stand-in holds the write before applying it
LEASE = 20  # seconds a process owns a provider call it claimed (a sweep must start inside it)


@pytest.fixture
def crash_world(database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta,
                fault_tls: LocalTLS) -> World:
    return make_world(database_url, tmp_path, graph, okta, fault_tls)


def _wait_for(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_killed_after_graph_received_the_add_and_the_remove(crash_world: World) -> None:
    world, graph = crash_world, crash_world.graph
    world.set_lease(LEASE)
    world.chat(BOB, "request entra-ops for 1h")

    # --- the add: the approver's process dies while Graph holds the POST it received ---------
    graph.writes_only = True
    graph.slow_next(1, seconds=HOLD)
    world.chat_killed_while_held("mark.mgr@example.com", "approve REQ-1", "POST", "/members/$ref")
    _wait_for(lambda: graph.member_emails(world.entra_group) == [BOB], "the held write never landed")
    assert world.state(1) == "approved"  # the record never heard of it
    [(op, status, attempts, *_)] = world.ops(1)
    assert (op, status, attempts) == ("add", "pending", 1)  # leased by the dead process

    world.sweep(as_of=utc_in(minutes=2))  # inside the dead process's lease: nobody else may run the call yet
    assert world.state(1) == "approved" and len(graph.received("POST", "/members/$ref")) == 1

    world.wait_for_leases()
    world.sweep()  # past the lease: repaired
    assert world.state(1) == "active"
    assert graph.member_emails(world.entra_group) == [BOB]
    statuses = [r.status for r in graph.received("POST", "/members/$ref")]
    assert statuses == [204, 400]  # the repair was told "already exist", which is success
    counts = world.event_counts("REQ-1")
    assert (counts["approval.granted"], counts["request.approved"], counts["grant.provisioned"]) == (1, 1, 1)
    assert [(o[0], o[1]) for o in world.ops(1)] == [("add", "done")]
    world.verify()

    # --- the removal: the requester's release dies while Graph holds the DELETE -------------
    graph.slow_next(1, seconds=HOLD)
    world.chat_killed_while_held(BOB, "release REQ-1", "DELETE", "/members/")
    _wait_for(lambda: graph.member_emails(world.entra_group) == [], "the held removal never landed")
    assert world.state(1) == "released"
    assert [(o[0], o[1]) for o in world.ops(1)] == [("add", "done"), ("remove", "pending")]

    world.wait_for_leases()
    world.sweep()
    assert [(o[0], o[1]) for o in world.ops(1)] == [("add", "done"), ("remove", "done")]
    assert [r.status for r in graph.received("DELETE", "/members/")] == [204, 404]  # 404: not a member = success
    world.sweep()
    assert len(graph.received("DELETE", "/members/")) == 2 and len(graph.received("POST", "/members/$ref")) == 2
    assert graph.member_emails(world.entra_group) == []
    counts = world.event_counts("REQ-1")
    assert counts["grant.released"] == 1 and counts["grant.provisioned"] == 1
    assert not {"grant.revoke_failed", "grant.revoke_completed", "grant.provision_failed"} & set(counts)
    assert world.state(1) == "released"
    world.verify()


def test_a_process_that_outlived_its_lease_does_not_overwrite_the_repair(crash_world: World) -> None:
    """The releasing process is slow, not dead: Graph holds its DELETE past the lease, a sweep
    repairs the removal meanwhile, and the slow process's late refusal must not undo the record."""
    world, graph = crash_world, crash_world.graph
    world.set_lease(2)
    world.chat(BOB, "request entra-ops for 1h")
    world.chat("mark.mgr@example.com", "approve REQ-1")
    assert world.state(1) == "active"
    graph.writes_only = True
    answer = threading.Event()
    graph.slow_next(1, then_status=403, until=answer)  # held past the lease and the repair, then refused for good
    cmd = [sys.executable, "-m", "bot.cli", "chat", "--as", BOB, "--database-url", world.db,
           "--policy", str(world.files.policy), "--directory", str(world.files.directory)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    slow = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**clean, **world.env})
    err = ""
    try:
        assert slow.stdin is not None
        slow.stdin.write("release REQ-1\n")
        slow.stdin.close()
        _wait_for(lambda: len(graph.received("DELETE", "/members/")) == 1, "the slow DELETE never arrived")
        world.wait_for_leases()
        world.sweep()  # past the slow process's lease: the sweep removes
        if [o[1] for o in world.ops(1)] != ["done", "done"]:  # on a loaded machine the sweep may have found the
            world.wait_for_leases()  # lease not yet run out by its own clock: the next sweep repairs it
            world.sweep()
        assert [(o[0], o[1], o[2]) for o in world.ops(1)] == [("add", "done", 1), ("remove", "done", 2)]
        answer.set()  # only now does the slow process hear its refusal
        slow.wait(timeout=60)
        assert slow.stderr is not None
        err = slow.stderr.read()
    finally:
        answer.set()
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    assert slow.returncode == 0 and "Traceback" not in err, err
    # in order of arrival: the slow one (answered last, refused), then the sweep's
    assert [r.status for r in graph.received("DELETE", "/members/")] == [403, 204]
    assert graph.member_emails(world.entra_group) == []
    # the late 403 changed nothing: the removal stays done, nobody is told it failed
    assert [(o[0], o[1], o[2]) for o in world.ops(1)] == [("add", "done", 1), ("remove", "done", 2)]
    counts = world.event_counts("REQ-1")
    assert counts["grant.released"] == 1
    assert not {"grant.revoke_failed", "grant.revoke_completed"} & set(counts), counts
    world.verify()
