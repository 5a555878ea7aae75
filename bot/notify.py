"""Delivering notices to people on whichever channels know them."""

from __future__ import annotations

import structlog

from handlers.ports import Notice, Notifier

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
