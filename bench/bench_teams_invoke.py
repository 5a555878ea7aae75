"""200 concurrent ``adaptiveCard/action`` invokes: time to the invoke response, Teams route vs a bare handler.

Both endpoints live on the same aiohttp server in the same run and do the same domain work:
identify the sender by ``aadObjectId``, run the verb through the service, render the card.
``/api/messages`` adds the Bot Framework layer (activity model, CloudAdapter, turn pipeline,
invoke response); ``/bare`` is a plain aiohttp handler around the same calls. The Bot Connector
(the activities' ``serviceUrl``) is a stub route on the same server. The load comes from a
separate process, so the server's event loop only serves.

Scenarios
    refresh   200 cards of one request refreshing at once (read path): Mark's, or with ``--senders N``, those of
              Mark and N-1 teammates of the security team (who may see every request) in turn, each in their
              personal chat
    approve   one approver's card clicked 200 times at once: one decision, 199 current states

Besides latency it prints the server process's CPU time per invoke (all its threads), which other
load on a shared machine hardly moves, where it stretches every latency. In one process it also
times the same burst against ``/http``, a handler that parses the activity and writes a card-sized
answer with no domain work: what HTTP and the load generator alone cost on this machine.

    python bench/bench_teams_invoke.py [--concurrency 200] [--rounds 5] [--senders N] [--secured]
                                       [--workers N [--url postgresql://...]]

``--secured`` runs the route as in production: the bot has an app id, and every activity carries the
Bot Connector's token, validated against a local OpenID metadata document and its keys (the emulator
mode, the default, validates none). The bare handler validates nothing either way.

``--workers N`` measures ``accessbot serve --workers N`` itself, on PostgreSQL (a throwaway cluster
unless ``--url`` names an empty database), in the emulator mode or, with ``--secured``, validating every
token as in production: the invokes go to its shared port, and the floor is N bare processes sharing
another port the same way (``SO_REUSEPORT``), each a full replica running ``/bare`` beside its own
``/api/messages``. The Bot Connector stub then runs in this process, on its own thread. CPU time is not
measured there (the workers are another process tree).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import load  # noqa: E402
from bench.rss import workers_line  # noqa: E402
from bot.bootstrap import build_app  # noqa: E402
from bot.notify import FanoutNotifier  # noqa: E402
from bot.server import create_web_app, settle_heap  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.teams import TEAMS_KEY  # noqa: E402
from bot.teams.bot import invoke_json  # noqa: E402
from bot.teams.invoke import click_scope  # noqa: E402
from handlers.context import one_lookup_per_person  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "teams" / "invoke_adaptive_card_action.json"
MARK_OID = "0a8e3c11-2b2d-4e6f-8a9b-0c1d2e3f4a5b"
BOB_OID = "1b0b0000-0000-4000-8000-00000000b0b1"


def stub_connector(app: web.Application) -> None:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": "stub-1"}, status=201)

    async def token(request: web.Request) -> web.Response:  # the bot's own token (secured mode)
        await request.read()
        return web.json_response({"token_type": "Bearer", "expires_in": 3600, "access_token": "bench-outbound"})

    app.router.add_route("*", "/stub/v3/conversations{tail:.*}", ok)
    app.router.add_post("/stub/token", token)


def bare_route(app: web.Application, teams_key: Any) -> None:
    """The same domain work without the Bot Framework layer."""

    async def bare(request: web.Request) -> web.Response:
        body = await request.json()
        channel = request.app[teams_key]
        action = body["value"]["action"]
        with click_scope(action["verb"]):  # as the Teams route does
            with one_lookup_per_person():  # the sender identified in a scope, as bot/teams/identity.py does
                person = await channel.bot.app.deps.directory.find_by_aad_object_id(body["from"]["aadObjectId"])
            response = await channel.bot.invokes.handle(person, action["verb"], action["data"])
        # its answer written as the route writes it (bot.teams.bot.invoke_json)
        return web.Response(body=invoke_json(response.body), status=response.status, content_type="application/json",
                            charset="utf-8")

    async def warm(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def http_alone(request: web.Request) -> web.Response:
        """HTTP alone: the activity parsed and a card-sized answer written, no domain work at all."""
        json.loads(await request.read())
        return web.json_response(CANNED)

    app.router.add_post("/bare", bare)
    app.router.add_post("/http", http_alone)
    app.router.add_get("/warm", warm)


CANNED = {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive", "value": {"text": "x" * 3000}}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def burst_in_child(url: str, bodies: list[str], token: str | None = None, client: str = "raw") -> list[float]:
    """Run in the load-generator process (bench/load.py): the server's event loop does nothing but serve."""
    headers = {"Content-Type": "application/json"}
    if token is not None:  # as the Bot Connector sends it: one token with every activity
        headers["Authorization"] = f"Bearer {token}"
    return load.burst_in_child(url, [(body.encode(), headers) for body in bodies], "invoke", client)


def invoke(base: str, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    act = json.loads(FIXTURE.read_text())
    act["serviceUrl"] = f"{base}/stub"
    act["value"]["action"] = {"type": "Action.Execute", "verb": verb, "data": data}
    return act


def clicks(base: str, verb: str, data: dict[str, Any], n: int, senders: int = 1) -> list[str]:
    """``n`` clicks of one card button, each its own activity (Teams gives every click its own id; the route
    answers a repeated id without carrying it out), from Mark and ``senders - 1`` teammates in turn, each in
    their personal chat with the bot."""
    act = invoke(base, verb, data)
    out = []
    for i in range(n):
        click = {**act, "id": f"{act['id']}-{uuid.uuid4().hex}"}
        k = i % senders
        if k:  # a teammate (team_files): their own account and chat
            click["from"] = {"id": f"29:1teammate-{k}", "name": f"Teammate {k}", "aadObjectId": teammate_oid(k)}
            click["conversation"] = {**act["conversation"], "id": f"a:1teammate-{k}-personal"}
        out.append(json.dumps(click))
    return out


def teammate_oid(k: int) -> str:
    return f"5e0d0000-0000-4000-8000-{k:012x}"


def team_files(tmp: str, senders: int) -> tuple[str, Path]:
    """The policy and the directory of the run: the examples, with Mark's and Bob's Teams accounts, and ``senders
    - 1`` teammates, each with one, in the security team (who may see every request: its card refreshes for them)."""
    directory = directory_with_oids(tmp)
    if senders <= 1:
        return str(ROOT / "examples/policy.yaml"), directory
    data = yaml.safe_load(directory.read_text())
    mates = [f"teammate{k}@example.com" for k in range(1, senders)]
    data["users"] += [{"email": email, "name": f"Teammate {k}", "department": "Security", "title": "Engineer",
                       "employment_type": "FTE", "manager": "mark.mgr@example.com", "active": True,
                       "aad_object_id": teammate_oid(k)} for k, email in enumerate(mates, 1)]
    directory.write_text(yaml.safe_dump(data, sort_keys=False))
    policy = yaml.safe_load((ROOT / "examples/policy.yaml").read_text())
    policy["approver_groups"]["security"] = [*policy["approver_groups"]["security"], *mates]
    path = Path(tmp) / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return str(path), directory


APP_ID = "bench-app-id"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the fixture's tenant


async def run(concurrency: int, rounds: int, secured: bool = False,
              client: str = "raw", senders: int = 1) -> dict[str, dict[str, list[float]]]:
    """``secured``: the route as in production, every activity's token validated (keys from a local
    OpenID metadata document, the bot's own token from the stub), instead of the emulator mode."""
    issuer = stub = None
    if secured:
        from tests.teams.standins import OpenIdIssuer

        issuer = OpenIdIssuer().start()
        stub = StubConnector().start()
    with tempfile.TemporaryDirectory() as tmp:
        policy, directory = team_files(tmp, senders)
        if issuer is not None and stub is not None:
            mode: dict[str, Any] = {"app_id": APP_ID, "app_password": "bench", "teams_tenants": TENANT, "env": {
                "ACCESSBOT_TEAMS_OPENID_METADATA_URL": issuer.metadata_url,
                "ACCESSBOT_TEAMS_TOKEN_URL": f"{stub.base}/stub/token"}}
        else:
            mode = {"teams_emulator": "1"}
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", policy=policy, directory=str(directory), **mode)
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
            service = stub.base if stub is not None else base  # the activities' serviceUrl is {service}/stub
            token = (issuer.token(audience=APP_ID, service_url=f"{service}/stub")
                     if issuer is not None else None)
            results: dict[str, dict[str, list[float]]] = {"refresh": {"teams": [], "bare": []},
                                                          "approve": {"teams": [], "bare": []}}
            cpu: dict[str, dict[str, float]] = {"refresh": {"teams": 0.0, "bare": 0.0},
                                                "approve": {"teams": 0.0, "bare": 0.0}}
            http: list[float] = []  # the same burst to a handler without domain work: what HTTP alone costs here
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
                        bodies = clicks(service, "refresh", {"request_id": n}, concurrency, senders)
                        started = time.process_time()
                        refresh = await loop.run_in_executor(pool, burst_in_child, url, bodies, token, client)
                        refresh_cpu = time.process_time() - started
                        bodies = clicks(service, "approve", {"request_id": n, "comment": "bench"}, concurrency)
                        started = time.process_time()
                        approve = await loop.run_in_executor(pool, burst_in_child, url, bodies, token, client)
                        approve_cpu = time.process_time() - started
                        await app.service.handle_text(bob, f"release REQ-{n}")
                        await web_app[TEAMS_KEY].notifier.idle()
                        if r > 0:
                            results["refresh"][target] += refresh
                            results["approve"][target] += approve
                            cpu["refresh"][target] += refresh_cpu * 1000 / concurrency / rounds
                            cpu["approve"][target] += approve_cpu * 1000 / concurrency / rounds
                for r in range(rounds + 1):  # after the rounds: a burst between them moved their tails
                    alone = await loop.run_in_executor(pool, burst_in_child, f"{base}/http", bodies, None, client)
                    if r > 0:
                        http += alone
            await runner.cleanup()
    if stub is not None:
        stub.stop()
    if issuer is not None:
        issuer.stop()
    results["cpu"] = {f"{scenario}:{target}": [ms] for scenario, by in cpu.items() for target, ms in by.items()}
    results["http"] = {"alone": http}
    return results


def directory_with_oids(tmp: str) -> Path:
    directory = Path(tmp) / "directory.yaml"
    shutil.copy(ROOT / "examples" / "directory.yaml", directory)
    data = yaml.safe_load(directory.read_text())
    for user in data["users"]:
        if user["email"] == "mark.mgr@example.com":
            user["aad_object_id"] = MARK_OID
        if user["email"] == "bob@example.com":
            user["aad_object_id"] = BOB_OID
    directory.write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


class StubConnector:
    """The Bot Connector stub on its own thread and loop (the workers are other processes)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.base = ""

    def start(self) -> StubConnector:
        async def up() -> str:
            app = web.Application()
            stub_connector(app)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

        self.thread.start()
        self.base = asyncio.run_coroutine_threadsafe(up(), self.loop).result(30)
        return self

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def bare_worker(port: int, ready: Any, url: str, policy: str, directory: str) -> None:
    """One process of the floor: a full replica with ``/bare`` on a port shared with the others."""
    async def main() -> None:
        settings = Settings(database_url=url, policy=policy, directory=directory, teams_emulator="1")
        notifier = FanoutNotifier()
        async with build_app(settings, notifier=notifier, migrate=False, record_policy=False) as app:
            web_app = create_web_app(app, notifier, scheduler=False)
            bare_route(web_app, TEAMS_KEY)
            runner = web.AppRunner(web_app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_port=True).start()
            settle_heap()
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def run_workers(concurrency: int, rounds: int, workers: int, url: str,
                secured: bool = False, client: str = "raw", senders: int = 1) -> dict[str, dict[str, list[float]]]:
    """``accessbot serve --workers N`` on PostgreSQL against N bare replicas sharing a port.

    ``secured``: the workers validate every activity's token (keys from a local OpenID metadata document, the
    bot's own token from the stub), as in production; the bare replicas do the domain work alone, as always."""
    from bench.bench_slack_ack import _free_reusable_port, _serving_port

    stub = StubConnector().start()
    issuer = None
    token: str | None = None
    if secured:
        from tests.teams.standins import OpenIdIssuer

        issuer = OpenIdIssuer().start()
        token = issuer.token(audience=APP_ID, service_url=f"{stub.base}/stub")
    ctx = multiprocessing.get_context("spawn")
    bare_port = _free_reusable_port()
    events = [ctx.Event() for _ in range(workers)]
    serve = None
    bare: list[Any] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            policy, directory = team_files(tmp, senders)
            env = {**os.environ, "ACCESSBOT_TEAMS_EMULATOR": "1"}
            if issuer is not None:
                env = {**os.environ, "MicrosoftAppId": APP_ID, "MicrosoftAppPassword": "bench",
                       "ACCESSBOT_TEAMS_TENANTS": TENANT, "ACCESSBOT_TEAMS_OPENID_METADATA_URL": issuer.metadata_url,
                       "ACCESSBOT_TEAMS_TOKEN_URL": f"{stub.base}/stub/token"}
                env.pop("ACCESSBOT_TEAMS_EMULATOR", None)
            serve = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--workers", str(workers),
                                      "--host", "127.0.0.1", "--port", "0", "--database-url", url,
                                      "--policy", policy, "--directory", str(directory)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
            port = _serving_port(serve)
            threading.Thread(target=lambda: serve.stdout.read(), daemon=True).start()  # type: ignore[union-attr]
            bare = [ctx.Process(target=bare_worker, args=(bare_port, e, url, policy, str(directory)), daemon=True)
                    for e in events]
            for proc in bare:
                proc.start()
            for e in events:
                e.wait(120)
            settings = Settings(database_url=url, policy=policy, directory=str(directory))
            return asyncio.run(_drive_workers(settings, stub.base, concurrency, rounds, port, bare_port, token, client,
                                              senders))
    finally:
        if serve is not None:
            print(workers_line(serve.pid))  # while they still run: what each worker held at its peak
            serve.send_signal(signal.SIGTERM)
            serve.wait(30)
        for proc in bare:
            proc.terminate()
            proc.join(10)
        stub.stop()
        if issuer is not None:
            issuer.stop()


async def _drive_workers(settings: Settings, stub: str, concurrency: int, rounds: int, port: int,
                         bare_port: int, token: str | None = None,
                         client: str = "raw", senders: int = 1) -> dict[str, dict[str, list[float]]]:
    from sqlalchemy import func, select

    from store import schema as t

    results: dict[str, dict[str, list[float]]] = {"refresh": {"teams": [], "bare": []},
                                                  "approve": {"teams": [], "bare": []}}
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
                for target in ("teams", "bare") if r % 2 == 0 else ("bare", "teams"):
                    url = (f"http://127.0.0.1:{port}/api/messages" if target == "teams"
                           else f"http://127.0.0.1:{bare_port}/bare")
                    reply = await app.service.handle_text(bob, "request staging-admin for 1h")
                    assert reply.ok and reply.request is not None, reply.text
                    n = reply.request.number
                    bodies = clicks(stub, "refresh", {"request_id": n}, concurrency, senders)
                    bearer = token if target == "teams" else None
                    refresh = await loop.run_in_executor(pool, burst_in_child, url, bodies, bearer, client)
                    before = await decisions()
                    bodies = clicks(stub, "approve", {"request_id": n, "comment": "bench"}, concurrency)
                    approve = await loop.run_in_executor(pool, burst_in_child, url, bodies, bearer, client)
                    assert await decisions() == before + 1, "one decision, whatever the clicks and the workers"
                    await app.service.handle_text(bob, f"release REQ-{n}")
                    if r > 0:
                        results["refresh"][target] += refresh
                        results["approve"][target] += approve
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0,
                        help="N: accessbot serve --workers N on PostgreSQL (default: this process, SQLite)")
    parser.add_argument("--url", help="with --workers: PostgreSQL URL of an empty database")
    parser.add_argument("--client", choices=load.CLIENTS, default="raw",
                        help="the load generator (bench/load.py): raw sockets, or aiohttp's client to compare with")
    parser.add_argument("--senders", type=int, default=1,
                        help="the refresh burst comes from Mark and N-1 teammates in turn (default 1: Mark alone)")
    parser.add_argument("--secured", action="store_true",
                        help="every activity's token validated, as in production (not the emulator)")
    args = parser.parse_args()
    if args.workers:
        from bench.bench_slack_ack import _pg_database

        url, cluster = _pg_database(args.url)
        try:
            results = run_workers(args.concurrency, args.rounds, args.workers, url, args.secured, args.client,
                                  args.senders)
        finally:
            if cluster is not None:
                cluster.stop()
        where = (f"PostgreSQL, accessbot serve --workers {args.workers} vs {args.workers} bare replicas, "
                 + ("tokens validated (production mode)" if args.secured else "emulator mode (no tokens)"))
    else:
        results = asyncio.run(run(args.concurrency, args.rounds, args.secured, args.client, args.senders))
        where = "SQLite, one process" + (", tokens validated (production mode)" if args.secured else
                                         ", emulator mode (no tokens)")
    print(f"{args.concurrency} concurrent adaptiveCard/action invokes, {args.rounds} rounds each, {where}; "
          f"refresh from {args.senders} {'person' if args.senders == 1 else 'people'}; "
          f"load generator {args.client} (bench/load.py); load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'scenario':<9} {'endpoint':<14} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    cpu = results.pop("cpu", None)
    http = results.pop("http", None)
    for scenario, by in results.items():
        for target, values in by.items():
            name = "/api/messages" if target == "teams" else "bare aiohttp"
            print(f"{scenario:<9} {name:<14} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
                  f"{percentile(values, 99):8.1f} "
                  f"{statistics.fmean(values):8.1f}")
        ratio = percentile(by["teams"], 99) / percentile(by["bare"], 99)
        print(f"{scenario:<9} p99 ratio /api/messages : bare = {ratio:.2f}")
        if cpu is not None:
            teams_cpu, bare_cpu = cpu[f"{scenario}:teams"][0], cpu[f"{scenario}:bare"][0]
            print(f"{scenario:<9} server CPU per invoke: /api/messages {teams_cpu:.2f} ms, bare {bare_cpu:.2f} ms, "
                  f"ratio {teams_cpu / bare_cpu:.2f}")
    if http is not None:
        values = http["alone"]
        print(f"{'any':<9} {'HTTP alone':<14} {percentile(values, 50):8.1f} {percentile(values, 95):8.1f} "
              f"{percentile(values, 99):8.1f} {statistics.fmean(values):8.1f}   (parse, answer 3 KB, no domain work)")


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
