"""Review cards for Slack pass slack_sdk's Block Kit validation at 1, 20 and 200 items: the DM with its
review_open button, every page of the modal, and the App Home lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cards import reviews_slack as cards
from handlers.reviews.links import ReviewLink
from handlers.reviews.views import ReviewBatchView, ReviewItemView
from tests.slack.blockcheck import check_message, check_view

DUE = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


def item(n: int) -> ReviewItemView:
    return ReviewItemView(
        number=n, user=f"user{n}@example.com", name="<!channel> *Name* " + "x" * 300, title="Engineer",
        department="Engineering", profile="prod-db-read", group="directory/sg-prod-db-read",
        held_via="standing" if n % 2 else f"REQ-{n} until 2026-12-01T00:00:00.000Z", since=None,
        last_sign_in="2026-01-02" if n % 3 else None, recommendation="remove" if n % 3 else "keep",
        recommendation_reason="no sign-in for 300 days" if n % 3 else "", decision="keep" if n % 5 == 0 else None,
        decided_by="mark.mgr@example.com" if n % 5 == 0 else None, gone=n % 7 == 0, inactive=n % 11 == 0,
        service=n % 13 == 0)


def mrkdwn(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for v in node.values() for t in mrkdwn(v)]
    if isinstance(node, list):
        return [t for v in node for t in mrkdwn(v)]
    return []


@pytest.mark.parametrize("count", [1, 20, 200])
def test_review_cards_validate(count: int) -> None:
    view = ReviewBatchView("RV-3", "Quarterly privileged access review", "open", DUE,
                           tuple(item(n) for n in range(1, count + 1)), ("item 7: user7 is no longer in the group",))
    link = ReviewLink("RV-3", view.title, count, DUE)
    message = cards.batch_message(link, f"RV-3 (Quarterly): you are asked to review {count} access item(s).")
    check_message(message)
    button = message["blocks"][-1]["elements"][0]
    assert (button["action_id"], button["value"]) == ("review_open", "RV-3")
    seen: list[int] = []
    for page in range(cards.pages(view)):
        modal = cards.review_modal(view, page)
        check_view(modal)
        metadata = json.loads(modal["private_metadata"])
        assert len(modal["private_metadata"]) <= 3000  # Slack's limit
        shown = [int(b["block_id"].split("-")[1]) for b in modal["blocks"] if b["block_id" if "block_id" in b
                                                                                else "type"].startswith("item-")]
        assert metadata == {"review_id": "RV-3", "page": page,
                            "shown": {str(n): "keep" if n % 5 == 0 else "" for n in shown}}
        seen += shown
        assert all("<!channel>" not in t for t in mrkdwn(modal))  # user text cannot mention in mrkdwn
    assert seen == [n for n in range(1, count + 1) if n % 7]  # gone items are shown, not decidable
    assert cards.pages(view) == (count + cards.PAGE_SIZE - 1) // cards.PAGE_SIZE
    home = {"type": "home", "blocks": cards.home_blocks([link] * min(count, 30))}
    check_view(home)


def test_submitted_choices_are_read_per_item() -> None:
    values = {"item-3": {"decision": {"selected_option": {"value": "keep"}}},
              "item-4": {"decision": {"selected_option": {"value": "remove"}}},
              "item-5": {"decision": {"selected_option": None}},
              "item-x": {"decision": {"selected_option": {"value": "remove"}}},
              "comment": {"comment": {"value": " left the team "}}}
    assert cards.choices(values) == ({"keep": [3], "remove": [4]}, "left the team")
