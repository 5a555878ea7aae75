"""Every benchmark still runs, end to end, at a toy size: a benchmark that rotted would otherwise be found only
when someone needs its figures. Nothing here is timed; each run must finish and print its figures and floor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bench(*args: str, timeout: float = 240) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "Microsoft"))}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_hot_path_sqlite() -> None:
    out = bench("bench/bench_hot_path.py", "--clicks", "3", "--no-postgres", "--overlay", "20")
    assert "refresh" in out and "approve" in out and "peak RSS" in out


@pytest.mark.parametrize("mode", [[], ["--secured"]], ids=["emulator", "secured"])
def test_teams_invoke_one_process(mode: list[str]) -> None:
    out = bench("bench/bench_teams_invoke.py", "--concurrency", "4", "--rounds", "1", *mode)
    assert "refresh   p99 ratio /api/messages : bare" in out and "approve   server CPU per invoke" in out
    assert ("tokens validated" in out) == bool(mode)


def test_slack_ack_one_process() -> None:
    out = bench("bench/bench_slack_ack.py", "--concurrency", "4", "--rounds", "1")
    assert "p99" in out and "peak RSS" in out


@pytest.mark.postgres
def test_lifecycle_with_its_floor(pg_url: str, _pg_admin: object) -> None:
    floor = _pg_admin.create()  # type: ignore[attr-defined]
    try:
        floor_url = pg_url.rsplit("/", 1)[0] + "/" + floor
        out = bench("bench/bench_lifecycle.py", "--cycles", "2", "--url", pg_url, "--floor-url", floor_url)
    finally:
        _pg_admin.drop(floor)  # type: ignore[attr-defined]
    assert "PostgreSQL:" in out and "SQLite:" in out and out.count("ratio accessbot : bare") == 2


@pytest.mark.postgres
def test_teams_invoke_two_secured_workers(pg_url: str) -> None:
    out = bench("bench/bench_teams_invoke.py", "--workers", "2", "--secured", "--url", pg_url,
                "--concurrency", "4", "--rounds", "1")
    assert "accessbot serve --workers 2" in out and "tokens validated" in out
    assert "peak RSS per serve worker" in out


@pytest.mark.postgres
def test_slack_ack_two_workers(pg_url: str) -> None:
    out = bench("bench/bench_slack_ack.py", "--workers", "2", "--url", pg_url, "--concurrency", "4", "--rounds", "1")
    assert "p99" in out and "peak RSS per serve worker" in out
