"""A FIFO (named pipe) at the policy file's path must not hang the policy check (it did, for good).

bot/policy_watch.py ``stat``s the path (fine for a FIFO), sees a new inode and reads the bytes with
``Path.read_bytes`` on a worker thread, holding its lock. Opening a FIFO nobody writes blocks forever:
``accessbot chat`` never answers its next line, and under ``accessbot serve`` every later check waits
on the lock (the scheduler skips the job while the stuck run is "running"), so a valid policy saved
afterwards is never put in force while ``/healthz`` keeps saying ``"file": "in force"``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.support import ROOT, copy_examples
from tests.test_policy_reload import ALICE, Lines, _edit_policy, _health, serving


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_"))}


def test_chat_answers_the_next_line_when_the_policy_path_became_a_fifo(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--as", ALICE, "--database-url", sqlite_url,
                             "--policy", str(files.policy), "--directory", str(files.directory)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=_env())
    out = Lines(proc.stdout)
    try:
        proc.stdin.write("profiles\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        out.until("staging-admin")
        files.policy.unlink()
        os.mkfifo(files.policy)  # e.g. `--policy <(render-policy)` style plumbing, or a mistaken mkfifo
        proc.stdin.write("profiles\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        try:
            out.until("staging-admin", timeout=15)
        except AssertionError:
            raise AssertionError("accessbot chat hangs for good: the policy check blocks opening the FIFO") from None
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_serve_keeps_watching_the_policy_after_a_fifo_was_at_its_path(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    with serving(sqlite_url, files) as (base, _, _):
        saved = files.policy.read_text()
        files.policy.unlink()
        os.mkfifo(files.policy)
        time.sleep(5)  # two checks or more see the FIFO
        files.policy.unlink()
        files.policy.write_text(saved)
        _edit_policy(files, "2026.12", "7d")  # a valid new version, saved as a regular file again
        deadline, seen = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            seen = _health(base)["checks"]["policy"]
            if seen["version"] == "2026.12":
                break
            time.sleep(0.5)
        assert seen == {"version": "2026.12", "file": "in force"}, (
            f"the policy watch is stuck on the FIFO: /healthz says {seen} 20 s after a valid version was saved")


def test_serve_stops_on_sigterm_after_a_fifo_was_at_the_policy_path(sqlite_url, tmp_path) -> None:
    """A read stuck on the FIFO would hold a thread of the default executor, which ``asyncio.run`` joins at exit."""
    files = copy_examples(tmp_path)
    with serving(sqlite_url, files) as (_, proc, out):
        saved = files.policy.read_text()
        files.policy.unlink()
        os.mkfifo(files.policy)
        time.sleep(5)
        files.policy.unlink()
        files.policy.write_text(saved)  # the file is back, byte for byte
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            raise AssertionError("accessbot serve does not exit on SIGTERM (the FIFO read never returns)") from None
        assert proc.returncode == 0, "".join(out.seen)
