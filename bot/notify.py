"""Delivering notices to people on whichever channels know them."""

from __future__ import annotations

from typing import Any

import structlog

from handlers.ports import Notice, Notifier
from store.repository import SqlStore

log = structlog.get_logger("accessbot.notify")


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


async def sent_to(store: SqlStore, channel: str, number: int | None, kind: str, who: str) -> list[dict[str, Any]]:
    """Where the messages of one kind about request or finding ``number`` sent to ``who`` are (to edit them)."""
    if not number:
        return []
    async with store.read() as repo:
        messages = await repo.messages(channel, number, kind)
    return [address for recipient, _, address in messages if recipient.lower() == who]
