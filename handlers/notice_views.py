"""What the outbox (handlers/outbox.py) keeps of a notice's view, to render it again at delivery.

A notice's ``view`` is a handler view-model a channel renders as a card: a drift finding, a paused brake, a
reviewer's batch (an escalation's names the batch and the items it hands over). The outbox stores its fields as
JSON with a ``type`` (never a pickled object), and gives the channels the same view back when it sends the
notice. A request's own view is not stored: the channels read the
request when they send (``request_id``), so a card shows the request as it is then. A reviewer's reminder
keeps what it asks about (``ReviewReminder``), for the outbox to judge whether it still holds; it is sent as text.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from handlers.compliance.views import DriftView, PauseView
from handlers.reviews.links import ReviewLink, ReviewReminder


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
    raise TypeError(f"the outbox cannot keep a notice view of type {type(view).__name__}")


def decode_view(stored: str | None) -> Any:
    """The view ``encode_view`` kept (None for none, or for JSON this version does not know: the text is sent)."""
    if not stored:
        return None
    try:
        data = json.loads(stored)
        kind = data.pop("type")
        if kind == "drift":
            return DriftView(**data)
        if kind == "pause":
            return PauseView(**{**data, "sample": tuple(data.get("sample") or ())})
        if kind == "review":
            return ReviewLink(data["review_id"], data["title"], int(data["items"]),
                              datetime.fromisoformat(data["due_at"]), data.get("reviewer"),
                              tuple(int(n) for n in data.get("waiting") or ()))
        if kind == "review-reminder":
            return ReviewReminder(data["review_id"], data["reviewer"], tuple(int(n) for n in data["waiting"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return None
