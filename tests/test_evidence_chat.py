"""The chat's `evidence` writes its pack where no other local user can read it or plant a link."""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

from tests.support import cli, copy_examples

TODAY = datetime.now(UTC).date().isoformat()


def _pack_path(out: str) -> Path:
    m = re.search(r"written on the server: (\S+\.zip)", out)
    assert m, out
    return Path(m.group(1))


def test_pack_goes_to_a_private_folder_not_a_planted_one(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    shared = tmp_path / "shared-tmp"
    shared.mkdir(mode=0o1777)
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    (shared / "accessbot-evidence").symlink_to(attacker)  # the old, predictable folder
    r = cli("chat", "--as", "sam.sec@example.com", input=f"evidence {TODAY} {TODAY}\n", db=sqlite_url, files=files,
            env={"TMPDIR": str(shared)})
    assert r.returncode == 0, r.stdout + r.stderr
    pack = _pack_path(r.stdout)
    assert list(attacker.iterdir()) == []
    assert pack.is_file() and not pack.is_symlink() and attacker not in pack.resolve().parents
    folder = pack.parent
    assert not folder.is_symlink() and stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(pack).st_mode) == 0o600
    # a second pack never reuses the first one's folder or name
    again = _pack_path(cli("chat", "--as", "sam.sec@example.com", input=f"evidence {TODAY} {TODAY}\n",
                           db=sqlite_url, files=files, env={"TMPDIR": str(shared)}).stdout)
    assert again != pack and pack.is_file()


def test_a_configured_folder_is_made_private_and_a_link_is_refused(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    folder = tmp_path / "packs"
    r = cli("chat", "--as", "sam.sec@example.com", input=f"evidence {TODAY} {TODAY}\n", db=sqlite_url, files=files,
            env={"ACCESSBOT_EVIDENCE_DIR": str(folder)})
    pack = _pack_path(r.stdout)
    assert pack.parent == folder and stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(pack).st_mode) == 0o600
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "attacker-owned", target_is_directory=True)
    (tmp_path / "attacker-owned").mkdir()
    r = cli("chat", "--as", "sam.sec@example.com", input=f"evidence {TODAY} {TODAY}\n", db=sqlite_url, files=files,
            env={"ACCESSBOT_EVIDENCE_DIR": str(link)})
    assert r.returncode == 1 and "ACCESSBOT_EVIDENCE_DIR" in r.stdout and "Traceback" not in r.stderr, r.stdout
    assert list((tmp_path / "attacker-owned").iterdir()) == []
