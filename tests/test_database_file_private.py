"""The SQLite database holds every request, justification and decision: a database file accessbot creates is
readable by its owner only (0600, whatever the umask), as its evidence packs and certifications are, and so are
the `-wal` and `-shm` files SQLite creates beside it (with the database file's permissions). A file already
readable by every local user is used, with a warning naming it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from store.db import make_sync_engine
from tests.support import cli, copy_examples


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _with_umask(mask: int, *args: str, **kw):  # type: ignore[no-untyped-def]
    old = os.umask(mask)
    try:
        return cli(*args, **kw)
    finally:
        os.umask(old)


def test_a_new_database_file_and_its_wal_are_private_whatever_the_umask(tmp_path: Path) -> None:
    files = copy_examples(tmp_path)
    db = tmp_path / "data" / "accessbot.db"
    url = f"sqlite:///{db}"
    done = _with_umask(0o022, "chat", "--as", "bob@example.com", input="request staging-admin for 1h\n",
                       db=url, files=files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _mode(db) == 0o600, oct(_mode(db))
    assert "readable by every local user" not in done.stdout + done.stderr

    engine = make_sync_engine(url)  # a connection open: the WAL and its index exist beside the file
    try:
        with engine.begin() as conn:
            conn.execute(text("SELECT count(*) FROM audit_events")).scalar()
            for suffix in ("-wal", "-shm"):
                side = db.with_name(db.name + suffix)
                assert side.exists() and _mode(side) == 0o600, (suffix, oct(_mode(side)))
    finally:
        engine.dispose()

    again = _with_umask(0o022, "db", "upgrade", db=f"sqlite:///{tmp_path / 'other.db'}", files=files)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _mode(tmp_path / "other.db") == 0o600


def test_an_existing_world_readable_database_is_used_with_a_warning(tmp_path: Path) -> None:
    files = copy_examples(tmp_path)
    db = tmp_path / "accessbot.db"
    db.touch()
    db.chmod(0o644)  # as an earlier version, or another tool, created it
    done = cli("chat", "--as", "bob@example.com", input="request staging-admin for 1h\n", db=f"sqlite:///{db}",
               files=files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "REQ-" in done.stdout
    said = done.stdout + done.stderr  # the log's lines, wherever the logging is sent
    assert "database file is readable by every local user" in said and str(db) in said, said
    assert _mode(db) == 0o644  # the operator's file: left as it is
