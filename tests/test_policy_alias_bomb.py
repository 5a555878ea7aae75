"""YAML tricks in the policy file (SPEC §2.1, §5 ``accessbot policy check``).

An alias "billion laughs" of under 500 bytes: PyYAML's SafeLoader builds it in linear time (aliases
share one object), but the validator's duplicate-key walk (``handlers/policy_check.py:_duplicates``)
visits every aliased node once per path to it, 10**9 times. ``accessbot policy check`` (run in CI on a
proposed policy) and ``accessbot serve`` (start-up) hang instead of naming the problem and exiting 1.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.support import cli


def _bomb(levels: int = 9, where: str = "description") -> str:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    body = "\n".join("      " + line for line in lines)
    return f"""version: "bomb"
approver_groups:
  security: [sam.sec@example.com]
security_team: security
profiles:
  - id: p
    title: P
    owner: sam.sec@example.com
    risk: low
    provider: directory
    group: g
    eligible: [{{department: Engineering}}]
    duration: {{default: 1h, max: 2h}}
    justification: optional
    approval: [{{any_of: security}}]
    {where}:
{body}
"""


def test_policy_check_of_an_alias_bomb_answers_promptly(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_bomb())
    assert len(policy.read_bytes()) < 1024
    started = time.monotonic()
    try:
        result = cli("policy", "check", str(policy), timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`accessbot policy check` on a {len(policy.read_bytes())}-byte policy (a YAML alias "
                             f"bomb) still ran after {time.monotonic() - started:.0f} s") from None
    assert result.returncode == 1, result.stdout + result.stderr


def test_an_alias_bomb_under_a_key_the_policy_does_not_know_answers_promptly(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_bomb(where="notes"))
    result = cli("policy", "check", str(policy), timeout=30)
    assert result.returncode == 1 and "notes" in result.stdout + result.stderr, result.stdout + result.stderr
