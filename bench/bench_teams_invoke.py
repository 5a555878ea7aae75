"""200 concurrent ``adaptiveCard/action`` invokes: time to the invoke response, Teams route vs a bare handler.

Both endpoints live on the same aiohttp server in the same run and do the same domain work:
identify the sender by ``aadObjectId``, run the verb through the service, render the card.
``/api/messages`` adds the Bot Framework layer (activity model, CloudAdapter, turn pipeline,
invoke response); ``/bare`` is a plain aiohttp handler around the same calls. The Bot Connector
(the activities' ``serviceUrl``) is a stub route on the same server. The load comes from a
separate process, so the server's event loop only serves.

Scenarios
    refresh   200 approvers' cards refreshing at once (read path)
    approve   one approver's card clicked 200 times at once: one decision, 199 current states

Besides latency it prints the server process's CPU time per invoke (all its threads), which other
load on a shared machine hardly moves, where it stretches every latency.

    python bench/bench_teams_invoke.py [--concurrency 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from aiohttp import ClientSession, TCPConnector, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.bootstrap import build_app  # noqa: E402
from bot.notify import FanoutNotifier  # noqa: E402
from bot.server import create_web_app, settle_heap  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.teams import TEAMS_KEY  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "teams" / "invoke_adaptive_card_action.json"
MARK_OID = "0a8e3c11-2b2d-4e6f-8a9b-0c1d2e3f4a5b"
BOB_OID = "1b0b0000-0000-4000-8000-00000000b0b1"


def stub_connector(app: web.Application) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": "stub-1"}, status=201)

    app.router.add_route("*", "/stub/v3/conversations{tail:.*}", ok)


def bare_route(app: web.Application, teams_key: Any) -> None:
    """The same domain work without the Bot Framework layer."""

    async def bare(request: web.Request) -> web.Response:
        body = await request.json()
        channel = request.app[teams_key]
        person = await channel.bot.app.deps.directory.find_by_aad_object_id(body["from"]["aadObjectId"])
        action = body["value"]["action"]
        response = await channel.bot.invokes.handle(person, action["verb"], action["data"])
        return web.json_response(response.body, status=response.status)

    async def warm(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app.router.add_post("/bare", bare)
    app.router.add_get("/warm", warm)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _burst(url: str, bodies: list[str]) -> list[float]:
    async with ClientSession(connector=TCPConnector(limit=0)) as http:
        async def one(body: str) -> float:
            started = time.perf_counter()
            async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                payload = await resp.json()
                assert resp.status == 200 and payload["statusCode"] == 200, payload
            return (time.perf_counter() - started) * 1000

        # open every connection first: the burst measures invokes, not TCP handshakes
        async def warm() -> None:
            async with http.get(url[: url.index("/", len("http://"))] + "/warm") as resp:
                await resp.read()

        await asyncio.gather(*(warm() for _ in bodies))
        return list(await asyncio.gather(*(one(b) for b in bodies)))


def burst_in_child(url: str, bodies: list[str]) -> list[float]:
    """Run in the load-generator process: the server's event loop does nothing but serve."""
    return asyncio.run(_burst(url, bodies))


def invoke(base: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    act = json.loads(FIXTURE.read_text())
    act["serviceUrl"] = f"{base}/stub"
    act["value"]["action"] = {"type": "Action.Execute", "verb": verb, "data": data}
    return act


async def run(concurrency: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "directory.yaml"
        shutil.copy(ROOT / "examples" / "directory.yaml", directory)
        data = yaml.safe_load(directory.read_text())
        for user in data["users"]:
            if user["email"] == "mark.mgr@example.com":
                user["aad_object_id"] = MARK_OID
            if user["email"] == "bob@example.com":
                user["aad_object_id"] = BOB_OID
        directory.write_text(yaml.safe_dump(data, sort_keys=False))
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", policy=str(ROOT / "examples/policy.yaml"),
                            directory=str(directory), teams_emulator="1")
        notifier = FanoutNotifier()
        async with build_app(settings, notifier=notifier) as app:
            web_app = create_web_app(app, notifier, scheduler=False)
            stub_connector(web_app)
            bare_route(web_app, TEAMS_KEY)
            runner = web.AppRunner(web_app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            settle_heap()  # as accessbot serve does once it listens
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            results: dict[str, dict[str, list[float]]] = {"refresh": {"teams": [], "bare": []},
                                                          "approve": {"teams": [], "bare": []}}
            cpu: dict[str, dict[str, float]] = {"refresh": {"teams": 0.0, "bare": 0.0},
                                                "approve": {"teams": 0.0, "bare": 0.0}}
            bob = await app.service.identify("bob@example.com")
            assert bob is not None
            loop = asyncio.get_running_loop()
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                n = 0
                for r in range(rounds + 1):  # the first round warms up and is not counted
                    for target in ("teams", "bare") if r % 2 == 0 else ("bare", "teams"):
                        url = f"{base}/api/messages" if target == "teams" else f"{base}/bare"
                        reply = await app.service.handle_text(bob, "request staging-admin for 1h")
                        assert reply.ok and reply.request is not None, reply.text
                        n = reply.request.number
                        body = json.dumps(invoke(base, "refresh", {"request_id": n}))
                        started = time.process_time()
                        refresh = await loop.run_in_executor(pool, burst_in_child, url, [body] * concurrency)
                        refresh_cpu = time.process_time() - started
                        body = json.dumps(invoke(base, "approve", {"request_id": n, "comment": "bench"}))
                        started = time.process_time()
                        approve = await loop.run_in_executor(pool, burst_in_child, url, [body] * concurrency)
                        approve_cpu = time.process_time() - started
                        await app.service.handle_text(bob, f"release REQ-{n}")
                        await web_app[TEAMS_KEY].notifier.idle()
                        if r > 0:
                            results["refresh"][target] += refresh
                            results["approve"][target] += approve
                            cpu["refresh"][target] += refresh_cpu * 1000 / concurrency / rounds
                            cpu["approve"][target] += approve_cpu * 1000 / concurrency / rounds
            await runner.cleanup()
    results["cpu"] = {f"{scenario}:{target}": [ms] for scenario, by in cpu.items() for target, ms in by.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes; only 1 for now: the Teams route is measured in this process")
    args = parser.parse_args()
    if args.workers != 1:
        parser.error(f"--workers {args.workers}: only 1 is measured so far (this benchmark serves the Teams route "
                     "in its own process, beside the Bot Connector stub); use bench_slack_ack.py --workers N")
    results = asyncio.run(run(args.concurrency, args.rounds))
    print(f"{args.concurrency} concurrent adaptiveCard/action invokes, {args.rounds} rounds each, SQLite")
    print(f"{'scenario':<9} {'endpoint':<14} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    cpu = results.pop("cpu")
    for scenario, by in results.items():
        for target, values in by.items():
            name = "/api/messages" if target == "teams" else "bare aiohttp"
            print(f"{scenario:<9} {name:<14} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
                  f"{percentile(values, 99):8.1f} "
                  f"{statistics.fmean(values):8.1f}")
        ratio = percentile(by["teams"], 99) / percentile(by["bare"], 99)
        print(f"{scenario:<9} p99 ratio /api/messages : bare = {ratio:.2f}")
        teams_cpu, bare_cpu = cpu[f"{scenario}:teams"][0], cpu[f"{scenario}:bare"][0]
        print(f"{scenario:<9} server CPU per invoke: /api/messages {teams_cpu:.2f} ms, bare {bare_cpu:.2f} ms, "
              f"ratio {teams_cpu / bare_cpu:.2f}")


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
