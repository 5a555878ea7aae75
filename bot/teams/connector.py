"""Outbound calls to the Bot Connector service, retried the way Teams asks, and the activities they carry.

Every body is written by :func:`wire_json` (compact JSON in UTF-8): the connector clients' HTTP sessions write
with it (bot/teams/clients.py) and :func:`wire_size` measures with it, so what is measured is what is sent.

Teams answers 429 when a bot writes too fast, and 412/502/504 on transient trouble; each is
retried with exponential backoff and full jitter, honouring ``Retry-After`` when given (up to
``MAX_RETRY_AFTER``). The SDK's connector client raises ``aiohttp.ClientResponseError`` (``status``,
``headers``) for them. Each try is cut off after ``CALL_TIMEOUT``, so a call's longest time is known
(:func:`worst_call`): the outbox's lease on a notice is computed from it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pydantic_core
import structlog
from microsoft_agents.activity import Activity, ActivityTypes, ConversationReference
from microsoft_agents.hosting.core import CardFactory

from cards.adaptive import MAX_ACTIVITY_BYTES, size_of

log = structlog.get_logger("accessbot.teams.connector")

T = TypeVar("T")
RETRY_STATUSES = frozenset({412, 429, 502, 504})
ATTEMPTS = 5
BASE_DELAY = 0.25
MAX_DELAY = 8.0
MAX_RETRY_AFTER = MAX_DELAY * 4  # a longer Retry-After is waited only this long
CALL_TIMEOUT = 30.0  # one try of a call, the answer read; a call that takes longer fails (and is not retried)
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
ELLIPSIS = "…"
SIZE_RULE = "activity-size"  # the rule that refuses an activity no shrinking brings within MAX_ACTIVITY_BYTES
REBUILDS = 4  # cards rebuilt for a smaller budget at most, per activity

# A card for a budget: the same card built to stay under ``budget`` bytes as :func:`cards.adaptive.size_of` counts
# them (fewer rows, shorter names); it may raise ValueError when nothing it can show fits.
Rebuild = Callable[[int], dict[str, Any]]


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


class TooLarge(Exception):
    """An activity that stays over :data:`MAX_ACTIVITY_BYTES` however it is shrunk: it is not sent (the
    connector would refuse it) and the send fails, as any undeliverable notice does."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{SIZE_RULE}: the activity is {size} bytes as sent, over the {limit} bytes kept")
        self.size, self.limit = size, limit


def wire_json(body: Any) -> bytes:
    """The bytes a body is sent as to the Bot Connector: compact JSON in UTF-8 (no blanks between items, characters
    past ASCII written as themselves, control characters, quote and backslash escaped as JSON requires), the same
    bytes as ``json.dumps(body, ensure_ascii=False, separators=(",", ":"))`` in UTF-8, written by pydantic's
    serialiser in a quarter of the time. A lone surrogate (half of a UTF-16 pair, which no UTF-8 can carry) is
    written as its ``\\u`` escape, as JSON allows, so the body stays UTF-8 and nothing else of it changes."""
    try:
        return pydantic_core.to_json(body)
    except pydantic_core.PydanticSerializationError:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def wire_text(body: Any) -> str:
    """:func:`wire_json` as text, for an aiohttp session's ``json_serialize`` (every aiohttp since 3.9 takes it and
    writes the text in UTF-8: the same bytes)."""
    return wire_json(body).decode("utf-8")


def wire_size(activity: Activity, *, reply: bool = False) -> int:
    """Bytes of the activity's body as the SDK's connector client sends it: its ``model_dump(by_alias=True,
    exclude_unset=True, mode="json")`` (a reply, ``reply_to_activity``, leaves None fields out too) written by
    :func:`wire_json`, as the connector clients' sessions write every body."""
    dump = activity.model_dump(by_alias=True, exclude_unset=True, exclude_none=reply, mode="json")
    return len(wire_json(dump))


def _wire_len(text: str) -> int:
    return len(wire_json(text)) - 2  # the text's bytes in the body, without its quotes


def cut_wire(text: str, less: int) -> str:
    """``text`` at least ``less`` bytes shorter as :func:`wire_json` writes it: cut on a whole character and ended
    with "…" ("…" alone when no character of it can stay)."""
    keep = _wire_len(text) - less - _wire_len(ELLIPSIS)
    low, high = 0, len(text)  # the longest start of the text whose JSON fits in ``keep``, by halving
    while low < high:
        mid = (low + high + 1) // 2
        if _wire_len(text[:mid]) <= keep:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + ELLIPSIS


def _card_of(activity: Activity) -> dict[str, Any] | None:
    for attachment in activity.attachments or []:
        if attachment.content_type == CARD_TYPE and isinstance(attachment.content, dict):
            return attachment.content
    return None


def fitted(activity: Activity, *, rebuild: Rebuild | None = None, reply: bool = False,
           limit: int = MAX_ACTIVITY_BYTES) -> Activity:
    """The activity, addressed as it will be sent, within ``limit`` bytes as sent (:func:`wire_size`): unchanged
    when it is; else a copy with its summary and then its text cut (on a whole character, with an ellipsis), then
    its card rebuilt for a smaller budget (``rebuild``). :class:`TooLarge` when it still does not fit: a text cut
    to nothing of itself, or a card that cannot be made smaller. ``reply``: sent as a reply (:func:`wire_size`)."""
    size = wire_size(activity, reply=reply)
    if size <= limit:
        return activity
    out = activity.model_copy()
    for name in ("summary", "text"):
        value = getattr(out, name, None)
        if size > limit and isinstance(value, str) and value:
            cut = cut_wire(value, size - limit)
            if name == "text" and cut == ELLIPSIS:  # nothing of the message would be left to read
                raise TooLarge(size, limit)
            setattr(out, name, cut)
            size -= _wire_len(value) - _wire_len(cut)
    card = _card_of(out)
    for _ in range(REBUILDS):
        if size <= limit or rebuild is None or card is None:
            break
        # the card's share of the activity as sent, and the budget that leaves it just the room there is: the card's
        # own measure and the wire may differ by a ratio (escapes) the smaller card keeps about the same
        on_wire = len(wire_json(card))
        room = on_wire - (size - limit)
        try:
            smaller = rebuild(max(0, size_of(card) * room // on_wire) if room > 0 else 0)
        except ValueError:
            break
        if size_of(smaller) >= size_of(card):
            break
        card = smaller
        out.attachments = [CardFactory.adaptive_card(card)]
        size = wire_size(out, reply=reply)
    size = wire_size(out, reply=reply)
    if size > limit:
        raise TooLarge(size, limit)
    return out
