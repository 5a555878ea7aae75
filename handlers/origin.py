"""Which door an action came through, for the audit record (``data.channel``, ``data.channel_user_id``).

Each channel adapter wraps its call into the service in :func:`acting_via`, naming the channel
and the platform's id of the authenticated sender (Slack user id, Teams ``aadObjectId``; none
for the console). The store stamps every event appended inside that scope with
:func:`stamp` — the events the person's command causes directly and the system steps it sets
off (``approval.requested``, ``grant.provisioned``, …) — so no handler passes it along.

Channels: ``teams``, ``slack``, ``console`` (``accessbot chat``), ``cli`` (every other command,
``accessbot sweep`` included), ``scheduler`` (the timers of ``accessbot serve``). An event with
no ``data.channel`` was recorded by the server itself at start-up (``policy.loaded``, repairs).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

CHANNELS = ("teams", "slack", "console", "cli", "scheduler")


@dataclass(frozen=True)
class Origin:
    channel: str
    user_id: str | None = None  # the platform's id of the sender; None where there is none


_current: ContextVar[Origin | None] = ContextVar("accessbot_origin", default=None)
_appended: ContextVar[list[int] | None] = ContextVar("accessbot_appended", default=None)


@contextmanager
def acting_via(channel: str, user_id: str | None = None) -> Iterator[Origin]:
    """Within this scope (and the tasks it starts), events record ``channel`` and ``user_id``."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    origin = Origin(channel, str(user_id)[:200] if user_id else None)
    token = _current.set(origin)
    try:
        yield origin
    finally:
        _current.reset(token)


def current_origin() -> Origin | None:
    return _current.get()


@contextmanager
def counting_appends() -> Iterator[list[int]]:
    """Within this scope (and the tasks it starts), ``[n]``: the audit events appended so far, committed or not.

    A channel that failed to handle something asks it whether the attempt wrote to the record at all: one that
    appended nothing may be tried again as if it had never come (a Teams re-send), one that did may not."""
    box = [0]
    token = _appended.set(box)
    try:
        yield box
    finally:
        _appended.reset(token)


def stamp(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the current origin added (what a handler set itself is kept); the event is counted by an
    enclosing :func:`counting_appends`."""
    box = _appended.get()
    if box is not None:
        box[0] += 1
    origin = _current.get()
    if origin is None:
        return data
    data.setdefault("channel", origin.channel)
    if origin.user_id:
        data.setdefault("channel_user_id", origin.user_id)
    return data
