"""Attack r8b: what the bot leaves readable to another local user of the host.

``accessbot serve --workers N`` starts N worker processes. Process arguments are public on a
Linux host (``/proc/<pid>/cmdline``, ``ps aux``): any local user reads them. The operator gave the
database URL, password included (docs/audit-integrity.md runs the bot with
``ACCESSBOT_DATABASE_URL=postgresql://accessbot_app:…@db/accessbot``), through the environment,
which other users cannot read; SPEC §5: a command never prints the password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, copy_examples

PASSWORD = "Tr0ub4dor-and-3-more"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def _serving_line(proc: subprocess.Popen[str]) -> str:
    for _ in range(400):
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line or "accessbot serving on" in line:
            return line
    return ""


@pytest.mark.postgres
def test_worker_processes_do_not_carry_the_database_password_in_their_arguments(pg_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    scheme, rest = pg_url.split("://", 1)
    user, host = rest.split("@", 1)
    url = f"{scheme}://{user}:{PASSWORD}@{host}"  # the test cluster trusts local connections: any password works
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
    env = {**clean, "ACCESSBOT_DATABASE_URL": url, "ACCESSBOT_HOST": "127.0.0.1",
           "ACCESSBOT_POLICY": str(files.policy), "ACCESSBOT_DIRECTORY": str(files.directory)}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", "2", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    try:
        line = _serving_line(proc)
        assert "with 2 workers" in line, line
        assert PASSWORD not in " ".join(proc.args)  # the operator put it in the environment only
        leaked = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(leaked) < 2:
            for child in _children(proc.pid):
                args = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                leaked[child] = args
            time.sleep(0.2)
        assert leaked, "no worker process found"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out = proc.communicate(timeout=30)[0]
        finally:
            proc.kill()
    assert PASSWORD not in out
    for child, args in leaked.items():
        assert PASSWORD not in args, f"worker {child}'s command line, readable by every local user: {args}"


def test_cli_evidence_pack_is_not_readable_by_other_local_users(sqlite_url, tmp_path) -> None:
    """``accessbot evidence export --out`` writes people's requests, justifications and approvals; the chat
    word ``evidence`` makes its pack 0600 in a 0700 folder (bot/evidence_commands.py private_pack_path), the
    command line leaves it to the umask: 0644 under the usual 022."""
    from tests.support import chat, cli

    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h because deploy the fix", db=sqlite_url, files=files)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    out = tmp_path / "packs" / "q.zip"
    old = os.umask(0o022)
    try:
        r = cli("evidence", "export", "--from", today, "--to", today, "--out", str(out), db=sqlite_url, files=files)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stdout + r.stderr
    mode = out.stat().st_mode & 0o777
    assert mode & 0o077 == 0, f"the pack {out} is mode {mode:o}: every local user can read it"
