"""Block Kit checks: slack_sdk's models plus the limits they do not count.

``Block.parse_all`` drops unknown block types and keys silently, so each block is also compared
with the model's own rendering of it; blocks per message (50) and per modal / home tab (100)
and section text lengths (3,000) are counted here.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from tests.standins.slack import Message, SlackWebApi

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000


def _check_blocks(blocks: list[dict[str, Any]], limit: int) -> None:
    assert isinstance(blocks, list) and 0 < len(blocks) <= limit, len(blocks)
    parsed = Block.parse_all(blocks)
    assert len(parsed) == len(blocks), "a block type slack_sdk does not know"
    for original, model in zip(blocks, parsed, strict=True):
        model.validate_json()
        assert model.to_dict() == original, (original, model.to_dict())
        if original["type"] == "section":
            text = original.get("text") or {}
            assert len(text.get("text", "")) <= MAX_SECTION_TEXT
            fields = original.get("fields") or []
            assert len(fields) <= 10 and all(len(f["text"]) <= MAX_FIELD_TEXT for f in fields)


def check_message(message: dict[str, Any] | Message) -> None:
    if isinstance(message, Message):
        message = {"text": message.text, "blocks": message.blocks}
    assert message.get("text"), "a notification text for clients that cannot show blocks"
    _check_blocks(message["blocks"], MAX_MESSAGE_BLOCKS)


def check_view(view: dict[str, Any]) -> None:
    model = View(**view)
    model.validate_json()
    limit = MAX_VIEW_BLOCKS
    _check_blocks(view["blocks"], limit)
    assert model.to_dict()["type"] == view["type"]


def check_all(api: SlackWebApi) -> int:
    """Every message (and each earlier version), modal, home view and response_url answer; their count."""
    n = 0
    for message in api.all_messages():
        for version in [*message.edits, {"text": message.text, "blocks": message.blocks}]:
            check_message(version)
            n += 1
    for view in api.modals:
        check_view(view)
        n += 1
    for views in api.homes.values():
        for view in views:
            check_view(view)
            n += 1
    for response in api.responses:
        check_message(response)
        n += 1
    return n
