"""verify_pack.py reads every member of the zip it is given into memory. A member that deflate shrank far
beyond what any pack member shrinks (a zip bomb: gigabytes of one byte in a few hundred kilobytes) is a FAIL
named before it is unpacked, instead of the verifier taking as much memory as the zip says (on a machine
without that much, the kernel kills it, or another process, rather than a FAIL being printed)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

VERIFY = Path(__file__).resolve().parents[2] / "bot" / "evidence_files" / "verify_pack.py"
SIZE = 768 << 20  # what the bomb unpacks to
LAUNCH = ("import os, subprocess, sys; child = subprocess.Popen(sys.argv[1:]); "
          "_, status, usage = os.wait4(child.pid, 0); "
          "print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)")


def _bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("manifest.json", json.dumps({"files": {}}))
        with zf.open("audit.jsonl", "w", force_zip64=True) as member:
            block = b"\n" * (1 << 20)
            for _ in range(SIZE >> 20):
                member.write(block)


def test_a_zip_bomb_is_a_fail_without_unpacking_it(tmp_path: Path) -> None:
    pack = tmp_path / "bomb.zip"
    _bomb(pack)
    assert pack.stat().st_size < SIZE // 500
    # the verifier is started by a small launcher, so that its peak memory is its own (a child forked from
    # this test process would count this process's pages as well)
    done = subprocess.run([sys.executable, "-I", "-c", LAUNCH, sys.executable, "-I", str(VERIFY), str(pack)],
                          capture_output=True, text=True, timeout=600)
    peak_kib, code = map(int, done.stderr.split()[-2:])
    said = done.stdout
    assert code == 1 and said.startswith("FAIL cannot read") and "audit.jsonl" in said, said
    assert "Traceback" not in said
    assert peak_kib * 1024 < SIZE // 4, f"peak {peak_kib} KiB: the member was unpacked"
