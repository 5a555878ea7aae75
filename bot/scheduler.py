"""The clock: APScheduler wakes sweeps that read what is due from the store.

The scheduler keeps no state of its own; due dates live in the database, so a restarted process
catches up at once and several processes can share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.bootstrap import App
from bot.cron import cron_trigger
from handlers.anchors import anchor_head
from handlers.context import Deps, one_version
from handlers.grants import run_due_ops
from handlers.origin import acting_via
from handlers.policy import Policy
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
POLICY_CHECK_SECONDS = 2  # how soon a saved policy file takes effect under `accessbot serve`
# Seconds, from the start of a stop, a sweep in flight is given to finish: what it recorded is told before the
# channels close. The requests in flight are drained meanwhile (bot/workers.py DRAIN), so this adds nothing to
# the stop; the whole of it stays inside the Bot Framework's 15 s (bot/workers.py GRACE).
SWEEP_GRACE = 8.0
RUNNING_KEY = "running_sweeps"  # app.state: the tasks of the sweeps in flight


async def run_sweep(app: App, name: str) -> None:
    task = asyncio.current_task()
    running: set[asyncio.Task[object]] = app.state.setdefault(RUNNING_KEY, set())
    if task is not None:
        running.add(task)
    try:
        await _sweep(app, name)
    finally:
        running.discard(task)  # type: ignore[arg-type]


async def _sweep(app: App, name: str) -> None:
    from bot.health import SWEEP_SECONDS, record_sweep

    started = time.perf_counter()
    deps = app.deps
    report = SweepReport(as_of=deps.judged_now(), dry_run=False)
    try:
        with acting_via("scheduler"), one_version():  # the whole sweep judges by one policy version
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


def _interval(policy: Policy) -> int:
    return max(1, int(policy.schedule.sweep_interval.total_seconds()))


def apply_schedule(scheduler: AsyncIOScheduler, app: App, old: Policy | None = None) -> None:
    """Add the sweeps the policy in force schedules (``old`` given: change what differs from it)."""
    policy = app.deps.policy
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
    interval = _interval(policy)
    # next_run_time=now: everything overdue while the server was down runs at once.
    now = datetime.now(UTC)
    if old is None or _interval(old) != interval:
        for name, seconds in (("expiry", interval), ("termination", interval), ("reminders", max(interval, 60)),
                              ("reviews", max(interval, 60))):
            scheduler.add_job(run_sweep, "interval", seconds=seconds, args=[app, name], id=name,
                              next_run_time=now, replace_existing=True, **common)
    if old is None or old.schedule.drift_cron != policy.schedule.drift_cron:
        scheduler.add_job(run_sweep, cron_trigger(policy.schedule.drift_cron, "UTC"),  # cron's day numbers
                          args=[app, "drift"], id="drift", replace_existing=True, **common)
    if policy.evidence.enabled and (old is None or not old.evidence.enabled):  # due dates live in the store
        scheduler.add_job(run_sweep, "interval", minutes=15, args=[app, "evidence"], id="evidence",
                          next_run_time=now, replace_existing=True, **common)
    elif not policy.evidence.enabled and scheduler.get_job("evidence") is not None:
        scheduler.remove_job("evidence")


async def check_policy(app: App) -> None:
    """A new policy file in force (bot/policy_watch.py), and its schedule applied to the sweeps."""
    watch = app.state.get("policy_watch")
    if watch is None:
        return
    try:
        change = await watch.check()
    except Exception:
        log.exception("policy file check failed")
        return
    scheduler = _SCHEDULERS.get(id(app))
    if change is not None and scheduler is not None and scheduler.running:
        apply_schedule(scheduler, app, change.old)


def attach_scheduler(web_app: web.Application, app: App) -> None:
    holder: dict[str, AsyncIOScheduler] = {}
    web_app[SCHEDULER_KEY] = holder

    async def start(_: web.Application) -> None:
        scheduler = AsyncIOScheduler(timezone="UTC")
        apply_schedule(scheduler, app)
        if app.state.get("policy_watch") is not None:
            scheduler.add_job(check_policy, "interval", seconds=POLICY_CHECK_SECONDS, args=[app], id="policy",
                              max_instances=1, coalesce=True, misfire_grace_time=None)
        scheduler.start()
        holder["scheduler"] = scheduler
        _SCHEDULERS[id(app)] = scheduler

    stopping: list[float] = []

    async def pause(_: web.Application) -> None:
        """The stop begins (the port is closed): no sweep starts any more; those in flight go on."""
        stopping.append(time.monotonic())
        scheduler = holder.get("scheduler")
        if scheduler is not None and scheduler.running:
            scheduler.pause()

    async def stop(_: web.Application) -> None:
        # A sweep in flight ends its work and tells what it recorded before the channels close (their cleanup
        # comes after this one): cancelled, an expiry or a revocation it had committed would never be told.
        running = [task for task in app.state.get(RUNNING_KEY, ()) if not task.done()]
        if running:
            left = SWEEP_GRACE - (time.monotonic() - stopping[0]) if stopping else SWEEP_GRACE
            _, late = await asyncio.wait(running, timeout=max(0.0, left))
            if late:
                log.warning("sweeps still running at the stop are cancelled", count=len(late))
        scheduler = holder.get("scheduler")
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        _SCHEDULERS.pop(id(app), None)

    web_app.on_startup.append(start)
    web_app.on_shutdown.append(pause)
    web_app.on_cleanup.insert(0, stop)  # ahead of the channels' cleanup, which delivers what is left to tell
