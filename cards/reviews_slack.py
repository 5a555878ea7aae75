"""Slack Block Kit for access reviews: the reviewer's DM with a ``review_open`` button, the modal with a
keep/remove choice per item (paged within a view's 100 blocks), and the App Home lines of open batches."""

from __future__ import annotations

import json
import re
from typing import Any

from cards.slack import _button, _context, _cut, _header, _md, _message, _plain, _section, escape
from handlers.audit import format_ts
from handlers.reviews.links import ReviewLink
from handlers.reviews.views import ReviewBatchView, ReviewItemView

ACTION_REVIEW_OPEN = "review_open"
ACTION_REVIEW_PAGE = "review_page"
REVIEW_MODAL = "review_submit"
COMMENT_BLOCK = "comment"
DECISION_ACTION = "decision"
ITEM_BLOCK = "item-{}"
PAGE_SIZE = 40  # one input block per item; with the header, notes, comment and paging: well under 100
MAX_LABEL = 2000
MAX_HINT = 2000
MAX_HOME_BATCHES = 20
RV_VALUE = re.compile(r"^\s*RV-([0-9]{1,9})\s*$", re.IGNORECASE)
PAGE_VALUE = re.compile(r"^\s*RV-([0-9]{1,9}):([0-9]{1,6})\s*$", re.IGNORECASE)


def parse_review_value(value: Any) -> int | None:
    m = RV_VALUE.match(str(value or ""))
    return int(m.group(1)) if m else None


def parse_page_value(value: Any) -> tuple[int, int] | None:
    m = PAGE_VALUE.match(str(value or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


def batch_message(link: ReviewLink, note: str) -> dict[str, Any]:
    """The DM that asks a reviewer to review their batch."""
    blocks = [_section(escape(note)),
              {"type": "actions", "block_id": "review", "elements": [
                  _button(f"Review {link.items} item(s)", ACTION_REVIEW_OPEN, link.review_id, "primary")]}]
    return _message(note, blocks)


def _label(item: ReviewItemView) -> str:
    who = f"{item.number}. {item.user}" + (" [service account]" if item.service else "")
    return _cut(f"{who} — {item.profile} ({item.group})", MAX_LABEL)


def _hint(item: ReviewItemView) -> str:
    parts = [", ".join(x for x in (item.name if item.name != item.user else "", item.title, item.department) if x),
             f"held via {item.held_via}" + (f" since {item.since}" if item.since else ""),
             f"last sign-in {item.last_sign_in or 'unknown'}",
             f"recommend {item.recommendation}" + (f" ({item.recommendation_reason})"
                                                   if item.recommendation_reason else "")]
    if item.inactive:
        parts.append("NO LONGER ACTIVE")
    if item.decided_by:
        parts.append(f"decided {item.decision} by {item.decided_by}")
    return _cut(" · ".join(p for p in parts if p), MAX_HINT)


def _option(value: str) -> dict[str, Any]:
    return {"text": _plain(value.capitalize(), 75), "value": value}


def _item_block(item: ReviewItemView) -> dict[str, Any]:
    if item.gone:
        return _context(escape(f"{item.number}. {item.user} — {item.profile} ({item.group}): gone, no longer in the "
                               "group; nothing to decide"))
    element: dict[str, Any] = {"type": "radio_buttons", "action_id": DECISION_ACTION,
                               "options": [_option("keep"), _option("remove")]}
    if item.decision in ("keep", "remove"):
        element["initial_option"] = _option(item.decision)
    return {"type": "input", "block_id": ITEM_BLOCK.format(item.number), "optional": True,
            "label": _plain(_label(item), MAX_LABEL), "hint": _plain(_hint(item), MAX_HINT), "element": element}


def pages(view: ReviewBatchView) -> int:
    return max(1, -(-len(view.items) // PAGE_SIZE))


def review_modal(view: ReviewBatchView, page: int = 0) -> dict[str, Any]:
    """One page of a reviewer's batch as a modal; submitting it records the choices made on the page."""
    count = pages(view)
    page = min(max(page, 0), count - 1)
    shown = view.items[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    blocks: list[dict[str, Any]] = [
        _header(f"{view.review_id}: {view.title}"),
        _context(escape(f"Decide by {format_ts(view.due_at)[:16].replace('T', ' ')} UTC · items "
                        f"{page * PAGE_SIZE + 1}-{page * PAGE_SIZE + len(shown)} of {len(view.items)} · "
                        "a choice left empty stays undecided")),
    ]
    if view.notes:
        blocks.append(_section(escape("Live check: " + "; ".join(view.notes))))
    if not view.decidable:
        blocks.append(_section(f"{view.review_id} is {escape(view.state)}: decisions can no longer be changed."))
    blocks += [_item_block(i) for i in shown]
    blocks.append({"type": "input", "block_id": COMMENT_BLOCK, "optional": True,
                   "label": _plain("Reason (required to remove; kept with every choice on this page)"),
                   "element": {"type": "plain_text_input", "action_id": COMMENT_BLOCK, "multiline": True,
                               "max_length": 2000}})
    paging = []
    if page > 0:
        paging.append(_button("Previous page", ACTION_REVIEW_PAGE, f"{view.review_id}:{page - 1}"))
    if page + 1 < count:
        paging.append(_button("Next page", ACTION_REVIEW_PAGE, f"{view.review_id}:{page + 1}"))
    if paging:
        blocks.append({"type": "actions", "block_id": "paging", "elements": paging})
    modal: dict[str, Any] = {
        "type": "modal", "callback_id": REVIEW_MODAL, "title": _plain(f"Review {view.review_id}", 24),
        "close": _plain("Cancel"), "blocks": blocks,
        "private_metadata": json.dumps({"review_id": view.review_id, "page": page, "shown": {  # the decisions it
            # showed: a choice left as shown is not a decision, whatever happened since (see shown_states)
            str(i.number): i.decision if i.decision in ("keep", "remove") else "" for i in shown if not i.gone}}),
    }
    if view.decidable:
        modal["submit"] = _plain("Save")
    return modal


def choices(values: dict[str, Any]) -> tuple[dict[str, list[int]], str | None]:
    """The submitted state: decision → item numbers, and the reason typed.

    Raises :class:`ValueError` naming the problem when a choice is neither keep nor remove, or one item is
    chosen twice (``item-3`` and ``item-03``) in different ways: the page is then not saved at all."""
    chosen_by_item: dict[int, str] = {}
    comment = None
    for block_id, actions in (values or {}).items():
        if block_id == COMMENT_BLOCK:
            typed = _element(actions, COMMENT_BLOCK, "the reason").get("value")
            if typed is not None and not isinstance(typed, str):
                raise ValueError("the reason is not text")
            comment = (typed or "").strip() or None
            continue
        m = re.match(r"^item-([0-9]{1,9})$", str(block_id))
        if not m:
            continue
        number = int(m.group(1))
        selected = _element(actions, DECISION_ACTION, f"item {number}").get("selected_option")
        if selected is None:
            continue  # left unchosen
        chosen = (selected or {}).get("value") if isinstance(selected, dict) else None
        if chosen not in ("keep", "remove"):
            raise ValueError(f"item {number}: {str(chosen)[:40]!r} is neither keep nor remove")
        if chosen_by_item.get(number, chosen) != chosen:
            raise ValueError(f"item {number} is chosen twice, as keep and as remove")
        chosen_by_item[number] = chosen
    by_decision: dict[str, list[int]] = {"keep": [], "remove": []}
    for number, chosen in sorted(chosen_by_item.items()):
        by_decision[chosen].append(number)
    return by_decision, comment


def _element(block: Any, action_id: str, what: str) -> dict[str, Any]:
    """The state of one element of a submitted block (``{}`` when the block does not hold it); a block or element
    that is not an object, as Slack never sends one, raises :class:`ValueError` naming ``what``."""
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ValueError(f"{what} is not understood")
    element = block.get(action_id)
    if element is None:
        return {}
    if not isinstance(element, dict):
        raise ValueError(f"{what} is not understood")
    return element


def home_blocks(links: list[ReviewLink]) -> list[dict[str, Any]]:
    """App Home lines of the batches waiting for the person, each with its ``review_open`` button."""
    if not links:
        return []
    blocks: list[dict[str, Any]] = [_header("Access reviews waiting for you")]
    for link in links[:MAX_HOME_BATCHES]:
        blocks.append({**_md_section(f"*{escape(link.review_id)}* {escape(link.title)}: {link.items} item(s) by "
                                     f"{format_ts(link.due_at)[:10]}"),
                       "accessory": _button("Review", ACTION_REVIEW_OPEN, link.review_id)})
    if len(links) > MAX_HOME_BATCHES:
        blocks.append(_context(f"… and {len(links) - MAX_HOME_BATCHES} more: say `reviews`"))
    return blocks


def _md_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _md(text)}
