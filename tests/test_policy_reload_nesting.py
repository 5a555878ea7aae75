"""A saved policy whose parsing raised something other than PolicyError (deep nesting) is a refused version.

``PolicyWatch._install`` only catches :class:`PolicyError`. A deeply nested YAML document makes PyYAML's
recursive composer raise ``RecursionError`` (``build_policy`` only turns ``YAMLError`` and
``UnicodeDecodeError`` into problems). Under ``accessbot chat`` that exception escapes ``news()``,
which ``run_console`` calls outside its per-command ``try``: the session ends with a traceback. Under
``serve`` the scheduler job logs it, but ``policy_rejected`` is never set, so ``/healthz`` keeps saying
the file is "in force".
"""

from __future__ import annotations

import os
import subprocess
import sys

from bot.health import health_report
from bot.policy_watch import PolicyWatch
from tests.support import ROOT, copy_examples, harness
from tests.test_policy_reload import ALICE, Lines, _write

NESTED = "version: '2026.12'\nprofiles: " + "[" * 5000 + "]" * 5000 + "\n"


def test_chat_survives_a_deeply_nested_policy_file(sqlite_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    errors = open(tmp_path / "stderr.txt", "w+")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_"))}
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--as", ALICE, "--database-url", sqlite_url,
                             "--policy", str(files.policy), "--directory", str(files.directory)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True,
                            cwd=ROOT, env=clean)
    out = Lines(proc.stdout)
    try:
        proc.stdin.write("profiles\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        out.until("staging-admin")
        _write(files.policy, NESTED)
        proc.stdin.write("profiles\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        try:
            text = out.until("staging-admin", timeout=30)
        except AssertionError:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=30)
            errors.seek(0)
            err = errors.read()
            raise AssertionError(f"chat ended (exit {proc.returncode}) on a saved policy file:\n{err[-600:]}") from None
        assert "cannot be used" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


async def test_serve_reports_a_deeply_nested_policy_file_as_not_used(sqlite_url, tmp_path) -> None:
    async with harness(sqlite_url, tmp_path) as h:
        watch = PolicyWatch(h.app, h.files.policy, wait=True)
        _write(h.files.policy, NESTED)
        try:
            await watch.check()  # bot/scheduler.py::check_policy logs what escapes and goes on
        except RecursionError:
            pass
        answer = await health_report(h.app, {})
        assert answer["checks"]["policy"]["file"] != "in force", (
            f"the saved file cannot be parsed, yet /healthz says {answer['checks']['policy']}")
