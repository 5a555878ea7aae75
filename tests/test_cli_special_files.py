"""A file option naming a device or a pipe (or a link to one): /dev/zero never ends, a pipe waits for a writer
for ever. Such a file is refused by name, as any unreadable file is, and never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import chat, cli, copy_examples


def _specials(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "a-pipe.yaml"
    os.mkfifo(fifo)
    link = tmp_path / "link-to-zero.yaml"
    link.symlink_to("/dev/zero")
    return {"a pipe": fifo, "a link to /dev/zero": link, "a device": Path("/dev/zero")}


@pytest.mark.parametrize("option", ["policy check", "--policy", "--directory", "--anchors"])
def test_a_device_or_a_pipe_is_refused_by_name_never_read(tmp_path: Path, option: str) -> None:
    files = copy_examples(tmp_path)
    db = f"sqlite:///{tmp_path}/x.db"
    chat("bob@example.com", "help", db=db, files=files)
    for what, special in _specials(tmp_path).items():
        if option == "policy check":
            r = cli("policy", "check", str(special), timeout=30)
        elif option == "--anchors":
            r = cli("audit", "verify", "--anchors", str(special), db=db, files=files, timeout=30)
        else:
            chosen = files.__class__(special, files.directory) if option == "--policy" \
                else files.__class__(files.policy, special)
            r = cli("chat", "--as", "bob@example.com", input="help\n", db=db, files=chosen, timeout=30)
        out = r.stdout + r.stderr
        assert r.returncode == 1, (what, out)
        assert "Traceback" not in out and "MemoryError" not in out, (what, out)
        assert str(special) in out and "not a regular file" in out, (what, out)


def test_evidence_verify_refuses_a_device_or_a_pipe_as_the_pack(tmp_path: Path) -> None:
    """`accessbot evidence verify` (and the shipped verify_pack.py) name a device or a pipe given as the pack and
    exit 1 without reading it (it was a MemoryError for /dev/zero; a pipe hung)."""
    import subprocess
    import sys

    from tests.support import ROOT

    verifier = ROOT / "bot" / "evidence_files" / "verify_pack.py"
    for what, special in _specials(tmp_path).items():
        r = cli("evidence", "verify", str(special), timeout=30)
        out = r.stdout + r.stderr
        assert r.returncode == 1, (what, out)
        assert "Traceback" not in out and "MemoryError" not in out, (what, out)
        assert "not a regular file" in out, (what, out)
        r = subprocess.run([sys.executable, str(verifier), str(special)], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "not a regular file" in r.stdout + r.stderr, (what, r.stdout + r.stderr)
