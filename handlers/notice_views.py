"""What the outbox (handlers/outbox.py) keeps of a notice's view, to render it again at delivery.

A notice's ``view`` is a handler view-model a channel renders as a card: a drift finding, a paused brake, a
reviewer's batch (an escalation's names the batch and the items it hands over). The outbox stores its fields as
JSON with a ``type`` (never a pickled object), and gives the channels the same view back when it sends the
notice. A request's own view is not stored: the channels read the
request when they send (``request_id``), so a card shows the request as it is then. A reviewer's reminder
keeps what it asks about (``ReviewReminder``), and a sign-off request the step it asks to sign
(``ReviewSignoffAsk``), and an ask to approve an undo the item it is for (``ReviewUndoAsk``), and a notice that a
drift re-add is queued the finding, the op and the grant it is for (``ReaddQueued``), for the outbox to judge whether
it still holds; each is sent as text. A ``ReaddQueued`` is written with its ``type`` first (``READD_PREFIX``): the
security team's lines of the drift sweep that carry one are still taken into one message with the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import datetime
from typing import Any

from handlers.compliance.views import DriftView, PauseView, ReaddQueued
from handlers.reviews.links import ReviewLink, ReviewReminder, ReviewSignoffAsk, ReviewUndoAsk

# how the JSON of a ReaddQueued begins: the outbox's store takes such rows into one message like those with no view
READD_PREFIX = '{"type": "readd-queued"'


def encode_view(view: Any) -> str | None:
    """The JSON kept for ``view`` (None for none); a view the outbox cannot keep is refused (TypeError)."""
    if view is None:
        return None
    if isinstance(view, DriftView):
        return json.dumps({"type": "drift", **asdict(view)}, sort_keys=True)
    if isinstance(view, PauseView):
        return json.dumps({"type": "pause", **asdict(view), "sample": list(view.sample)}, sort_keys=True)
    if isinstance(view, ReviewLink):
        batch = {"reviewer": view.reviewer, "waiting": list(view.waiting)} if view.reviewer is not None else {}
        return json.dumps({"type": "review", "review_id": view.review_id, "title": view.title,
                           "items": view.items, "due_at": view.due_at.isoformat(), **batch}, sort_keys=True)
    if isinstance(view, ReviewReminder):
        return json.dumps({"type": "review-reminder", "review_id": view.review_id, "reviewer": view.reviewer,
                           "waiting": list(view.waiting)}, sort_keys=True)
    if isinstance(view, ReviewSignoffAsk):
        return json.dumps({"type": "review-signoff", "review_id": view.review_id, "step": view.step}, sort_keys=True)
    if isinstance(view, ReviewUndoAsk):
        return json.dumps({"type": "review-undo", "review_id": view.review_id, "item": view.item}, sort_keys=True)
    if isinstance(view, ReaddQueued):  # "type" first, unsorted: READD_PREFIX
        return json.dumps({"type": "readd-queued", "finding": view.finding, "op": view.op, "request": view.request})
    raise TypeError(f"the outbox cannot keep a notice view of type {type(view).__name__}")


def decode_view(stored: str | None) -> Any:
    """The view ``encode_view`` kept (None for none, or for what this version does not know or did not write: a
    view of a later version, a row edited by hand or damaged, each field checked for the type ``encode_view``
    writes; the text is sent). Never raises: one notice's stored view does not keep the others from being sent."""
    if not stored:
        return None
    try:
        return _decoded(json.loads(stored))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
        return None


def _decoded(data: Any) -> Any:
    kind = data.pop("type")
    if kind == "drift":
        view = DriftView(**data)
        ok = (_all(str, view.id, view.provider, view.group, view.user, view.first_seen)
              and _all(bool, view.member, view.escalated) and _all((str, type(None)), view.request_id, view.outcome))
        return view if ok else None
    if kind == "pause":
        sample = data.get("sample") or ()
        if not isinstance(sample, list) or not _all(str, *sample):
            return None
        view = PauseView(**{**data, "sample": tuple(sample)})
        return view if _all(str, view.reason, view.pause) and _all(int, view.count, view.limit) else None
    if kind == "review":
        link = ReviewLink(_review_id(data["review_id"]), data["title"], _number(data["items"]),
                          datetime.fromisoformat(data["due_at"]), data.get("reviewer"), _numbers(data.get("waiting")))
        ok = isinstance(link.title, str) and isinstance(link.reviewer, (str, type(None)))
        return link if ok and link.due_at.tzinfo is not None else None
    if kind == "review-reminder":
        reminder = ReviewReminder(_review_id(data["review_id"]), data["reviewer"], _numbers(data["waiting"]))
        return reminder if isinstance(reminder.reviewer, str) else None
    if kind == "review-signoff":
        return ReviewSignoffAsk(_review_id(data["review_id"]), _number(data["step"]))
    if kind == "review-undo":
        return ReviewUndoAsk(_review_id(data["review_id"]), _number(data["item"]))
    if kind == "readd-queued":
        return ReaddQueued(_number(data["finding"]), _number(data["op"]), _number(data["request"]))
    return None


def _all(kind: type | tuple[type, ...], *values: object) -> bool:
    return all(isinstance(v, kind) for v in values)


def _number(value: object) -> int:
    """A count or an item's number as ``encode_view`` writes it (a JSON integer), else ValueError."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise ValueError(f"not a stored number: {value!r}")
    return value


def _numbers(values: object) -> tuple[int, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ValueError("not a stored list of numbers")
    return tuple(_number(v) for v in values)


def _review_id(value: object) -> str:
    """A campaign's ``RV-n`` as ``encode_view`` writes it (ASCII digits the store's integers hold), else
    ValueError."""
    if not isinstance(value, str) or not re.fullmatch(r"RV-[0-9]{1,9}", value):
        raise ValueError(f"not a stored campaign: {value!r}")
    return value
