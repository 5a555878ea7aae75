"""The audit chain's state for the overview: verified incrementally, re-verified whole in the background.

Verifying a long chain on every page view would cost seconds; instead the events appended since the
last look are verified on each view (a few, usually none), and the whole chain again every
``FULL_EVERY`` so that a row changed in place long ago is still caught.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from handlers.audit import GENESIS
from handlers.dashboard.anchors import AnchorReader, AnchorState, AnchorWatch
from handlers.dashboard.ports import DashboardSource

FULL_EVERY = timedelta(hours=1)


@dataclass(frozen=True)
class ChainState:
    ok: bool | None  # None: not verified yet (the first full check is running)
    verified_through: int
    head_seq: int
    head_hash: str
    checked_at: datetime | None
    full_at: datetime | None
    bad_seq: int | None = None
    reason: str = ""
    anchor: AnchorState = field(default_factory=lambda: AnchorState(configured=False))  # the anchor file


class ChainWatch:
    def __init__(self, source: DashboardSource, anchors: AnchorReader | None = None) -> None:
        self.source = source
        self.anchors = AnchorWatch(anchors)
        self.seq = 0
        self.hash = GENESIS
        self.bad: tuple[int, str] | None = None
        self.full_at: datetime | None = None
        self.checked_at: datetime | None = None
        self._lock = asyncio.Lock()
        self._full: asyncio.Task[None] | None = None

    async def _full_check(self, now: datetime) -> None:
        result = await self.source.verify_from(1, GENESIS)
        async with self._lock:
            if not result.ok:
                self.bad = (result.bad_seq or 0, result.reason)
            elif result.count >= self.seq:
                self.seq, self.hash, self.bad = result.count, result.head_hash, None
            self.full_at = now

    async def state(self, now: datetime, *, wait: bool = False) -> ChainState:
        """The state as of now; ``wait`` makes a first full check finish before answering."""
        if self.full_at is None or now - self.full_at >= FULL_EVERY:
            if self._full is None or self._full.done():
                self._full = asyncio.ensure_future(self._full_check(now))
            if wait or self.full_at is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._full), timeout=None if wait else 0.15)
        async with self._lock:
            head_seq, head_hash = await self.source.head()
            if self.full_at is not None and self.bad is None and head_seq > self.seq:
                result = await self.source.verify_from(self.seq + 1, self.hash)
                if result.ok:
                    self.seq, self.hash = self.seq + result.count, result.head_hash
                else:
                    self.bad = (result.bad_seq or 0, result.reason)
            self.checked_at = now
            ok = None if self.full_at is None else (self.bad is None and self.seq >= head_seq)
            bad_seq, reason = self.bad if self.bad else (None, "")
            verified_through, full_at = self.seq, self.full_at
        anchor = await self.anchors.state(now, head_seq, wait=wait)
        return ChainState(ok=ok, verified_through=verified_through, head_seq=head_seq, head_hash=head_hash,
                          checked_at=now, full_at=full_at, bad_seq=bad_seq, reason=reason, anchor=anchor)
