"""``accessbot serve``: one aiohttp application for Teams, Slack, health and metrics, plus the clock."""

from __future__ import annotations

import asyncio
import gc
import hmac
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from bot.bootstrap import App, build_app
from bot.extensions import optional_modules
from bot.notify import FanoutNotifier
from bot.policy_watch import PolicyWatch
from bot.settings import Settings
from bot.workers import MIGRATION_NOTICE, STILL_MIGRATING, STOPPED_MIGRATING
from store.db import backend

log = structlog.get_logger("accessbot.server")

APP_KEY = web.AppKey("accessbot", App)
CHANNELS_KEY = web.AppKey("channels", list)
# Channel modules: each has ``mount(web_app, app, notifier) -> bool`` (False when not configured).
CHANNELS = ("bot.teams", "bot.slack", "bot.web")


async def healthz(request: web.Request) -> web.Response:
    from bot.health import health_report

    app = request.app[APP_KEY]
    report = await health_report(app, request.app)
    return web.json_response(report, status=200 if report["status"] == "ok" else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text; with ``ACCESSBOT_METRICS_TOKEN`` set, only for ``Authorization: Bearer <token>``
    (Prometheus' ``authorization`` / ``bearer_token_file``), else 401 saying nothing more."""
    from bot.health import render_metrics

    token = request.app[APP_KEY].settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                   f"Bearer {token}".encode("utf-8", "surrogateescape")):
            return web.Response(status=401, text="unauthorized\n",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    body, content_type = await render_metrics(request.app[APP_KEY])
    return web.Response(body=body, headers={"Content-Type": content_type})


def create_web_app(app: App, notifier: FanoutNotifier, *, scheduler: bool = True) -> web.Application:
    from bot.health import observe

    app.deps.observe = observe
    web_app = web.Application(client_max_size=1024 * 1024)
    web_app[APP_KEY] = app
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics)
    mounted = []
    for module in optional_modules(CHANNELS):
        mount: Callable[..., bool] | None = getattr(module, "mount", None)
        if mount is not None and mount(web_app, app, notifier):
            mounted.append(module.__name__.rsplit(".", 1)[-1])
    web_app[CHANNELS_KEY] = mounted
    if scheduler:
        from bot.scheduler import attach_scheduler

        attach_scheduler(web_app, app)
    return web_app


def settle_heap() -> None:
    """Move what start-up built (modules, schemas, the ORM, card models) out of the collector's sight.

    A long-lived server allocates most of its objects once; without this, every full collection
    walks them all again, and a collection in the middle of a burst of clicks holds up every
    acknowledgement behind it (tens of milliseconds on this stack). ``gc.freeze`` is the remedy
    CPython documents for pre-forked and long-lived servers.
    """
    gc.collect()
    gc.freeze()


async def migrate_in_child(settings: Settings) -> None:
    """``accessbot db upgrade`` in a process of its own, for a server on PostgreSQL: the migrations' synchronous
    driver (psycopg) and Alembic would otherwise stay in the serving process for its whole life, about 18 MB of its
    peak RSS that no click uses (``serve --workers N``'s parent, which serves nothing, migrates on a thread of its
    own: bot/workers.py ``migrated``). The URLs go through the environment, never the command line (any local user
    reads a process's arguments). While the migration waits (for the migration lock) a warning says so every
    ``MIGRATION_NOTICE`` seconds; a SIGTERM or SIGINT meanwhile stops it (its transaction rolls back) and the server
    with it."""
    env = {**os.environ, "ACCESSBOT_DATABASE_URL": settings.database_url}
    owner = settings.env.get("ACCESSBOT_DATABASE_OWNER_URL")
    if owner:
        env["ACCESSBOT_DATABASE_OWNER_URL"] = owner
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "db", "upgrade", env=env,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    talking = asyncio.ensure_future(proc.communicate())
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    try:
        loop.add_signal_handler(signal.SIGTERM, stopped.set)  # the server's own handlers come once it serves
        handled = True
    except (RuntimeError, ValueError):  # not the main thread's loop (a server started inside another program)
        handled = False
    stop = asyncio.ensure_future(stopped.wait())
    waited = 0
    # a migration waits for the migration lock (another serve or `accessbot db upgrade` migrating the same
    # database, or a session holding it): said every MIGRATION_NOTICE seconds, so a start that hangs says why
    try:
        while talking not in (done := (await asyncio.wait({talking, stop}, timeout=MIGRATION_NOTICE,
                                                          return_when=asyncio.FIRST_COMPLETED))[0]):
            if stop in done:
                print(STOPPED_MIGRATING, file=sys.stderr, flush=True)
                raise SystemExit(0)
            waited += MIGRATION_NOTICE
            log.warning(STILL_MIGRATING, seconds=waited, pid=proc.pid)
    except BaseException:  # stopped while it waits: the migration is not left running (its transaction rolls back)
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        talking.cancel()
        raise
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)
        stop.cancel()
    _, err = talking.result()
    if proc.returncode != 0:
        said = err.decode("utf-8", "replace").strip().splitlines()
        raise SystemExit(said[-1] if said and said[-1].startswith("accessbot:")
                         else f"accessbot: the database could not be migrated: {said[-1] if said else proc.returncode}")


async def serve(settings: Settings, *, ready: Callable[[int], Any] | None = None,
                worker: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then close gracefully (requests in flight get ``DRAIN`` seconds).

    ``worker``: this process is one of ``serve --workers N`` (bot/workers.py); it shares the port.
    """
    from bot.workers import DRAIN, announce_ready

    migrate = worker is None
    if migrate and backend(settings.database_url) == "postgresql":
        await migrate_in_child(settings)
        migrate = False
    notifier = FanoutNotifier()
    async with build_app(settings, notifier=notifier, migrate=migrate) as app:
        if app.store.backend == "sqlite":
            log.info("sqlite database: run a single accessbot serve process; use PostgreSQL for replicas")
        app.state["worker"] = worker
        app.state["policy_watch"] = PolicyWatch(app, settings.policy)  # a saved policy file takes effect
        web_app = create_web_app(app, notifier)
        runner = web.AppRunner(web_app, access_log=None, shutdown_timeout=DRAIN)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=worker is not None or None)
        await site.start()
        settle_heap()
        port = site._server.sockets[0].getsockname()[1] if site._server else settings.port  # type: ignore[union-attr]
        line = (f"accessbot serving on http://{settings.host}:{port} "
                f"(channels: {', '.join(web_app[CHANNELS_KEY]) or 'none configured'}; "
                f"database: {app.store.backend}; identity: {settings.identity_source})")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        handled = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
            except (RuntimeError, NotImplementedError, ValueError):  # not the main thread, or no such support
                pass
        if worker is None:
            print(line, flush=True)
        else:
            announce_ready(line)
        if ready:
            ready(port)
        try:
            await stop.wait()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            await runner.cleanup()
