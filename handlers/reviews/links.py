"""The link to a reviewer's batch that notices carry (channels render it as a button)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ReviewLink:
    """A campaign a person is asked to review (the DM's button, an App Home line)."""

    review_id: str  # RV-n
    title: str
    items: int
    due_at: datetime
