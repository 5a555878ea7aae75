"""`accessbot serve` on PostgreSQL migrates before it serves: one process in a child process, ``--workers N``'s
parent on a thread of its own before it starts the workers. One that waits for the migration lock (another process
migrating the same database) says so while it waits and serves once the lock is free; stopped meanwhile, it leaves
nothing to migrate later."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support import ROOT, Files, copy_examples
from tests.test_policy_reload import Lines

MIGRATION_LOCK_KEY = 0x61636D67  # store/migrations/env.py (a module only Alembic's context may import)
WAITING = "database migration is still running"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _serve(workers: int, url: str, files: Files) -> tuple[subprocess.Popen[str], Lines]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_"))}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", str(workers),
                             "--host", "127.0.0.1", "--port", "0", "--database-url", url,
                             "--policy", str(files.policy), "--directory", str(files.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    return proc, Lines(proc.stdout)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_serve_waiting_for_the_migration_lock_says_so_then_serves(workers, pg_url, tmp_path: Path) -> None:
    files = copy_examples(tmp_path)
    with psycopg.connect(_libpq(pg_url)) as holder:  # another process migrating: it holds the lock
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        proc, out = _serve(workers, pg_url, files)
        try:
            said = out.until(WAITING, timeout=90)
            assert "accessbot serving on" not in said, said
            holder.rollback()  # the other migration is done
            out.until("accessbot serving on", timeout=90)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(out.seen)
    assert "postgresql://" not in "".join(out.seen) and "postgresql+" not in "".join(out.seen)  # no URL printed


@pytest.mark.parametrize("workers", [1, 2])
def test_a_serve_stopped_while_it_waits_for_the_migration_lock_leaves_nothing_to_migrate_later(
        workers, pg_url, tmp_path: Path) -> None:
    """SIGTERM (a service manager giving up on a start that hangs) stops the waiting migration too: once the lock
    is free, nothing migrates the database behind the operator's back."""
    files = copy_examples(tmp_path)
    with psycopg.connect(_libpq(pg_url)) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        proc, out = _serve(workers, pg_url, files)
        said = out.until(WAITING, timeout=90)
        # one process migrates in a child (named in the notice); --workers N's parent on a thread of its own
        found = re.search(r"pid=(\d+)", said)
        child = int(found.group(1)) if found else None
        assert (child is not None) == (workers == 1), said
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(out.seen)
        holder.rollback()
    deadline = time.monotonic() + 30
    while child is not None and time.monotonic() < deadline and os.path.exists(f"/proc/{child}"):
        time.sleep(0.1)
    assert child is None or not os.path.exists(f"/proc/{child}"), "the migration's process outlived the server"
    time.sleep(1)  # what a migration left waiting would do now that the lock is free
    with psycopg.connect(_libpq(pg_url), autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('alembic_version')").fetchone()
    assert row is not None and row[0] is None, "the database was migrated after the server stopped"
    out.until("stopped before the database migration finished", timeout=10)  # and it said so
