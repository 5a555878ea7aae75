"""Outbound calls to the Bot Connector service, retried the way Teams asks.

Teams answers 429 when a bot writes too fast, and 412/502/504 on transient trouble; each is
retried with exponential backoff and full jitter, honouring ``Retry-After`` when given.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from botbuilder.core import CardFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ConversationReference

log = structlog.get_logger("accessbot.teams.connector")

T = TypeVar("T")
RETRY_STATUSES = frozenset({412, 429, 502, 504})
ATTEMPTS = 5
BASE_DELAY = 0.25
MAX_DELAY = 8.0


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return int(status) if isinstance(status, int) else None


def retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(MAX_DELAY * 4, max(0.0, float(raw))) if raw is not None else None
    except ValueError:
        return None


async def with_retries(call: Callable[[], Awaitable[T]], *, what: str = "connector call",
                       attempts: int = ATTEMPTS, base: float = BASE_DELAY,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except Exception as exc:
            status = status_of(exc)
            if status not in RETRY_STATUSES or attempt == attempts:
                raise
            delay = retry_after(exc)
            if delay is None:
                delay = random.uniform(0, min(MAX_DELAY, base * 2 ** (attempt - 1)))
            log.info("connector busy; retrying", what=what, status=status, attempt=attempt, delay=round(delay, 3))
            await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def card_activity(card: dict[str, Any], *, summary: str | None = None) -> Activity:
    activity = Activity(type=ActivityTypes.message, attachments=[CardFactory.adaptive_card(card)])
    if summary:
        activity.summary = summary[:200]
    return activity


def text_activity(text: str) -> Activity:
    return Activity(type=ActivityTypes.message, text=text, text_format="plain")


def addressed(activity: Activity, reference: dict[str, Any]) -> Activity:
    """The activity with the conversation, bot and user of a stored reference."""
    ref = ConversationReference().deserialize(reference)
    return TurnContext.apply_conversation_reference(activity, ref)


class ConnectorCache:
    """Connector clients reused across turns and notices, per (app id, service URL, audience).

    The SDK builds a new client for every activity, and building one costs milliseconds (its
    retry table alone). Clients are replaced well before the token they carry expires, and a
    replaced client is closed only after calls still using it have had time to finish.
    """

    def __init__(self, *, ttl: float = 240.0, grace: float = 60.0) -> None:
        self.ttl = ttl
        self.grace = grace
        self._items: dict[tuple[str, str, str], tuple[Any, float]] = {}
        self._retired: list[tuple[Any, float]] = []

    async def get(self, key: tuple[str, str, str], create: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        item = self._items.get(key)
        if item is not None and item[1] > now:
            return item[0]
        client = await create()
        if item is not None:
            self._retired.append((item[0], now))
        self._items[key] = (client, now + self.ttl)
        await self._close_retired(now)
        return client

    async def _close_retired(self, now: float) -> None:
        keep = []
        for client, since in self._retired:
            if now - since > self.grace:
                await _close(client)
            else:
                keep.append((client, since))
        self._retired = keep

    def wrap(self, inner: Any, app_id: str | None) -> Any:
        cache = self

        class _Cached:
            async def create(self, service_url: str, audience: str | None = None) -> Any:
                key = (app_id or "", service_url, audience or "")
                return await cache.get(key, lambda: inner.create(service_url, audience))

        return _Cached()

    async def close(self) -> None:
        for client, _ in [*self._items.values(), *self._retired]:
            await _close(client)
        self._items.clear()
        self._retired.clear()


async def _close(client: Any) -> None:
    try:
        await client.close()
    except Exception:  # closing is best effort
        log.debug("connector client close failed")
