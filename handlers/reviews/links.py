"""The link to a reviewer's batch that notices carry (channels render it as a button), and what a reviewer's
reminder or a sign-off request was sent for (kept with it in the outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReviewLink:
    """A campaign a person is asked to review (the DM's button, an App Home line).

    An escalation names the batch it hands over (``reviewer``) and its items undecided then (``waiting``): the
    outbox drops it, unsent, once they are all decided or the campaign is no longer open."""

    review_id: str  # RV-n
    title: str
    items: int
    due_at: datetime
    reviewer: str | None = None
    waiting: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReviewReminder:
    """What a reviewer's reminder asks about: the batch of ``reviewer`` in ``review_id`` and its items undecided
    when it was written. The outbox keeps it with the reminder to drop the reminder, unsent, once they are all
    decided or the campaign is no longer open; the channels are given the reminder's text only."""

    review_id: str  # RV-n
    reviewer: str
    waiting: tuple[int, ...]



@dataclass(frozen=True)
class ReviewSignoffAsk:
    """What a sign-off request asks for: step ``step`` (0-based) of the sign-off of ``review_id``. The outbox keeps
    it with the request to drop it, unsent, once that step is signed or the campaign no longer waits for a
    sign-off; the channels are given the request's text only."""

    review_id: str  # RV-n
    step: int


@dataclass(frozen=True)
class ReviewUndoAsk:
    """What an ask to approve an undo of a review removal asks for: the undo of item ``item`` of ``review_id``.
    The outbox keeps it with the ask to drop it, unsent, once no undo of that item waits for approval (another
    member approved it); the channels are given the ask's text only."""

    review_id: str  # RV-n
    item: int
