"""The overlay kept in memory is exactly what its version recorded.

``StoreOverlay.overlay`` reads the version row, then the overlay, in two statements (each its own
snapshot). A change another process commits between them must not be kept under the older version:
a database restored to the backup that carries that version would then be answered from memory with
memberships it does not hold. The version is read again after the overlay, and the overlay kept only
when both agree."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from sqlalchemy import event

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.context import one_lookup_per_person
from tests.support import RecordingNotifier, harness

ALICE, BOB = "alice@example.com", "bob@example.com"
GROUP = "sg-prod-db-read"


async def _groups(app, email: str) -> frozenset[str]:  # type: ignore[no-untyped-def]
    with one_lookup_per_person():
        person = await app.deps.directory.get_user(email)
    assert person is not None
    return person.groups


async def test_a_change_committed_between_the_version_and_the_overlay_is_not_kept_under_the_old_version(
        sqlite_url: str, tmp_path: Path) -> None:
    db_file = sqlite_url.removeprefix("sqlite:///")
    async with harness(sqlite_url, tmp_path) as h:
        directory = h.app.deps.providers["directory"]
        await directory.add_member(GROUP, BOB)  # version V1; this process has read nothing yet
        backup = sqlite3.connect(tmp_path / "backup.db")
        with sqlite3.connect(db_file) as live:
            live.backup(backup)  # last night's backup: V1, Alice not in the group
        settings = Settings(database_url=sqlite_url, policy=str(h.files.policy),
                            directory=str(h.files.directory), env={})

        async def other_process() -> None:
            async with build_app(settings, clock=h.clock, notifier=RecordingNotifier()) as other:
                await other.deps.providers["directory"].add_member(GROUP, ALICE)  # V2

        armed = [True]

        def between(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            # the whole overlay's SELECT, after this process read the version row: another worker commits
            if armed[0] and "FROM directory_memberships" in statement and "WHERE" not in statement:
                armed[0] = False
                worker = threading.Thread(target=asyncio.run, args=(other_process(),))
                worker.start()
                worker.join(60)

        event.listen(h.app.store.engine.sync_engine, "before_cursor_execute", between)
        try:
            assert GROUP in await _groups(h.app, ALICE)  # true now (read after the other worker's commit)
        finally:
            event.remove(h.app.store.engine.sync_engine, "before_cursor_execute", between)
        assert not armed[0]

        with sqlite3.connect(db_file) as live:
            backup.backup(live)  # the database is restored from the backup (V1, Alice not a member)
        backup.close()
        async with h.app.store.read() as repo:
            assert (GROUP, ALICE) not in await repo.overlay()
        # (V1, the overlay with Alice) must not have been kept: the restored database says V1 again
        assert GROUP not in await _groups(h.app, ALICE)
