"""A short run of the chaos soak (bench/soak.py) on SQLite and PostgreSQL: workers driving the real
command line, a killer, a flickering directory file, and the checks from the outside afterwards.
The long run is ``python bench/soak.py --seconds 300``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.slow
def test_a_short_soak_finds_no_violation(database_url: str) -> None:
    result = subprocess.run([sys.executable, "bench/soak.py", "--seconds", "10", "--workers", "4", "--seed", "7",
                             "--database-url", database_url], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "violations: 0" in result.stdout and "errors (tracebacks, hangs): 0" in result.stdout
    assert "kills: 0" not in result.stdout  # the killer was at work
