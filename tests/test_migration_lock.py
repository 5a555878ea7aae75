"""Several processes starting at once on a new database: the one that migrates holds the lock from reading
the version to the commit of the last revision (store/migrations/env.py), so no other can read the version
in between and then apply a revision already applied."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

from store.db import head_revision, upgrade
from tests.support import ROOT, copy_examples


def test_every_revision_is_applied_in_one_transaction(database_url: str) -> None:
    """Alembic commits after each revision on SQLite unless told its DDL is transactional: the write lock
    was let go between two revisions."""
    commits: list[str] = []

    def committed(conn) -> None:  # type: ignore[no-untyped-def]
        commits.append(conn.engine.url.render_as_string(hide_password=True))

    event.listen(Engine, "commit", committed)
    try:
        upgrade(database_url)
    finally:
        event.remove(Engine, "commit", committed)
    migrating = [c for c in commits if c.rsplit("/", 1)[-1] == database_url.rsplit("/", 1)[-1]]
    assert len(migrating) == 1, migrating


def test_six_processes_starting_on_a_new_sqlite_database_all_succeed(tmp_path: Path) -> None:
    files = copy_examples(tmp_path)
    for attempt in range(3):
        db = f"sqlite:///{tmp_path}/race{attempt}.db"
        procs = [subprocess.Popen([sys.executable, "-m", "bot.cli", "sweep", "--database-url", db,
                                   "--policy", str(files.policy), "--directory", str(files.directory)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(6)]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, "\n".join(outputs)[-3000:]
        assert not any("Traceback" in out for out in outputs)
    from store.db import current_revision

    assert current_revision(db) == head_revision()
