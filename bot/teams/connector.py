"""Outbound calls to the Bot Connector service, retried the way Teams asks, and the activities they carry.

Teams answers 429 when a bot writes too fast, and 412/502/504 on transient trouble; each is
retried with exponential backoff and full jitter, honouring ``Retry-After`` when given (up to
``MAX_RETRY_AFTER``). The SDK's connector client raises ``aiohttp.ClientResponseError`` (``status``,
``headers``) for them. Each try is cut off after ``CALL_TIMEOUT``, so a call's longest time is known
(:func:`worst_call`): the outbox's lease on a notice is computed from it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from microsoft_agents.activity import Activity, ActivityTypes, ConversationReference
from microsoft_agents.hosting.core import CardFactory

log = structlog.get_logger("accessbot.teams.connector")

T = TypeVar("T")
RETRY_STATUSES = frozenset({412, 429, 502, 504})
ATTEMPTS = 5
BASE_DELAY = 0.25
MAX_DELAY = 8.0
MAX_RETRY_AFTER = MAX_DELAY * 4  # a longer Retry-After is waited only this long
CALL_TIMEOUT = 30.0  # one try of a call, the answer read; a call that takes longer fails (and is not retried)


def worst_call(attempts: int = ATTEMPTS) -> float:
    """The longest one call through :func:`with_retries` may take, in seconds: every try timing out, and the
    longest wait between tries (``MAX_RETRY_AFTER`` ≥ the backoff's ``MAX_DELAY``)."""
    return attempts * CALL_TIMEOUT + (attempts - 1) * max(MAX_RETRY_AFTER, MAX_DELAY)


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return int(status) if isinstance(status, int) else None


def retry_after(exc: BaseException) -> float | None:
    headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None) or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(raw))) if raw is not None else None
    except ValueError:
        return None


async def with_retries(call: Callable[[], Awaitable[T]], *, what: str = "connector call",
                       attempts: int = ATTEMPTS, base: float = BASE_DELAY,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> T:
    for attempt in range(1, attempts + 1):
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
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
    return activity.apply_conversation_reference(ConversationReference.model_validate(reference))
