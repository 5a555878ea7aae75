"""The policy's ``safety:`` block is checked by ``policy check`` with line numbers (SPEC §3.6)."""

from __future__ import annotations

from datetime import timedelta

from handlers.policy import load_policy
from tests.support import cli, copy_examples


def test_safety_block_defaults_values_and_errors_with_lines(tmp_path):
    files = copy_examples(tmp_path)
    assert load_policy(files.policy).safety.max_removals == 25
    base = files.policy.read_text()
    files.policy.write_text(base + "\nsafety: {max_removals: 5, unknown_grace: 2h, drift_sla: 3d}\n")
    safety = load_policy(files.policy).safety
    assert (safety.max_removals, safety.unknown_grace, safety.drift_sla) == (5, timedelta(hours=2), timedelta(days=3))
    assert cli("policy", "check", str(files.policy)).returncode == 0

    line = base.count("\n") + 3
    files.policy.write_text(base + "\nsafety:\n  max_removals: lots\n  unknown_grace: soon\n  drift_slaa: 1h\n")
    out = cli("policy", "check", str(files.policy))
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert f"line {line}: safety.max_removals" in text
    assert f"line {line + 1}: safety.unknown_grace" in text
    assert f"line {line + 2}: safety.drift_slaa: unknown key" in text
