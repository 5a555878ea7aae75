"""A period's evidence is delivered once when two processes (serve's workers, a worker and ``accessbot sweep``)
find it due at the same time: the one that takes it owns it while it builds and uploads it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from store.db import make_sync_engine
from tests.standins.drive import DriveStandIn
from tests.standins.tls import LocalTLS, make_tls
from tests.support import ROOT, copy_examples


@pytest.fixture
def drive_tls(tmp_path: Path) -> Iterator[tuple[DriveStandIn, LocalTLS]]:
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    stand_in = DriveStandIn(tls)
    stand_in.start()
    yield stand_in, tls
    stand_in.stop()


def test_two_sweeps_deliver_a_quarter_once(database_url: str, tmp_path: Path,
                                           drive_tls: tuple[DriveStandIn, LocalTLS]) -> None:
    drive, tls = drive_tls
    files = copy_examples(tmp_path)
    data = yaml.safe_load(files.policy.read_text())
    data["evidence"] = {"quarterly": True, "deliver_to": "sharepoint"}
    files.policy.write_text(yaml.safe_dump(data, sort_keys=False))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    env = {**clean, "ACCESSBOT_IDENTITY": "directory", "ACCESSBOT_ENTRA_TENANT_ID": drive.tenant,
           "ACCESSBOT_ENTRA_CLIENT_ID": drive.client_id, "ACCESSBOT_ENTRA_CLIENT_SECRET": drive.client_secret,
           "ACCESSBOT_GRAPH_URL": drive.graph_url, "ACCESSBOT_AUTHORITY_URL": drive.url,
           "ACCESSBOT_SHAREPOINT_DRIVE_ID": drive.drive_id, "SSL_CERT_FILE": tls.ca_file,
           "REQUESTS_CA_BUNDLE": tls.ca_file}
    cmd = [sys.executable, "-m", "bot.cli", "sweep", "--database-url", database_url,
           "--policy", str(files.policy), "--directory", str(files.directory)]

    def sweep() -> subprocess.Popen[str]:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)

    def wait_for(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 120
        while not predicate():
            assert time.monotonic() < deadline, what
            time.sleep(0.05)

    gate = threading.Event()
    drive.hold_path(f"/drives/{drive.drive_id}/", gate)  # every upload waits until let go
    uploads = lambda: len(drive.received(None, f"/drives/{drive.drive_id}/"))  # noqa: E731
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(sweep())
        wait_for(lambda: uploads() >= 1 or procs[0].poll() is not None, "the first sweep never uploaded")
        assert procs[0].poll() is None, procs[0].communicate()
        procs.append(sweep())  # finds the quarter taken: done without uploading; before, it uploaded it again
        wait_for(lambda: uploads() >= 2 or procs[1].poll() is not None, "the second sweep neither ended nor uploaded")
    finally:
        gate.set()
        drive.clear_path_faults()
        outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 and "Traceback" not in err for p, (_, err) in zip(procs, outs, strict=True)), outs
    delivered = [line for out, _ in outs for line in out.splitlines() if line.startswith("Delivered")]
    assert len(delivered) == 1, outs
    assert uploads() == 1
    engine = make_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT count(*) FROM audit_events WHERE type = 'evidence.delivered'")).scalar()
            status = conn.execute(text("SELECT status FROM evidence_deliveries")).scalars().all()
    finally:
        engine.dispose()
    assert events == 1 and status == ["delivered"], (events, status)
