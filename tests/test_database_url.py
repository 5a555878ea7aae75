"""A wrong database path or URL is one clear line, never a clean-looking audit (SPEC §5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, cli, copy_examples

READ_ONLY = [("audit", "verify"), ("audit", "export", "--format", "jsonl"), ("report", "drift"),
             ("report", "access"), ("evidence", "export", "--from", "2026-11-01", "--to", "2026-11-30", "--out")]


def _run(args: list[str], *, cwd: Path, out: Path, db: str | None = None) -> subprocess.CompletedProcess[str]:
    args = [*args, str(out)] if args[-1] == "--out" else list(args)
    if db is not None:
        args += ["--database-url", db]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


@pytest.mark.parametrize("args", READ_ONLY, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_refuse_a_database_that_is_not_there(tmp_path, args):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    pack = tmp_path / "pack.zip"
    # the default sqlite:///accessbot.db, from another folder
    r = _run(list(args), cwd=elsewhere, out=pack)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(elsewhere / "accessbot.db") in lines[0], r.stderr
    assert list(elsewhere.iterdir()) == [] and not pack.exists()
    # a folder that does not exist is not made
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    r = _run(list(args), cwd=elsewhere, out=pack, db=f"sqlite:///{missing}")
    assert r.returncode == 1 and str(missing) in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "no").exists() and not pack.exists()
    # a file that is there but holds no schema is not given one
    empty = tmp_path / "empty.db"
    empty.touch()
    r = _run(list(args), cwd=elsewhere, out=pack, db=f"sqlite:///{empty}")
    assert r.returncode == 1 and str(empty) in r.stderr and "schema" in r.stderr, r.stderr
    assert empty.stat().st_size == 0 and not pack.exists()


def test_read_only_commands_refuse_an_empty_postgresql_database(pg_url, tmp_path):
    pack = tmp_path / "pack.zip"
    for args in READ_ONLY:
        r = _run(list(args), cwd=tmp_path, out=pack, db=pg_url)
        assert r.returncode == 1 and "schema" in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert not pack.exists()
    gone = pg_url.rsplit("/", 1)[0] + "/no_such_database_here"
    r = _run(["audit", "verify"], cwd=tmp_path, out=pack, db=gone)
    assert r.returncode == 1 and "no_such_database_here" in r.stderr and len(r.stderr.strip().splitlines()) <= 3


BAD_URLS = ["not a url at all", "foo://user:s3cret@host/db", "mysql://user:s3cret@127.0.0.1/db",
            "postgresql://user:s3cret@127.0.0.1:1/db", "postgresql+asyncpg://user:s3cret@127.0.0.1:1/db"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_an_unusable_url_is_one_clear_line_for_any_command(tmp_path, url):
    files = copy_examples(tmp_path)
    for args in (["chat", "--as", "bob@example.com"], ["sweep"], ["db", "upgrade"], ["audit", "verify"],
                 ["report", "drift"]):
        r = cli(*args, db=url, files=None if args[0] in ("db", "audit", "report") else files, input="help\n")
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and "s3cret" not in r.stderr + r.stdout, r.stderr
        lines = r.stderr.strip().splitlines()
        assert 1 <= len(lines) <= 3 and lines[0].startswith("accessbot: "), (args, r.stderr)
        assert "database" in lines[0]
