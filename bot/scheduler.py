"""The clock: APScheduler wakes sweeps that read what is due from the store.

The scheduler keeps no state of its own; due dates live in the database, so a restarted process
catches up at once and several processes can share one PostgreSQL database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.bootstrap import App
from bot.cron import cron_trigger
from handlers.anchors import anchor_head
from handlers.context import Deps
from handlers.grants import run_due_ops
from handlers.origin import acting_via
from handlers.sweeps import (
    SweepReport,
    detect_drift,
    expire_due,
    forget_seen_events,
    leavers_and_movers,
    remind_pending,
    review_timers,
    start_reviews,
    warn_expiring,
)

log = structlog.get_logger("accessbot.scheduler")


async def run_sweep(app: App, name: str) -> None:
    from bot.health import SWEEP_SECONDS, record_sweep

    started = time.perf_counter()
    deps = app.deps
    report = SweepReport(as_of=deps.judged_now(), dry_run=False)
    try:
        with acting_via("scheduler"):
            await _run(deps, name, report)
            if name == "evidence":
                from bot.evidence_delivery import run_scheduled_evidence

                for line in await run_scheduled_evidence(app):
                    log.info("scheduled evidence", result=line)
        if name == "termination":
            record_sweep(app, name, report)
        await anchor_head(deps, as_of=report.as_of, failed=report.failed)
        for failure in report.failed:
            log.warning("sweep problem", sweep=name, problem=failure)
    except Exception:
        log.exception("sweep failed", sweep=name)
    finally:
        SWEEP_SECONDS.labels(name).observe(time.perf_counter() - started)
    if name == "expiry":
        await _wake_at_next_expiry(app)


async def _run(deps: Deps, name: str, report: SweepReport) -> None:
    if name == "expiry":
        report.repaired = await run_due_ops(deps)
        await expire_due(deps, report)
        await warn_expiring(deps, report)
    elif name == "termination":  # leavers and movers together against the brake, as `accessbot sweep` counts them
        await leavers_and_movers(deps, report)
    elif name == "reminders":
        await remind_pending(deps, report)
        await forget_seen_events(deps)
    elif name == "reviews":  # scheduled campaigns start; open ones remind, escalate and close (SPEC §7)
        await start_reviews(deps, report)
        await review_timers(deps, report)
    elif name == "drift":
        await detect_drift(deps, report)


_SCHEDULERS: dict[int, AsyncIOScheduler] = {}
SCHEDULER_KEY = web.AppKey("scheduler", dict)


async def _wake_at_next_expiry(app: App) -> None:
    """Between interval runs, wake exactly when the next grant expires or a provider retry is due."""
    scheduler = _SCHEDULERS.get(id(app))
    if scheduler is None or not scheduler.running:
        return
    try:
        async with app.store.read() as repo:
            moments = [m for m in (await repo.next_expiry(), await repo.next_op_attempt()) if m is not None]
        due = min(moments) if moments else None
    except Exception:
        log.exception("could not read the next expiry")
        return
    job = scheduler.get_job("expiry")
    if due is None or job is None or job.next_run_time is None or due >= job.next_run_time:
        return
    # never sooner than a moment from now: a sweep that keeps failing must not spin
    run_date = max(due, datetime.now(UTC) + timedelta(seconds=0.5))
    scheduler.add_job(run_sweep, "date", run_date=run_date, args=[app, "expiry"],
                      id="expiry-exact", replace_existing=True, misfire_grace_time=None)


def attach_scheduler(web_app: web.Application, app: App) -> None:
    schedule = app.deps.policy.schedule
    interval = max(1, int(schedule.sweep_interval.total_seconds()))
    holder: dict[str, AsyncIOScheduler] = {}
    web_app[SCHEDULER_KEY] = holder

    async def start(_: web.Application) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        # next_run_time=now: everything overdue while the server was down runs at once.
        now = datetime.now(UTC)
        scheduler.add_job(run_sweep, "interval", seconds=interval, args=[app, "expiry"], id="expiry",
                          next_run_time=now, **common)
        scheduler.add_job(run_sweep, "interval", seconds=interval, args=[app, "termination"], id="termination",
                          next_run_time=now, **common)
        scheduler.add_job(run_sweep, "interval", seconds=max(interval, 60), args=[app, "reminders"],
                          id="reminders", next_run_time=now, **common)
        scheduler.add_job(run_sweep, "interval", seconds=max(interval, 60), args=[app, "reviews"],
                          id="reviews", next_run_time=now, **common)
        scheduler.add_job(run_sweep, cron_trigger(schedule.drift_cron, "UTC"),  # cron's day numbers, not APScheduler's
                          args=[app, "drift"], id="drift", **common)
        if app.deps.policy.evidence.enabled:  # due dates and retries live in the store
            scheduler.add_job(run_sweep, "interval", minutes=15, args=[app, "evidence"], id="evidence",
                              next_run_time=now, **common)
        scheduler.start()
        holder["scheduler"] = scheduler
        _SCHEDULERS[id(app)] = scheduler

    async def stop(_: web.Application) -> None:
        scheduler = holder.get("scheduler")
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        _SCHEDULERS.pop(id(app), None)

    web_app.on_startup.append(start)
    web_app.on_cleanup.append(stop)
