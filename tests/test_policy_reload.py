"""A saved policy file takes effect without a restart (`accessbot chat` from its next line, `accessbot
serve` within seconds, every worker), is recorded once (`policy.loaded`), and a version that cannot be
used stays out while the one in force keeps working."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from handlers.context import one_lookup_per_person, one_version
from tests.support import ROOT, Files, cli, copy_examples, harness

ALICE = "alice@example.com"


def _edit_policy(files: Files, version: str, staging_max: str) -> None:
    data = yaml.safe_load(files.policy.read_text())
    data["version"] = version
    for profile in data["profiles"]:
        if profile["id"] == "staging-admin":
            profile["duration"]["max"] = staging_max
    _write(files.policy, yaml.safe_dump(data, sort_keys=False))


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()  # seen even within one mtime tick
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def _broken(files: Files) -> str:
    data = yaml.safe_load(files.policy.read_text())
    for profile in data["profiles"]:
        if profile["id"] == "staging-admin":
            profile["duration"]["max"] = "forever"
    return yaml.safe_dump(data, sort_keys=False)


def _events(db: str) -> list[dict]:
    out = cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


class Lines:
    """A running process's output, read on a thread, waited for by content."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.seen: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in iter(stream.readline, ""):
            self._q.put(line)

    def until(self, text: str, timeout: float = 60) -> str:
        """The lines that came from now up to the first with ``text``."""
        start = len(self.seen)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return "".join(self.seen[start:])
        raise AssertionError(f"{text!r} not seen in:\n{''.join(self.seen)}")


def test_chat_uses_a_saved_policy_from_its_next_line_and_keeps_a_broken_one_out(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_"))}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--as", ALICE, "--database-url", sqlite_url,
                             "--policy", str(files.policy), "--directory", str(files.directory)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=clean)
    out = Lines(proc.stdout)
    try:
        def say(line: str, until: str) -> str:
            proc.stdin.write(line + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            return out.until(until)

        assert "Refused (duration>max)" in say("request staging-admin for 5d because migration", "Refused")
        _edit_policy(files, "2026.12", "7d")
        text = say("request staging-admin for 5d because migration", "Request REQ-1 submitted")
        assert "(policy 2026.12 is now in force; it was 2026.11)" in text, text

        _write(files.policy, _broken(files))
        text = say("status REQ-1", "approval.requested by system")
        assert "the policy file changed but cannot be used; 2026.12 stays in force" in text, text
        assert "forever" in text, "the problem is named"
        # the version in force keeps judging: 7d is still the maximum
        say("cancel REQ-1", "REQ-1 cancelled.")
        say("request staging-admin for 6d because another migration", "Request REQ-2 submitted")
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=60)
    assert proc.returncode in (0, 1)
    events = _events(sqlite_url)
    loaded = [e["data"]["version"] for e in events if e["type"] == "policy.loaded"]
    assert loaded == ["2026.11", "2026.12"], loaded
    submitted = [e["data"] for e in events if e["type"] == "request.submitted"]
    assert [d["policy_version"] for d in submitted] == ["2026.12", "2026.12"], submitted
    verified = cli("audit", "verify", db=sqlite_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _health(base: str) -> dict:
    with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
        return json.loads(r.read())


@contextmanager
def serving(db: str, files: Files, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[str], Lines]]:
    """`accessbot serve` on a free port: its base URL, the process and its output; SIGTERM at the end (the
    caller may have sent it already and checked how it stopped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_"))}
    env["ACCESSBOT_HOST"] = "127.0.0.1"
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", str(workers), "--port", "0",
                             "--database-url", db, "--policy", str(files.policy),
                             "--directory", str(files.directory)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    out = Lines(proc.stdout)
    try:
        line = out.until("accessbot serving on", timeout=120)  # a start behind a busy machine's other tests
        port = int(line.rsplit("http://127.0.0.1:", 1)[1].split(" ", 1)[0].split(")", 1)[0])
        yield f"http://127.0.0.1:{port}", proc, out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_puts_a_saved_policy_in_force_on_every_worker_and_records_it_once(workers, pg_url, sqlite_url,
                                                                                tmp_path) -> None:
    db = pg_url if workers > 1 else sqlite_url
    files = copy_examples(tmp_path)
    with serving(db, files, workers) as (base, proc, out):
        assert _health(base)["checks"]["policy"] == {"version": "2026.11", "file": "in force"}

        def every_worker(expected: dict) -> None:
            answered: dict[object, dict] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                body = _health(base)
                answered[(body.get("worker") or {}).get("index")] = body["checks"]["policy"]
                if len(answered) == workers and all(v == expected for v in answered.values()):
                    return
                time.sleep(0.1)
            raise AssertionError(f"{answered} != {expected}\n{''.join(out.seen)}")

        _edit_policy(files, "2026.12", "7d")
        every_worker({"version": "2026.12", "file": "in force"})
        _write(files.policy, _broken(files))
        every_worker({"version": "2026.12", "file": "not used (see the log)"})
        out.until("cannot be used")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(out.seen)
    loaded = Counter(e["data"]["version"] for e in _events(db) if e["type"] == "policy.loaded")
    assert loaded == {"2026.11": 1, "2026.12": 1}, loaded


async def test_a_command_in_progress_keeps_the_version_it_started_with(sqlite_url, tmp_path) -> None:
    """A version installed while a command (or a sweep) runs is not seen by it half-way."""
    async with harness(sqlite_url, tmp_path) as h:
        deps = h.app.deps
        old = deps.policy
        new = dataclasses.replace(old, version="2026.12")
        seen: list[object] = []
        started, swapped = asyncio.Event(), asyncio.Event()

        async def command() -> None:
            with one_lookup_per_person():
                seen.append(deps.policy)
                started.set()
                await swapped.wait()
                seen.append(deps.policy)
            with one_version():  # the next command (or sweep) reads the new one
                seen.append(deps.policy)

        async def install() -> None:
            await started.wait()
            deps.policy = new
            swapped.set()

        await asyncio.gather(command(), install())
        assert seen == [old, old, new] and deps.policy is new


async def test_a_policy_path_that_is_no_regular_file_is_refused_without_reading_it(sqlite_url, tmp_path) -> None:
    """A FIFO put where the policy was would block a read for ever: refused from its stat, and the version
    in force stays; the original file back puts things as they were."""
    from bot.policy_watch import STATE_KEY, PolicyWatch

    async with harness(sqlite_url, tmp_path) as h:
        watch = PolicyWatch(h.app, h.files.policy, quiet=True, wait=True)
        original = h.files.policy.read_bytes()
        h.files.policy.unlink()
        os.mkfifo(h.files.policy)
        news = await asyncio.wait_for(watch.news(), timeout=10)
        assert news is not None and "not a regular file" in news, news
        assert h.app.deps.policy.version == "2026.11" and h.app.state[STATE_KEY]
        h.files.policy.unlink()
        h.files.policy.write_bytes(original)
        assert await asyncio.wait_for(watch.check(), timeout=10) is None
        assert h.app.state[STATE_KEY] is None, "the version in force is the file's again"


async def test_a_policy_file_any_local_user_may_write_is_not_put_in_force(sqlite_url, tmp_path) -> None:
    """Saved files take effect by themselves within seconds: one that every local user may write (or a folder
    that lets anyone replace it) is refused, as sshd refuses such a config, and the version in force stays."""
    from bot.policy_watch import STATE_KEY, PolicyWatch

    async with harness(sqlite_url, tmp_path) as h:
        watch = PolicyWatch(h.app, h.files.policy, quiet=True, wait=True)
        _edit_policy(h.files, "2026.12", "7d")
        os.chmod(h.files.policy, 0o666)
        news = await watch.news()
        assert news is not None and "writable by every local user" in news, news
        assert h.app.deps.policy.version == "2026.11" and h.app.state[STATE_KEY]
        os.chmod(h.files.policy, 0o644)
        assert (await watch.check()) is not None and h.app.deps.policy.version == "2026.12"
        folder = h.files.policy.parent
        os.chmod(folder, 0o777)
        try:
            _edit_policy(h.files, "2026.13", "7d")
            news = await watch.news()
            assert news is not None and "folder" in news and h.app.deps.policy.version == "2026.12", news
        finally:
            os.chmod(folder, 0o700)
