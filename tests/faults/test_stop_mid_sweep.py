"""SIGTERM while a scheduled sweep of ``accessbot serve`` is in the middle of its work.

The expiry sweep has recorded two expiries and waits on their removals at Graph (the stand-in holds
them) when the server is told to stop. The sweep ends its work and tells the two requesters before
the process exits, within the Bot Framework's 15 s; cancelled, the expiries it committed would
never be told (the next sweep finds nothing due).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.faults.conftest import FaultyGraph, FaultyOkta, World, make_world
from tests.faults.test_races import execute
from tests.faults.test_sweep_overlap import LEAVERS, _serve, _told, _wait_for
from tests.slack.conftest import UID
from tests.standins.slack import SlackWebApi
from tests.standins.tls import LocalTLS


@pytest.fixture
def stop_world(database_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> World:
    return make_world(database_url, tmp_path, graph, okta, fault_tls)


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def test_a_sweep_stopped_midway_tells_what_it_recorded(stop_world: World) -> None:
    world, graph = stop_world, stop_world.graph
    people = LEAVERS  # two requesters, each with a grant at Graph
    for person in people:
        assert "REQ-" in world.chat(person, "request entra-tools for 8h")
    execute(world, "UPDATE requests SET expires_at = :t", t=datetime.now(UTC) - timedelta(minutes=1))
    api = SlackWebApi().start()
    gate = threading.Event()
    graph.writes_only = True
    graph.slow_next(1, until=gate)
    proc = _serve(world, api)
    try:
        line = ""
        for _ in range(200):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line or "accessbot serving on" in line:
                break
        assert "accessbot serving on http://127.0.0.1:" in line, line
        port = int(line.split("http://127.0.0.1:", 1)[1].split(" ", 1)[0])
        _wait_for(lambda: len(graph.received("DELETE", "")) + len(graph.received("POST", "$batch")) >= 1
                  or proc.poll() is not None, "the expiry sweep never reached Graph")
        assert len(world.rows("SELECT id FROM requests WHERE state = 'expired'")) == len(people)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _wait_for(lambda: _refused(port) or proc.poll() is not None, "the server never began to stop")
        gate.set()  # the provider answers while the server stops
        out = proc.communicate(timeout=60)[0]
        stopped_in = time.monotonic() - started
    finally:
        gate.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        api.stop()
    assert proc.returncode == 0 and stopped_in < 15, (proc.returncode, stopped_in, out)
    for n, person in enumerate(people, start=1):
        assert len(_told(api, UID[person], f"REQ-{n} expired")) == 1, (person, api.dm(UID[person]), out)
    assert world.rows("SELECT count(*) FROM provider_ops WHERE op = 'remove' AND status = 'done'")[0][0] == 2
    assert graph.member_emails(world.entra_group) == []
    world.verify()
