"""Commands that write a file (``--out``): a place no file can be written is one line and exit 2, before any
work, nothing recorded and nothing left beside it (no ``.partial`` holding people's requests)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.support import chat, cli, copy_examples

APP_ID = "6a3c1f0e-1d2b-4c5d-8e9f-0a1b2c3d4e5f"


def _events(db: str) -> list[dict]:
    return [json.loads(x) for x in cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout.splitlines()]


def _commands(out: Path) -> dict[str, tuple[str, ...]]:
    return {
        "evidence export": ("evidence", "export", "--from", "2026-01-01", "--to", "2030-12-31", "--out", str(out)),
        "review report": ("review", "report", "RV-1", "--out", str(out)),
        "teams package": ("teams", "package", "--app-id", APP_ID, "--out", str(out)),
    }


def _places(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    pipe = tmp_path / "a-pipe.zip"
    os.mkfifo(pipe)
    link = tmp_path / "link-to-a-pipe.zip"
    link.symlink_to(pipe)
    return {"an existing folder": folder, "under a file": a_file / "out.zip", "a pipe": pipe, "a link to a pipe": link,
            "under a folder that cannot be made": Path("/proc/accessbot-no-such/out.zip")}


@pytest.mark.parametrize("command", ["evidence export", "review report", "teams package"])
def test_an_output_path_no_file_can_be_written_to_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    files = copy_examples(tmp_path)
    db = f"sqlite:///{tmp_path}/x.db"
    chat("bob@example.com", "request staging-admin for 2h because test", db=db, files=files)
    cli("review", "start", "quarterly-privileged", db=db, files=files, check=True)
    before = _events(db)
    for place, out in _places(tmp_path).items():
        args = _commands(out)[command]
        r = cli(*args, db=db, files=files) if command != "teams package" else cli(*args)
        assert r.returncode == 2, (place, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, (place, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("accessbot: ") and str(out) in lines[0], (place, r.stderr)
        assert not list(tmp_path.rglob("*.partial")), place
    assert (tmp_path / "a-file").read_text() == "not a folder\n"
    assert stat.S_ISFIFO((tmp_path / "a-pipe.zip").lstat().st_mode)  # never replaced by the file
    assert (tmp_path / "link-to-a-pipe.zip").is_symlink()
    assert _events(db) == before  # no evidence.exported for a pack never written
