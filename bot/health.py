"""``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select, text

from bot.bootstrap import App
from handlers.ports import ProviderError
from store import schema as t

REGISTRY = CollectorRegistry()
SWEEP_SECONDS = Histogram("accessbot_sweep_seconds", "Duration of sweeps", ["sweep"], registry=REGISTRY)
PROVIDER_CALLS = Counter("accessbot_provider_calls_total", "Provider calls by outcome", ["provider", "op", "outcome"],
                         registry=REGISTRY)
RETRIES = Counter("accessbot_provider_retries_total", "Provider calls scheduled for retry", ["provider"],
                  registry=REGISTRY)
REQUESTS = Gauge("accessbot_requests", "Requests by state", ["state"], registry=REGISTRY)
OVERDUE = Gauge("accessbot_oldest_overdue_revocation_seconds", "Age of the oldest unfinished revocation",
                registry=REGISTRY)


async def health_report(app: App, web_app: Any) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    ok = True
    try:
        async with app.store.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
        ok = False
    from bot.scheduler import SCHEDULER_KEY
    from bot.server import CHANNELS_KEY

    scheduler = (web_app.get(SCHEDULER_KEY) or {}).get("scheduler")
    checks["scheduler"] = "running" if scheduler is not None and scheduler.running else "stopped"
    providers = {}
    for name, provider in app.deps.providers.items():
        probe = getattr(provider, "ping", None)
        if probe is None:
            providers[name] = "ok"
            continue
        try:
            await asyncio.wait_for(probe(), timeout=5)
            providers[name] = "ok"
        except ProviderError as exc:  # the provider's own words: a refused key or scope says so
            providers[name] = f"unreachable: {str(exc)[:200]}"
        except Exception as exc:
            providers[name] = f"unreachable: {type(exc).__name__}"
    checks["providers"] = providers
    checks["channels"] = list(web_app.get(CHANNELS_KEY, []))
    return {"status": "ok" if ok else "error", "checks": checks}


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
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe(kind: str, data: dict[str, Any]) -> None:
    """The handlers' metrics hook (``Deps.observe``)."""
    if kind == "provider_call":
        PROVIDER_CALLS.labels(data["provider"], data["op"], data["outcome"]).inc()
        if data.get("retry"):
            RETRIES.labels(data["provider"]).inc()
