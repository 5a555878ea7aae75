"""Two real ``accessbot serve`` processes on one PostgreSQL database sweep the same due grants."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.context import FixedClock
from store.db import make_sync_engine
from tests.support import ROOT, copy_examples

GRANTS = 500


async def _seed(url: str, files, n: int) -> None:  # type: ignore[no-untyped-def]
    """n users, each auto-approved for analytics-read two hours ago for one hour: all overdue."""
    settings = Settings(database_url=url, policy=str(files.policy), directory=str(files.directory))
    clock = FixedClock(datetime.now(UTC) - timedelta(hours=2))
    async with build_app(settings, clock=clock) as app:
        for i in range(n):
            person = await app.service.identify(f"user{i:03d}@example.com")
            reply = await app.service.handle_text(person, "request analytics-read for 1h")
            assert reply.ok and reply.request.state == "active", reply.text


def _serve(url: str, files) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, "ACCESSBOT_PORT": "0", "ACCESSBOT_HOST": "127.0.0.1"}
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--database-url", url,
                             "--policy", str(files.policy), "--directory", str(files.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)


@pytest.mark.postgres
def test_two_replicas_revoke_each_overdue_grant_exactly_once(pg_url, tmp_path):
    files = copy_examples(tmp_path)
    people = [f"user{i:03d}@example.com" for i in range(GRANTS)]
    files.edit_directory(lambda d: d["users"].extend(
        {"email": p, "name": p, "department": "Engineering", "employment_type": "FTE",
         "manager": "mark.mgr@example.com", "active": True} for p in people))
    asyncio.run(_seed(pg_url, files, GRANTS))

    engine = make_sync_engine(pg_url)
    procs = [_serve(pg_url, files), _serve(pg_url, files)]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(text("SELECT count(*) FROM requests WHERE state = 'active'")).scalar()
                left += conn.execute(text("SELECT count(*) FROM provider_ops WHERE status = 'pending'")).scalar()
            if left == 0:
                break
            assert all(p.poll() is None for p in procs), [p.stdout.read() for p in procs if p.stdout]
            time.sleep(0.5)
        assert left == 0, f"{left} grants or removals still open after the sweeps"
        with engine.connect() as conn:
            expired = Counter(r[0] for r in conn.execute(
                text("SELECT request_id FROM audit_events WHERE type = 'grant.expired'")))
            removes = Counter(r[0] for r in conn.execute(
                text("SELECT request_id FROM provider_ops WHERE op = 'remove' AND status = 'done'")))
            members = conn.execute(text("SELECT count(*) FROM directory_memberships WHERE present")).scalar()
    finally:
        for p in procs:
            p.terminate()
        outputs = [p.communicate(timeout=30)[0] for p in procs]
        engine.dispose()
    assert len(expired) == GRANTS and set(expired.values()) == {1}, "each grant expired exactly once"
    assert len(removes) == GRANTS and set(removes.values()) == {1}, "each membership removed exactly once"
    assert members == 0
    assert all("accessbot serving on" in out for out in outputs), outputs
    verify = subprocess.run([sys.executable, "-m", "bot.cli", "audit", "verify", "--database-url", pg_url],
                            capture_output=True, text=True, cwd=ROOT)
    assert verify.returncode == 0 and verify.stdout.startswith(f"OK {1 + GRANTS * 4} events"), verify.stdout
