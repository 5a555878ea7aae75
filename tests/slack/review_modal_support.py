"""Shared set-up for the Slack review modal tests (not a test module itself)."""

from __future__ import annotations

import json

from tests.reviews.test_start import REVIEW, staff
from tests.slack.conftest import SlackHarness
from tests.slack.test_reviews import submission

MARK, PAT, SAM = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"


async def started(h: SlackHarness) -> None:
    """RV-1 of the example review started by the security team; mark.mgr reviews item 3."""
    staff(h.files)
    await h.command(SAM, f"review start {REVIEW}")
    await h.settle()
    assert "Started RV-1" in h.last_response()["text"]


async def opened(h: SlackHarness, email: str = MARK) -> dict:
    await h.click(email, "review_open", "RV-1")
    await h.settle()
    return h.api.modals[-1]


def with_metadata(payload: dict, raw: str) -> dict:
    payload["view"]["private_metadata"] = raw
    return payload


def items_of(modal: dict) -> list[str]:
    return [b["block_id"] for b in modal["blocks"] if str(b.get("block_id", "")).startswith("item-")]


__all__ = ["MARK", "PAT", "SAM", "items_of", "json", "opened", "started", "submission", "with_metadata"]
