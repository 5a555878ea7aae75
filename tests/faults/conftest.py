"""Fixtures for the fault tests: the Graph and Okta stand-ins, and a policy whose profiles provision
at them while people still come from the directory file (``ACCESSBOT_IDENTITY=directory``).

Fixtures
    graph      the Graph stand-in (:class:`FaultyGraph`), emptied, this process trusting its TLS
    okta       the Okta stand-in, emptied
    world      :class:`World`: the example files plus three profiles (``entra-ops`` needs the
               manager, ``entra-tools`` is auto-approved, ``okta-ops`` needs the manager), every
               directory person seeded at both stand-ins, the environment for the real CLI, and
               read-only views of the store (states, operations, audit events)

Faults beyond the stand-ins' own (``fail_next``/``slow_next``/``drop_next``): ``graph.writes_only``
makes faults hit only membership writes (``members/$ref`` and ``$batch``), so that look-ups
succeed and the write is what fails or is held; ``down()``/``up()`` fail every request until told.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from sqlalchemy import text

from tests.standins import Fault
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.standins.tls import LocalTLS, make_tls
from tests.support import ROOT, Files, cli, copy_examples

RETRY_BUDGET = "1m"
ENTRA_PROFILES = """
  - id: entra-ops
    title: Operations console (Entra group)
    owner: pat.lead@example.com
    risk: medium
    provider: entra
    group: {entra_group}
    eligible:
      - department: Engineering
    duration: {{default: 1h, max: 8h}}
    justification: optional
    approval:
      - manager

  - id: entra-tools
    title: Tools (Entra group)
    owner: pat.lead@example.com
    risk: low
    provider: entra
    group: {entra_group}
    eligible:
      - department: Engineering
    duration: {{default: 1h, max: 1d}}
    justification: optional
    approval: [owner]
    auto_approve:
      - {{department: Engineering, max_duration: 1d}}

  - id: okta-ops
    title: Operations console (Okta group)
    owner: pat.lead@example.com
    risk: medium
    provider: okta
    group: {okta_group}
    eligible:
      - department: Engineering
    duration: {{default: 1h, max: 8h}}
    justification: optional
    approval:
      - manager
"""


class FaultyGraph(GraphStandIn):
    """The Graph stand-in with faults that can be aimed at membership writes only."""

    writes_only = False

    def faults_apply(self, request: web.Request) -> bool:
        if not super().faults_apply(request):
            return False
        if not self.writes_only:
            return True
        return request.method in ("POST", "DELETE") and ("/members/" in request.path or request.path.endswith("$batch"))

    def down(self, status: int = 503, retry_after: float | None = 0.05) -> None:
        self.faults.push(Fault("status", status=status, retry_after=retry_after), 100_000)

    def up(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        super().reset()
        self.writes_only = False


class FaultyOkta(OktaStandIn):
    def down(self, status: int = 429, retry_after: float | None = 0.2) -> None:
        self.faults.push(Fault("status", status=status, retry_after=retry_after), 100_000)

    def up(self) -> None:
        self.faults.clear()


@pytest.fixture(scope="session")
def fault_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    return make_tls(tmp_path_factory.mktemp("fault-tls"))


@pytest.fixture(scope="session")
def _graph_server(fault_tls: LocalTLS) -> Iterator[FaultyGraph]:
    server = FaultyGraph(fault_tls)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _okta_server() -> Iterator[FaultyOkta]:
    server = FaultyOkta()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def graph(_graph_server: FaultyGraph, fault_tls: LocalTLS, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyGraph]:
    _graph_server.reset()
    monkeypatch.setenv("SSL_CERT_FILE", fault_tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fault_tls.ca_file)
    yield _graph_server
    _graph_server.reset()


@pytest.fixture
def okta(_okta_server: FaultyOkta) -> Iterator[FaultyOkta]:
    _okta_server.reset()
    yield _okta_server
    _okta_server.reset()


def as_utc(value: Any) -> datetime:
    """A time read from the store with raw SQL (SQLite: naive UTC text; PostgreSQL: aware)."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_in(**delta: float) -> str:
    """An ``--as-of`` value this far from the real now."""
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    db: str
    files: Files
    graph: FaultyGraph
    okta: FaultyOkta
    entra_group: str
    okta_group: str
    tls: LocalTLS

    # ----- the real CLI ----------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            "ACCESSBOT_IDENTITY": "directory",
            "ACCESSBOT_ENTRA_TENANT_ID": self.graph.tenant, "ACCESSBOT_ENTRA_CLIENT_ID": self.graph.client_id,
            "ACCESSBOT_ENTRA_CLIENT_SECRET": self.graph.client_secret,
            "ACCESSBOT_GRAPH_URL": self.graph.graph_url, "ACCESSBOT_AUTHORITY_URL": self.graph.url,
            "ACCESSBOT_OKTA_URL": self.okta.url, "ACCESSBOT_OKTA_TOKEN": self.okta.token,
            "SSL_CERT_FILE": self.tls.ca_file, "REQUESTS_CA_BUNDLE": self.tls.ca_file,
        }

    def settings(self) -> Any:
        from bot.settings import Settings

        return Settings(database_url=self.db, policy=str(self.files.policy), directory=str(self.files.directory),
                        identity="directory", entra_tenant_id=self.graph.tenant,
                        entra_client_id=self.graph.client_id, entra_client_secret=self.graph.client_secret,
                        graph_url=self.graph.graph_url, authority_url=self.graph.url,
                        okta_url=self.okta.url, okta_token=self.okta.token)

    def chat(self, email: str, *lines: str) -> str:
        result = cli("chat", "--as", email, input="\n".join(lines) + "\n", db=self.db, files=self.files, env=self.env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr + result.stdout
        return result.stdout

    def sweep(self, as_of: str | None = None) -> str:
        args = ["sweep", *(["--as-of", as_of] if as_of else [])]
        result = cli(*args, db=self.db, files=self.files, env=self.env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr + result.stdout
        return result.stdout

    def chat_killed_while_held(self, email: str, line: str, method: str, path_part: str) -> None:
        """Run ``accessbot chat`` and SIGKILL it once the stand-in has received ``method`` on a
        path containing ``path_part`` (the stand-in is holding it: ``slow_next``)."""
        before = len(self.graph.received(method, path_part))
        cmd = [sys.executable, "-m", "bot.cli", "chat", "--as", email, "--database-url", self.db,
               "--policy", str(self.files.policy), "--directory", str(self.files.directory)]
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, env={**clean, **self.env})
        try:
            assert proc.stdin is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            deadline = time.monotonic() + 60
            while len(self.graph.received(method, path_part)) == before:
                assert proc.poll() is None, f"chat ended before the call: {proc.communicate()}"
                assert time.monotonic() < deadline, "the stand-in never received the call"
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL

    def set_lease(self, seconds: float) -> None:
        """How long a process owns a provider call it claimed (``schedule.provider_lease``)."""
        text = re.sub(r", provider_lease: [0-9.]+s", "", self.files.policy.read_text())
        self.files.policy.write_text(text.replace(f"schedule: {{retry_budget: {RETRY_BUDGET}}}",
                                                  f"schedule: {{retry_budget: {RETRY_BUDGET}, "
                                                  f"provider_lease: {seconds:g}s}}"))

    def wait_for_leases(self, timeout: float = 60.0) -> None:
        """Until no pending provider call is leased any more (its owner's lease ran out)."""
        deadline = time.monotonic() + timeout
        while True:
            now = datetime.now(UTC)
            leases = [r[0] for r in self.rows("SELECT leased_until FROM provider_ops WHERE status = 'pending' "
                                              "AND leased_until IS NOT NULL")]
            if all(as_utc(v) < now for v in leases):
                return
            assert time.monotonic() < deadline, "a lease never ran out"
            time.sleep(0.1)

    # ----- the store, read-only --------------------------------------------------------------

    def rows(self, sql: str, **params: Any) -> list[Any]:
        from store.db import make_sync_engine

        engine = make_sync_engine(self.db)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def state(self, n: int) -> str:
        return str(self.rows("SELECT state FROM requests WHERE id = :n", n=n)[0][0])

    def ops(self, n: int) -> list[Any]:
        return self.rows("SELECT op, status, attempts, correlation_id, failure_reported, last_error "
                         "FROM provider_ops WHERE request_id = :n ORDER BY id", n=n)

    def events(self) -> list[dict[str, Any]]:
        """The audit events as stored (``accessbot audit verify`` checks the chain over them)."""
        return [{"seq": seq, "type": type_, "actor": actor, "request_id": request_id, "data": json.loads(data)}
                for seq, type_, actor, request_id, data in
                self.rows("SELECT seq, type, actor, request_id, data FROM audit_events ORDER BY seq")]

    def event_counts(self, request_ref: str) -> Counter[str]:
        return Counter(e["type"] for e in self.events() if e.get("request_id") == request_ref)

    def verify(self) -> str:
        result = cli("audit", "verify", db=self.db)
        assert result.returncode == 0 and result.stdout.startswith("OK "), result.stdout + result.stderr
        return result.stdout


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, fault_tls: LocalTLS) -> World:
    return make_world(sqlite_url, tmp_path, graph, okta, fault_tls)


def make_world(db: str, tmp_path: Path, graph: FaultyGraph, okta: FaultyOkta, tls: LocalTLS) -> World:
    files = copy_examples(tmp_path)
    entra_group = graph.add_group("sg-ops-console")
    okta_group = okta.add_group("ops-console")
    people = yaml.safe_load(files.directory.read_text())["users"]
    for person in people:
        graph.add_user(person["email"], display_name=person.get("name", ""), department=person.get("department"))
        okta.add_user(person["email"], department=person.get("department"))
    files.policy.write_text(files.policy.read_text()
                            + ENTRA_PROFILES.format(entra_group=entra_group, okta_group=okta_group)
                            + f"\nschedule: {{retry_budget: {RETRY_BUDGET}}}\n")
    return World(db, files, graph, okta, entra_group, okta_group, tls)
