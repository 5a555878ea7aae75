"""Two sweeps in two processes (serve's workers, or a worker and ``accessbot sweep``) judge the same state at once.

What one of them recorded under the write lock is what the other finds there: a drift finding is
recorded, and told, once. The stand-ins hold both processes' listing of a group until both are
waiting on it, so both have judged the group before either records anything.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.conftest import FaultyGraph, FaultyOkta, World, make_world
from tests.faults.test_races import finish, spawn
from tests.standins.tls import LocalTLS

BOB = "bob@example.com"


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

