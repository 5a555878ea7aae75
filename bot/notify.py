"""Delivering notices to people on whichever channels know them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

import structlog

from handlers.outbox import NO_ADDRESS, NO_CHANNEL, NOTICE_LEASE, Sender
from handlers.ports import Notice, Notifier
from store.repository import SqlStore

log = structlog.get_logger("accessbot.notify")

# While a channel sends one notice for the outbox: the people it found no address for (no DM, no personal chat)
_UNREACHED: ContextVar[list[str] | None] = ContextVar("accessbot_unreached", default=None)


def unreached(email: str) -> None:
    """A channel has no way to reach this person (noted for the notice being sent, if the outbox sends one)."""
    missed = _UNREACHED.get()
    if missed is not None:
        missed.append(email)


class Reach:
    """Around one notice a channel sends for the outbox: ``missed`` once it found no address for someone."""

    def __enter__(self) -> Reach:
        self._people: list[str] = []
        self._token = _UNREACHED.set(self._people)
        return self

    def __exit__(self, *exc: object) -> None:
        _UNREACHED.reset(self._token)

    @property
    def missed(self) -> bool:
        return bool(self._people)


class FanoutNotifier:
    """Hands every notice to each channel notifier; one channel failing does not stop the others."""

    def __init__(self) -> None:
        self.channels: list[Notifier] = []

    def add(self, notifier: Notifier) -> None:
        self.channels.append(notifier)

    async def notify(self, notices: list[Notice]) -> None:
        if not notices:
            return
        for channel in self.channels:
            try:
                await channel.notify(notices)
            except Exception:
                log.exception("notifying failed", channel=type(channel).__name__)

    @property
    def send_budget(self) -> timedelta:
        """The longest :meth:`send` of one notice may take: the channels send one after the other (one that does
        not say counts for the outbox's default, ``NOTICE_LEASE``)."""
        budgets = (getattr(channel, "send_budget", None) for channel in self.channels)
        return sum((b if isinstance(b, timedelta) else NOTICE_LEASE for b in budgets), timedelta(0))

    async def send(self, notices: list[Notice]) -> list[str | None]:
        """Deliver now through every channel (the outbox, handlers/outbox.py): for each notice None when a
        channel sent it, ``NO_ADDRESS`` when no channel has a way to reach the person, ``NO_CHANNEL`` when no
        channel is configured, else what each channel said went wrong. A channel that only offers ``notify`` is
        taken at its word."""
        if not self.channels:  # nothing configured to send with (``accessbot sweep`` on the console's defaults)
            return [NO_CHANNEL] * len(notices)
        errors: list[list[str]] = [[] for _ in notices]
        sent = [False] * len(notices)
        for channel in self.channels:
            name = type(channel).__name__
            try:
                if isinstance(channel, Sender):
                    outcomes = await channel.send(notices)
                else:
                    await channel.notify(notices)
                    outcomes = [None] * len(notices)
            except Exception as exc:
                log.exception("notifying failed", channel=name)
                outcomes = [f"{type(exc).__name__}: {exc}"] * len(notices)
            for i, error in enumerate(outcomes):
                if error is None:
                    sent[i] = True
                else:
                    errors[i].append(f"{name}: {error}")
        return [None if ok else _combined(why) for ok, why in zip(sent, errors, strict=True)]


def _combined(errors: list[str]) -> str:
    """One outcome of the channels' failures: ``NO_ADDRESS`` when none had a way to reach the person."""
    if errors and all(e.endswith(f": {NO_ADDRESS}") for e in errors):
        return NO_ADDRESS
    return "; ".join(errors)


async def sent_to(store: SqlStore, channel: str, number: int | None, kind: str, who: str) -> list[dict[str, Any]]:
    """Where the messages of one kind about request or finding ``number`` sent to ``who`` are (to edit them)."""
    if not number:
        return []
    async with store.read() as repo:
        messages = await repo.messages(channel, number, kind)
    return [address for recipient, _, address in messages if recipient.lower() == who]


CLOSED = "closed"  # the kind of message row that keeps what an ``outcome`` notice said on a person's cards


def closing_notes(rows: list[tuple[str, str, dict[str, Any]]], round_: int) -> dict[str, str]:
    """From a request's message rows (``repo.messages``): what the last ``outcome`` notice of round ``round_`` said
    on each person's approval cards, by email, so that a later redraw of those cards (another notice's refresh)
    keeps saying why the step closed instead of only the request's state."""
    notes: dict[str, str] = {}
    for recipient, kind, address in rows:
        if kind == CLOSED and address.get("round") == round_ and isinstance(address.get("note"), str):
            notes[recipient.lower()] = address["note"]
    return notes


async def send_by_request(notices: list[Notice], lock_for: Callable[[int | None], asyncio.Lock],
                          deliver: Callable[[int | None, list[Notice], dict[int, str | None]], Awaitable[None]],
                          channel: str) -> list[str | None]:
    """A channel's ``send`` for the outbox: the notices of each request delivered together under that request's
    lock (``deliver`` notes what went wrong with the i-th of them); for each notice None when sent, else why not.
    A failure before or after the notices were tried marks every one of them not yet marked."""
    outcome: dict[int, str | None] = {}
    by_request: dict[int | None, list[int]] = defaultdict(list)
    for i, n in enumerate(notices):
        by_request[n.request_id].append(i)
    for request_id, idx in by_request.items():
        mine: dict[int, str | None] = {}
        try:
            async with lock_for(request_id):
                await deliver(request_id, [notices[i] for i in idx], mine)
        except Exception as exc:  # before a notice was tried (the request's view), or after all were
            log.exception(f"{channel} delivery failed", request_id=request_id)
            for j in range(len(idx)):
                mine.setdefault(j, f"{type(exc).__name__}: {exc}")
        outcome.update({idx[j]: error for j, error in mine.items()})
    return [outcome.get(i) for i in range(len(notices))]
