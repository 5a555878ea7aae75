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


@pytest.mark.parametrize("mode", [[], ["--secured"], ["--client", "aiohttp"]], ids=["emulator", "secured", "aiohttp"])
def test_teams_invoke_one_process(mode: list[str]) -> None:
    out = bench("bench/bench_teams_invoke.py", "--concurrency", "4", "--rounds", "1", *mode)
    assert "refresh   p99 ratio /api/messages : bare" in out and "approve   server CPU per invoke" in out
    assert ("tokens validated" in out) == ("--secured" in mode)
    assert f"load generator {'aiohttp' if 'aiohttp' in mode else 'raw'}" in out
    assert "HTTP alone" in out


def test_load_generator_reads_every_answer_and_refuses_a_wrong_one() -> None:
    """bench/load.py's raw client: each request on its own connection, answers with a length or chunked, and an
    answer that is not what the benchmark expects stops the burst instead of being timed."""
    import asyncio
    import json

    from aiohttp import web

    from bench.load import burst_in_child, raw_burst

    async def main() -> None:
        seen: list[bytes] = []

        async def invoke(request: web.Request) -> web.StreamResponse:
            seen.append(await request.read())
            if request.query.get("chunked"):
                resp = web.StreamResponse()
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                await resp.write(b'{"statusCode": ')
                await resp.write(b"200}")
                await resp.write_eof()
                return resp
            code = 500 if request.query.get("fail") else 200
            return web.json_response({"statusCode": code})

        async def warm(request: web.Request) -> web.Response:
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/invoke", invoke)
        app.router.add_get("/warm", warm)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            requests = [(json.dumps({"n": i}).encode(), {"Content-Type": "application/json"}) for i in range(20)]
            times = await raw_burst(f"{base}/invoke", requests, "invoke")
            assert len(times) == 20 and all(t > 0 for t in times)
            assert sorted(seen) == sorted(body for body, _ in requests)
            assert len(await raw_burst(f"{base}/invoke?chunked=1", requests[:3], "invoke")) == 3
            with pytest.raises(AssertionError, match="invoke answered 500"):
                await raw_burst(f"{base}/invoke?fail=1", requests[:3], "invoke")
            assert len(await raw_burst(f"{base}/invoke?fail=1", requests[:3], "ok")) == 3  # a 200 is all "ok" asks
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert callable(burst_in_child)


def test_slack_text() -> None:
    out = bench("bench/bench_slack_text.py", "--chars", "3000", "--repeat", "1")
    assert "plain words (floor)" in out and "combining marks" in out and "peak RSS" in out


def test_slack_ack_one_process() -> None:
    out = bench("bench/bench_slack_ack.py", "--concurrency", "4", "--rounds", "1")
    assert "p99" in out and "peak RSS" in out and "load generator raw" in out


@pytest.mark.postgres
def test_lifecycle_with_its_floor(pg_url: str, _pg_admin: object) -> None:
    floor, recorded = _pg_admin.create(), _pg_admin.create()  # type: ignore[attr-defined]
    try:
        floor_url, record_url = (pg_url.rsplit("/", 1)[0] + "/" + name for name in (floor, recorded))
        out = bench("bench/bench_lifecycle.py", "--cycles", "2", "--url", pg_url, "--floor-url", floor_url,
                    "--record-url", record_url)
    finally:
        _pg_admin.drop(floor)  # type: ignore[attr-defined]
        _pg_admin.drop(recorded)  # type: ignore[attr-defined]
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


def test_lifecycle_floor_replays_each_connection_on_its_own(tmp_path: Path) -> None:
    """A command's write transaction can stay open while a read on another pooled connection ends (the pool's
    reset, a ROLLBACK there). The floor replays each connection's statements on a connection of its own, so
    every transaction we committed commits there too; on one connection, those ROLLBACKs would cut our
    transactions short, which the benchmark refuses to call a floor."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from bench import bench_lifecycle as b

    async def scenario() -> None:
        statements: list = []
        await b.run(f"sqlite:///{tmp_path}/ours.db", 5, statements)
        assert len({s[3] for s in statements}) > 1, "the cycles use more than one pooled connection"
        ours_commits = sum(1 for s in statements if s[0] == "COMMIT")
        for name in ("apart", "together"):
            await b.run(f"sqlite:///{tmp_path}/{name}.db", 5, prepare_only=True)
        _, apart, matched = b.replay_sqlite(str(tmp_path / "apart.db"), statements)
        _, together, _ = b.replay_sqlite(str(tmp_path / "together.db"), [(*s[:3], 0, s[4]) for s in statements])
        assert apart == ours_commits
        assert b.matched_differ(statements, matched) is None
        # a ROLLBACK of another connection (a pool reset) replayed on the same one cuts our transactions short;
        # the SQLite store keeps its connections checked out between scopes (no reset), PostgreSQL's pool resets
        last_commit = max(i for i, s in enumerate(statements) if s[0] == "COMMIT")
        resets = [s for s in statements[:last_commit] if s[0] == "ROLLBACK"]
        assert together < ours_commits if resets else together == ours_commits
        assert await b.row_counts(f"sqlite:///{tmp_path}/ours.db") == await b.row_counts(
            f"sqlite:///{tmp_path}/apart.db")

    asyncio.run(scenario())


def test_lifecycle_floor_refuses_a_write_that_matched_other_rows(tmp_path: Path) -> None:
    """An UPDATE replayed on the floor that matches nothing leaves every table's row count as ours: only the
    rows each write matched tell. The recording keeps them (through SQLAlchemy and the driver path alike), and
    a replay whose write matched other rows is no floor."""
    import asyncio

    sys.path.insert(0, str(ROOT))
    from bench import bench_lifecycle as b

    async def scenario() -> None:
        statements: list = []
        await b.run(f"sqlite:///{tmp_path}/ours.db", 3, statements)
        counted = [s for s in statements if s[4] >= 0]
        assert any(s[0].lstrip().upper().startswith("UPDATE") and s[4] > 0 for s in counted)
        assert any(s[0].lstrip().upper().startswith("INSERT") and s[4] > 0 for s in counted)
        await b.run(f"sqlite:///{tmp_path}/same.db", 3, prepare_only=True)
        _, _, matched = b.replay_sqlite(str(tmp_path / "same.db"), statements)
        assert b.matched_differ(statements, matched) is None

        at = next(i for i, s in enumerate(statements)
                  if s[0].lstrip().upper().startswith("UPDATE") and s[4] > 0 and " WHERE " in s[0].upper()
                  and "RETURNING" not in s[0].upper())
        sql, params, many, key, rows = statements[at]
        broken = [*statements[:at], (sql + " AND 0 = 1", params, many, key, rows), *statements[at + 1:]]
        await b.run(f"sqlite:///{tmp_path}/broken.db", 3, prepare_only=True)
        _, commits, matched = b.replay_sqlite(str(tmp_path / "broken.db"), broken)
        assert commits == sum(1 for s in statements if s[0] == "COMMIT")
        assert await b.row_counts(f"sqlite:///{tmp_path}/ours.db") == await b.row_counts(
            f"sqlite:///{tmp_path}/broken.db")
        differ = b.matched_differ(broken, matched)
        assert differ is not None and "1 writes matched other row counts" in differ and f"({rows} vs 0)" in differ

    asyncio.run(scenario())
