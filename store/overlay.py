"""The embedded directory's membership overlay, kept in the store."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.shared_reads import SharedReads
from store.repository import SqlStore


class StoreOverlay:
    """Implements ``handlers.ports.MembershipOverlay``.

    The whole overlay is kept in memory with the version the store recorded with its last change
    (``SqlRepository.overlay_version``, which the database itself moves in the transaction of every
    write to the memberships, whoever writes, whatever conflict clause or search path the writer has:
    migrations 0009 and 0010). A look-up scope reads the version, one row, and the overlay again only
    when it moved. The version is read before the overlay and again after it, and the overlay is kept
    only when both reads agree: what is kept is exactly what its version recorded (a database
    restored to an older version finds nothing newer kept under it). A database no change has
    versioned yet (none was made, or it was never migrated to 0009) is read whole every time: the
    read path never writes (it runs inside commands that hold the write lock).
    """

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._kept: tuple[str, dict[tuple[str, str], bool]] | None = None
        self.reads = 0  # whole-overlay reads (tests)
        self._shared = SharedReads()

    async def overlay(self) -> dict[tuple[str, str], bool]:
        """Every membership provisioning changed. The same dict while nothing changed: not to be modified. Read
        once for every look-up asking at the same time, each answered by a read sent after it asked
        (handlers/shared_reads.py): a burst of clicks reads the version a few times, not once a click."""
        return await self._shared.get("overlay", self._overlay)

    async def _overlay(self) -> dict[tuple[str, str], bool]:
        async with self.store.read() as repo:
            version = await repo.overlay_version()
            kept = self._kept
            if version is not None and kept is not None and kept[0] == version:
                return kept[1]
            everyone = await repo.overlay()
            if version is not None and await repo.overlay_version() != version:
                version = None  # a change committed between the two reads: not kept under either version
        self.reads += 1
        self._kept = (version, everyone) if version is not None else None
        return everyone

    async def overlay_for(self, *, email: str | None = None, group: str | None = None
                          ) -> dict[tuple[str, str], bool]:
        async with self.store.read() as repo:
            return await repo.overlay(email=email, group=group)

    async def set_membership(self, group: str, email: str, present: bool) -> None:
        async with self.store.write() as repo:
            await repo.set_membership(group, email, present, datetime.now(UTC))
