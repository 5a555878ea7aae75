"""The clock: APScheduler wakes sweeps that read what is due from the store.

The scheduler keeps no state of its own; due dates live in the database, so a restarted process
catches up at once and several processes can share one PostgreSQL database.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.bootstrap import App
from handlers.grants import run_due_ops
from handlers.sweeps import SweepReport, detect_drift, expire_due, remind_pending, terminate_inactive, warn_expiring

log = structlog.get_logger("accessbot.scheduler")


async def run_sweep(app: App, name: str) -> None:
    from bot.health import SWEEP_SECONDS

    started = time.perf_counter()
    deps = app.deps
    report = SweepReport(as_of=deps.now(), dry_run=False)
    try:
        if name == "expiry":
            report.repaired = await run_due_ops(deps)
            await expire_due(deps, report)
            await warn_expiring(deps, report)
        elif name == "termination":
            await terminate_inactive(deps, report)
        elif name == "reminders":
            await remind_pending(deps, report)
        elif name == "drift":
            await detect_drift(deps, report)
    except Exception:
        log.exception("sweep failed", sweep=name)
    finally:
        SWEEP_SECONDS.labels(name).observe(time.perf_counter() - started)


def attach_scheduler(web_app: web.Application, app: App) -> None:
    schedule = app.deps.policy.schedule
    interval = max(1, int(schedule.sweep_interval.total_seconds()))
    holder: dict[str, AsyncIOScheduler] = {}
    web_app["scheduler"] = holder

    async def start(_: web.Application) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        # next_run_time=now: everything overdue while the server was down runs at once.
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        scheduler.add_job(run_sweep, "interval", seconds=interval, args=[app, "expiry"], id="expiry",
                          next_run_time=now, **common)
        scheduler.add_job(run_sweep, "interval", seconds=interval, args=[app, "termination"], id="termination",
                          next_run_time=now, **common)
        scheduler.add_job(run_sweep, "interval", seconds=max(interval, 60), args=[app, "reminders"],
                          id="reminders", next_run_time=now, **common)
        scheduler.add_job(run_sweep, CronTrigger.from_crontab(schedule.drift_cron, timezone="UTC"),
                          args=[app, "drift"], id="drift", **common)
        scheduler.start()
        holder["scheduler"] = scheduler

    async def stop(_: web.Application) -> None:
        scheduler = holder.get("scheduler")
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)

    web_app.on_startup.append(start)
    web_app.on_cleanup.append(stop)
