"""The last anchor for the overview, read from the anchor file itself (the one place anchors are kept).

Every sweep appends the chain's head to ``ACCESSBOT_ANCHOR_FILE`` (``store/anchors.py``). On each view the
file's last anchor is compared with the chain: a rewrite of anchored history has to recompute every hash
after the rewritten event (or the chain itself stops verifying), which changes the hash at the last
anchored seq; a truncation leaves that seq behind. Every anchor of the file is compared again in the
background every ``FULL_EVERY``, as ``accessbot audit verify --anchors`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from handlers.anchors import Anchored, compare

FULL_EVERY = timedelta(hours=1)


class AnchorReader(Protocol):
    """The anchor file and the chain's hash at a seq (implemented in ``store/anchors.py``)."""

    path: str

    async def latest(self) -> Anchored | None:
        """The file's last anchor (None: no anchor in it); ``FileNotFoundError`` / ``OSError`` as the file
        answers."""
        ...

    async def hash_at(self, seq: int) -> str | None: ...

    async def check_all(self) -> tuple[list[Anchored], list[str]]:
        """Every anchor of the file against the chain: (anchors, problems)."""
        ...


@dataclass(frozen=True)
class AnchorState:
    configured: bool
    path: str = ""
    last: Anchored | None = None  # the file's last anchor
    missing: bool = False  # the file does not exist (yet: the first sweep that records anything writes it)
    error: str = ""  # the file cannot be read
    problems: tuple[str, ...] = ()  # the last anchor, and every anchor at the last full comparison
    events_since: int = 0  # chain events after the last anchor
    full_at: datetime | None = None
    full_count: int = 0  # distinct anchored seqs compared then

    @property
    def matches(self) -> bool | None:
        """The file agrees with the chain (None: nothing to compare yet)."""
        if self.error or self.problems:
            return False
        return None if self.last is None else True


class AnchorWatch:
    def __init__(self, reader: AnchorReader | None) -> None:
        self.reader = reader
        self._full: asyncio.Task[None] | None = None
        self._full_at: datetime | None = None
        self._full_problems: tuple[str, ...] = ()
        self._full_count = 0

    async def _full_check(self, now: datetime) -> None:
        assert self.reader is not None
        anchors, problems = await self.reader.check_all()
        self._full_problems = tuple(problems)
        self._full_count = len({a.seq for a in anchors})
        self._full_at = now

    async def state(self, now: datetime, head_seq: int, *, wait: bool = False) -> AnchorState:
        reader = self.reader
        if reader is None:
            return AnchorState(configured=False)
        if self._full_at is None or now - self._full_at >= FULL_EVERY:
            if self._full is None or self._full.done():
                self._full = asyncio.ensure_future(self._full_check(now))
            if wait or self._full_at is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._full), timeout=None if wait else 0.15)
        full = {"full_at": self._full_at, "full_count": self._full_count}
        # a file that cannot be read says so in full_problems too: keep those apart from a missing file
        earlier = tuple(p for p in self._full_problems if not p.startswith("cannot read the anchor file"))
        try:
            last = await reader.latest()
        except FileNotFoundError:
            return AnchorState(configured=True, path=reader.path, missing=True, problems=earlier, **full)
        except (OSError, ValueError) as exc:
            return AnchorState(configured=True, path=reader.path, error=str(exc), problems=earlier, **full)
        if last is None:
            return AnchorState(configured=True, path=reader.path, problems=earlier, **full)
        current = await reader.hash_at(last.seq)
        now_problems = compare([last], {last.seq: current} if current is not None else {}, head_seq)
        problems = tuple(dict.fromkeys([*now_problems, *earlier]))
        return AnchorState(configured=True, path=reader.path, last=last, problems=problems,
                           events_since=max(0, head_seq - last.seq), **full)
