"""Saves the policy watch must not miss, and failures it must report (not /healthz saying "in force").

1. ``accessbot serve`` (bot/server.py::serve) and ``accessbot chat`` (bot/cli.py::cmd_chat) read the
   policy file in ``build_app`` and only afterwards build the :class:`PolicyWatch`, whose first
   ``stat`` becomes "seen". A file saved in between (migrations, group resolution at the IdP and the
   start-up repairs run there: seconds) has its new ``stat`` taken for the one already loaded, so it is
   never read: the old version judges until the file changes again.
2. A store failure while recording ``policy.loaded`` (a PostgreSQL fail-over, a cancelled statement)
   escapes ``_install`` after ``check`` already remembered the new bytes' hash: the same file is never
   looked at again, and nothing marks it rejected.
3. A path that cannot be read (a directory, a permission error) is skipped silently: no log line, and
   ``app.state['policy_rejected']`` stays None, so ``/healthz`` says ``"file": "in force"``.
"""

from __future__ import annotations

import asyncio
import time

import psycopg

from bot.health import health_report
from bot.policy_watch import STATE_KEY, PolicyWatch
from store.repository import WRITE_LOCK_KEY
from tests.support import harness
from tests.test_policy_reload import _edit_policy


async def test_a_policy_saved_while_the_app_starts_is_put_in_force(sqlite_url, tmp_path) -> None:
    async with harness(sqlite_url, tmp_path) as h:  # build_app has read the file (as serve and chat do)
        _edit_policy(h.files, "2026.12", "7d")  # saved during the start-up, before the watch exists
        watch = PolicyWatch(h.app, h.files.policy, wait=True)  # bot/server.py builds it right after build_app
        for _ in range(3):
            await watch.check()
        assert h.app.deps.policy.version == "2026.12", (
            f"the file on disk is 2026.12 but {h.app.deps.policy.version} stays in force, "
            f"and nothing says so (policy_rejected={h.app.state.get(STATE_KEY)})")


async def test_a_store_failure_while_recording_a_version_does_not_drop_it(pg_url, tmp_path) -> None:
    async with harness(pg_url, tmp_path) as h:
        watch = PolicyWatch(h.app, h.files.policy, wait=True)
        _edit_policy(h.files, "2026.12", "7d")
        with psycopg.connect(pg_url, autocommit=False) as holder, psycopg.connect(pg_url, autocommit=True) as admin:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))  # another writer, for a moment
            check = asyncio.create_task(watch.check())
            deadline = time.monotonic() + 30
            waiting: list[int] = []
            while not waiting and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                waiting = [r[0] for r in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> %s "
                    "AND query LIKE '%%pg_advisory_xact_lock%%'", (holder.info.backend_pid,)).fetchall()]
            assert waiting, "the check never reached the store"
            for pid in waiting:  # the statement fails (a fail-over, a statement timeout, an admin's cancel)
                admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
            assert await check is None  # not recorded, so not in force: said, and tried again
            assert h.app.deps.policy.version == "2026.11"
            assert "could not be recorded" in h.app.state[STATE_KEY]["problems"][0]
            holder.rollback()
        # the database is fine again; the file has not changed
        for _ in range(3):
            await watch.check()
        assert h.app.deps.policy.version == "2026.12" and h.app.state.get(STATE_KEY) is None, (
            f"{h.app.deps.policy.version} stays in force for good ({h.app.state.get(STATE_KEY)})")


async def test_an_unreadable_policy_path_is_reported(sqlite_url, tmp_path) -> None:
    async with harness(sqlite_url, tmp_path) as h:
        watch = PolicyWatch(h.app, h.files.policy, wait=True)
        saved = h.files.policy.read_bytes()
        h.files.policy.unlink()
        h.files.policy.mkdir()  # (as root a chmod 000 would not stop the read; EACCES takes the same branch)
        (h.files.policy / "policy.yaml").write_bytes(saved)
        for _ in range(3):
            assert await watch.check() is None
        answer = await health_report(h.app, {})
        assert answer["checks"]["policy"]["file"] != "in force", (
            f"the policy path cannot be read, yet /healthz says {answer['checks']['policy']}")
