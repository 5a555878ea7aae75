"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from bot.bootstrap import App
from handlers.audit import format_ts
from handlers.ports import ProviderError
from handlers.sweeps import SweepReport
from store import schema as t

log = structlog.get_logger("accessbot.health")
REGISTRY = CollectorRegistry()
SWEEP_SECONDS = Histogram("accessbot_sweep_seconds", "Duration of sweeps", ["sweep"], registry=REGISTRY)
PROVIDER_CALLS = Counter("accessbot_provider_calls_total", "Provider calls by outcome", ["provider", "op", "outcome"],
                         registry=REGISTRY)
RETRIES = Counter("accessbot_provider_retries_total", "Provider calls scheduled for retry", ["provider"],
                  registry=REGISTRY)
REQUESTS = Gauge("accessbot_requests", "Requests by state", ["state"], registry=REGISTRY)
OVERDUE = Gauge("accessbot_oldest_overdue_revocation_seconds", "Age of the oldest unfinished revocation",
                registry=REGISTRY)
UNCHECKED = Gauge("accessbot_termination_unchecked",
                  "People the last termination sweep could not look up at the identity provider", registry=REGISTRY)
LOOKUP_FAILURES = Counter("accessbot_termination_lookup_failures",
                          "Look-ups of a person that failed during termination sweeps", registry=REGISTRY)
PROVIDER_UP = Gauge("accessbot_provider_up", "1 when the provider's last reachability check passed", ["provider"],
                    registry=REGISTRY)


PROBE_TTL = 30.0  # seconds: at most one reachability check per provider in this window
PROBE_TIMEOUT = 5.0


class ProviderProbes:
    """Each provider's reachability, checked at most once per ``ttl`` seconds whoever asks.

    ``/healthz`` is anonymous: without this, every hit would cost a call to each provider (and
    eat into a rate limit that revocations need). Callers arriving while a check is in flight
    wait for it; a failure is remembered for the window too. What a provider said goes to the
    log, never into the answer.
    """

    def __init__(self, providers: Mapping[str, Any], *, ttl: float = PROBE_TTL,
                 clock: Callable[[], float] = time.monotonic, timeout: float = PROBE_TIMEOUT) -> None:
        self.providers = providers
        self.ttl = ttl
        self.clock = clock
        self.timeout = timeout
        self._results: dict[str, tuple[float, bool]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def status(self) -> dict[str, bool]:
        names = list(self.providers)
        answers = await asyncio.gather(*(self._check(name) for name in names))
        return dict(zip(names, answers, strict=True))

    async def _check(self, name: str) -> bool:
        probe = getattr(self.providers[name], "ping", None)
        if probe is None:
            return True
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            cached = self._results.get(name)
            if cached is not None and self.clock() - cached[0] < self.ttl:
                return cached[1]
            try:
                await asyncio.wait_for(probe(), timeout=self.timeout)
                ok = True
            except ProviderError as exc:  # the provider's own words: a refused key or scope says so
                log.warning("provider check failed", provider=name, error=str(exc)[:500],
                            correlation_id=exc.correlation_id)
                ok = False
            except Exception as exc:
                log.warning("provider check failed", provider=name, error=f"{type(exc).__name__}: {exc}"[:500])
                ok = False
            self._results[name] = (self.clock(), ok)
            PROVIDER_UP.labels(name).set(1 if ok else 0)
            return ok


def probes_for(app: App) -> ProviderProbes:
    probes = app.state.get("probes")
    if probes is None:
        probes = app.state["probes"] = ProviderProbes(app.deps.providers)
    return probes  # type: ignore[no-any-return]


async def health_report(app: App, web_app: Any) -> dict[str, Any]:
    """The anonymous health answer: ``status`` ``error`` (HTTP 503) when a dependency is down."""
    checks: dict[str, Any] = {}
    ok = True
    try:
        async with app.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        log.warning("database check failed", error=f"{type(exc).__name__}: {exc}"[:500])
        checks["database"] = "down"
        ok = False
    from bot.scheduler import SCHEDULER_KEY
    from bot.server import CHANNELS_KEY

    scheduler = (web_app.get(SCHEDULER_KEY) or {}).get("scheduler")
    checks["scheduler"] = "running" if scheduler is not None and scheduler.running else "stopped"
    reachable = await probes_for(app).status()
    checks["providers"] = {name: "ok" if up else "down" for name, up in reachable.items()}
    ok = ok and all(reachable.values())
    checks["channels"] = list(web_app.get(CHANNELS_KEY, []))
    # the version in force; when the file was saved with a version that cannot be used, say so (the
    # problems are in the log: this answer is anonymous)
    checks["policy"] = {"version": app.deps.policy.version,
                        "file": "not used (see the log)" if app.state.get("policy_rejected") else "in force"}
    sweeps = app.state.get("sweeps")
    if sweeps:
        checks["sweeps"] = dict(sweeps)
    answer: dict[str, Any] = {"status": "ok" if ok else "error", "checks": checks}
    if app.state.get("worker") is not None:  # one of ``serve --workers N``: which one answered
        answer["worker"] = {"index": app.state["worker"], "pid": os.getpid()}
    return answer


async def render_metrics(app: App) -> tuple[bytes, str]:
    async with app.store.engine.connect() as conn:
        rows = (await conn.execute(select(t.requests.c.state, func.count()).group_by(t.requests.c.state))).all()
        oldest = (await conn.execute(select(func.min(t.provider_ops.c.created_at))
                                     .where(t.provider_ops.c.op == "remove", t.provider_ops.c.status == "pending")
                                     )).scalar()
    for state in ("pending", "approved", "active", "expired", "released", "revoked", "denied", "cancelled",
                  "failed"):
        REQUESTS.labels(state).set(0)
    for state, count in rows:
        REQUESTS.labels(state).set(count)
    if oldest is not None:
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        OVERDUE.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
    else:
        OVERDUE.set(0)
    body = generate_latest(REGISTRY)
    worker = app.state.get("worker")
    return (body if worker is None else label_worker(body, worker)), CONTENT_TYPE_LATEST


def label_worker(body: bytes, worker: int) -> bytes:
    """Every sample of the exposition text labelled ``worker="N"`` (``serve --workers``: one view per worker)."""
    label = f'worker="{worker}"'
    lines = []
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, brace, rest = line.partition("{")
            if brace:
                line = f"{name}{{{label},{rest}" if not rest.startswith("}") else f"{name}{{{label}{rest}"
            else:
                name, _, value = line.partition(" ")
                line = f"{name}{{{label}}} {value}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()


def record_sweep(app: App, name: str, report: SweepReport) -> None:
    """Keep what a scheduled sweep could not do for ``/healthz`` (counts only) and ``/metrics``."""
    if name == "termination":
        UNCHECKED.set(len(report.unchecked))
        LOOKUP_FAILURES.inc(len(report.unchecked))
        for line in report.unchecked:
            log.warning("termination sweep could not check a person", detail=line)
    app.state.setdefault("sweeps", {})[name] = {"at": format_ts(report.as_of), "unchecked": len(report.unchecked)}


def observe(kind: str, data: dict[str, Any]) -> None:
    """The handlers' metrics hook (``Deps.observe``)."""
    if kind == "provider_call":
        PROVIDER_CALLS.labels(data["provider"], data["op"], data["outcome"]).inc()
        if data.get("retry"):
            RETRIES.labels(data["provider"]).inc()
