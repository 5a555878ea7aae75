"""200 concurrent signed ``block_actions``: time to the HTTP ack, ``/slack/events`` vs a bare aiohttp handler.

Both endpoints live on the same aiohttp server in the same run, as ``accessbot serve`` mounts
Slack (``process_before_response=False``: ack first, work after). ``/slack/events`` parses the
request for Bolt, checks the click's signature and timestamp, acknowledges, and then has Bolt
dispatch it (its own verification, authorize, listener) and does the work in the background:
identify the clicker, decide through the service, answer on ``response_url`` and update messages
at the stand-in Web API (another thread). ``/bare`` verifies the same signature
and parses the same payload, then answers 200: the floor an ack can reach on this server.

The load comes from a separate process, so the server's event loop only serves. Each round,
one approver's button is clicked 200 times at once (one decision, 199 "already
decided"), so the acks race the background work of the clicks before them.

    python bench/bench_slack_ack.py [--concurrency 200] [--rounds 5] [--workers N [--url postgresql://...]]

``--workers N`` (N > 1) measures ``accessbot serve --workers N`` itself, on PostgreSQL (a throwaway
cluster unless ``--url`` names an empty database): the clicks go to its shared port, and the floor
is N bare aiohttp processes sharing another port the same way (``SO_REUSEPORT``). It also prints when every
click of a round had its answer on ``response_url``: the background work done, from the burst's start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.rss import workers_line  # noqa: E402
from bot.bootstrap import build_app  # noqa: E402
from bot.notify import FanoutNotifier  # noqa: E402
from bot.server import create_web_app, settle_heap  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.slack import SLACK_KEY  # noqa: E402
from tests.slack.conftest import SECRET, sign  # noqa: E402
from tests.standins.slack import SlackWebApi  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "slack" / "block_actions.json"


def bare_route(app: web.Application) -> None:
    verifier = SignatureVerifier(SECRET)

    async def bare(request: web.Request) -> web.Response:
        body = await request.text()
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.json_response({"error": "invalid request"}, status=401)
        json.loads(parse_qs(body)["payload"][0])
        return web.Response(status=200)

    async def warm(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_post("/bare", bare)
    app.router.add_get("/warm", warm)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def clicks(n: int, request_id: int, api_url: str, round_: int) -> list[tuple[str, dict[str, str]]]:
    out = []
    ts = str(int(time.time()))
    for i in range(n):
        payload = json.loads(FIXTURE.read_text())
        payload["actions"][0]["value"] = f"REQ-{request_id}"
        payload["actions"][0]["action_ts"] = f"1763884851.{round_:03d}{i:04d}"
        payload["trigger_id"] = f"{round_}{i}.1763884851.bench"
        payload["response_url"] = f"{api_url}/response/{round_}-{i}"
        body = urlencode({"payload": json.dumps(payload)})
        out.append((body, {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
                           "X-Slack-Signature": sign(body, ts)}))
    return out


def burst_in_child(url: str, requests: list[tuple[str, dict[str, str]]], client: str = "raw") -> list[float]:
    """Run in the load-generator process (bench/load.py): the server's event loop does nothing but serve."""
    return load.burst_in_child(url, [(body.encode(), headers) for body, headers in requests], "ok", client)


async def run(concurrency: int, rounds: int, client: str = "raw") -> dict[str, list[float]]:
    api = SlackWebApi().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "directory.yaml"
            shutil.copy(ROOT / "examples" / "directory.yaml", directory)
            settings = Settings(database_url=f"sqlite:///{tmp}/bench.db",
                                policy=str(ROOT / "examples/policy.yaml"), directory=str(directory),
                                slack_bot_token=SlackWebApi.TOKEN, slack_signing_secret=SECRET,
                                slack_api_url=api.url + "/api/")
            notifier = FanoutNotifier()
            async with build_app(settings, notifier=notifier) as app:
                web_app = create_web_app(app, notifier, scheduler=False)
                bare_route(web_app)
                runner = web.AppRunner(web_app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
                await site.start()
                settle_heap()  # as accessbot serve does once it listens
                base = f"http://127.0.0.1:{runner.addresses[0][1]}"
                results: dict[str, list[float]] = {"slack": [], "bare": []}
                bob = await app.service.identify("bob@example.com")
                assert bob is not None
                loop = asyncio.get_running_loop()
                with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                    for r in range(rounds + 1):  # the first round warms up and is not counted
                        for target in ("slack", "bare") if r % 2 == 0 else ("bare", "slack"):
                            reply = await app.service.handle_text(bob, "request staging-admin for 1h")
                            assert reply.ok and reply.request is not None, reply.text
                            n = reply.request.number
                            await web_app[SLACK_KEY].idle()
                            url = f"{base}/slack/events" if target == "slack" else f"{base}/bare"
                            batch = clicks(concurrency, n, api.url, r * 2 + len(target))
                            times = await loop.run_in_executor(pool, burst_in_child, url, batch, client)
                            await web_app[SLACK_KEY].idle()
                            await app.service.handle_text(bob, f"release REQ-{n}")
                            await app.service.handle_text(bob, f"cancel REQ-{n}")
                            await web_app[SLACK_KEY].idle()
                            if r > 0:
                                results[target] += times
                decided = [e async for e in app.store.audit_events() if e.type == "approval.granted"]
                assert len(decided) in (0, rounds + 1), len(decided)  # one decision per round, whatever the clicks
                await runner.cleanup()
    finally:
        api.stop()
    return results


def bare_worker(port: int, ready: Any) -> None:
    """One process of the floor: the bare route on a port shared with the others."""
    async def main() -> None:
        app = web.Application()
        bare_route(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_port=True).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _serving_port(proc: subprocess.Popen[str]) -> int:
    for _ in range(500):
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            break
        if "accessbot serving on" in line:
            return int(line.split("http://127.0.0.1:", 1)[1].split(" ", 1)[0])
    raise SystemExit(f"accessbot serve did not start (exit {proc.poll()})")


def run_workers(concurrency: int, rounds: int, workers: int, url: str, client: str = "raw") -> dict[str, list[float]]:
    """``accessbot serve --workers N`` on PostgreSQL against N bare processes sharing a port."""
    api = SlackWebApi().start()
    ctx = multiprocessing.get_context("spawn")
    bare_port = _free_reusable_port()
    events = [ctx.Event() for _ in range(workers)]
    bare = [ctx.Process(target=bare_worker, args=(bare_port, e), daemon=True) for e in events]
    serve = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "directory.yaml"
            shutil.copy(ROOT / "examples" / "directory.yaml", directory)
            policy = str(ROOT / "examples/policy.yaml")
            env = {**os.environ, "SLACK_BOT_TOKEN": SlackWebApi.TOKEN, "SLACK_SIGNING_SECRET": SECRET,
                   "SLACK_API_URL": api.url + "/api/"}
            serve = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", str(workers),
                                      "--host", "127.0.0.1", "--port", "0", "--database-url", url,
                                      "--policy", policy, "--directory", str(directory)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
            port = _serving_port(serve)
            threading.Thread(target=lambda: serve.stdout.read(), daemon=True).start()  # type: ignore[union-attr]
            for p in bare:
                p.start()
            for e in events:
                e.wait(120)
            settings = Settings(database_url=url, policy=policy, directory=str(directory))
            return asyncio.run(_drive_workers(settings, api, concurrency, rounds, port, bare_port, client))
    finally:
        if serve is not None:
            print(workers_line(serve.pid))  # while they still run: what each worker held at its peak
            serve.send_signal(signal.SIGTERM)
            serve.wait(30)
        for p in bare:
            p.terminate()
            p.join(10)
        api.stop()


async def _drive_workers(settings: Settings, api: SlackWebApi, concurrency: int, rounds: int, port: int,
                         bare_port: int, client: str = "raw") -> dict[str, list[float]]:
    from sqlalchemy import func, select

    from store import schema as t

    results: dict[str, list[float]] = {"slack": [], "bare": [], "answered": []}
    async with build_app(settings, migrate=False, record_policy=False) as app:
        async def decisions() -> int:
            async with app.store.engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(t.audit_events)
                                               .where(t.audit_events.c.type == "approval.granted"))).scalar() or 0)

        bob = await app.service.identify("bob@example.com")
        assert bob is not None
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            for r in range(rounds + 1):  # the first round warms up and is not counted
                for target in ("slack", "bare") if r % 2 == 0 else ("bare", "slack"):
                    reply = await app.service.handle_text(bob, "request staging-admin for 1h")
                    assert reply.ok and reply.request is not None, reply.text
                    n = reply.request.number
                    before = await decisions()
                    url = (f"http://127.0.0.1:{port}/slack/events" if target == "slack"
                           else f"http://127.0.0.1:{bare_port}/bare")
                    batch = clicks(concurrency, n, api.url, r * 2 + len(target))
                    began = time.monotonic()
                    times = await loop.run_in_executor(pool, burst_in_child, url, batch, client)
                    for _ in range(600 if target == "slack" else 0):  # the decision lands in the background
                        if await decisions() > before:
                            break
                        await asyncio.sleep(0.1)
                    if target == "slack":  # every click answered on its response_url (the work done)
                        prefix = f"{r * 2 + len(target)}-"
                        for _ in range(6000):
                            with api.lock:
                                answered = sum(1 for x in api.responses if str(x.get("rid", "")).startswith(prefix))
                            if answered >= concurrency:
                                break
                            await asyncio.sleep(0.01)
                        if r > 0:
                            results["answered"].append((time.monotonic() - began) * 1000)
                    await app.service.handle_text(bob, f"release REQ-{n}")
                    await app.service.handle_text(bob, f"cancel REQ-{n}")
                    if r > 0:
                        results[target] += times
        assert await decisions() == rounds + 1, "one decision per round, whatever the clicks"
    return results


def _free_reusable_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_database(url: str | None) -> tuple[str, Any]:
    if url is not None:
        return url, None
    import uuid

    import psycopg

    from tests.pgcluster import PgCluster

    cluster = PgCluster()
    base = cluster.start()
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return base.rsplit("/", 1)[0] + "/" + name, cluster


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="N > 1: accessbot serve --workers N on PostgreSQL")
    parser.add_argument("--url", help="with --workers: PostgreSQL URL of an empty database")
    parser.add_argument("--client", choices=load.CLIENTS, default="raw",
                        help="the load generator (bench/load.py): raw sockets, or aiohttp's client to compare with")
    args = parser.parse_args()
    if args.workers > 1:
        url, cluster = _pg_database(args.url)
        try:
            results = run_workers(args.concurrency, args.rounds, args.workers, url, args.client)
        finally:
            if cluster is not None:
                cluster.stop()
        where = f"PostgreSQL, accessbot serve --workers {args.workers} vs {args.workers} bare processes"
    else:
        results = asyncio.run(run(args.concurrency, args.rounds, args.client))
        where = "SQLite, one process"
    print(f"{args.concurrency} concurrent signed block_actions, {args.rounds} rounds each, {where}; "
          f"load generator {args.client} (bench/load.py)")
    print(f"{'endpoint':<14} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    answered = results.pop("answered", [])
    for target, values in results.items():
        name = "/slack/events" if target == "slack" else "bare aiohttp"
        print(f"{name:<14} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} {percentile(values, 99):8.1f} "
              f"{statistics.fmean(values):8.1f}")
    ratio = percentile(results["slack"], 99) / percentile(results["bare"], 99)
    print(f"p99 ratio /slack/events : bare = {ratio:.2f}")
    if answered:  # --workers: the background work, not the ack
        print(f"every click answered on its response_url (a round's work done), ms from the burst's start: "
              f"median {statistics.median(answered):.0f}, worst {max(answered):.0f}")


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
