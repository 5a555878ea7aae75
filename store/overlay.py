"""The embedded directory's membership overlay, kept in the store."""

from __future__ import annotations

from datetime import UTC, datetime

from store.repository import SqlStore


class StoreOverlay:
    """Implements ``handlers.ports.MembershipOverlay``."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def overlay(self) -> dict[tuple[str, str], bool]:
        async with self.store.read() as repo:
            return await repo.overlay()

    async def overlay_for(self, *, email: str | None = None, group: str | None = None
                          ) -> dict[tuple[str, str], bool]:
        async with self.store.read() as repo:
            return await repo.overlay(email=email, group=group)

    async def set_membership(self, group: str, email: str, present: bool) -> None:
        async with self.store.write() as repo:
            await repo.set_membership(group, email, present, datetime.now(UTC))
