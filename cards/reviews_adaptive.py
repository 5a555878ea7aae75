"""Adaptive Cards 1.5 for access reviews (SPEC §7): one card per page of a reviewer's batch.

Each open item has an ``Input.ChoiceSet`` with id ``item-<k>`` (``keep`` | ``remove``, empty =
undecided), the card one optional ``comment``; ``Action.Execute`` verb :data:`VERB_REVIEW` with
``data.review_id`` (``RV-n``) and ``data.page`` saves the choices, ``data.bulk`` (``keep`` |
``remove``) decides every open item the card showed (``data.items``) at once. The ``refresh`` block (verb ``refresh``,
``data.review_id``) lets the reviewer see the live state whenever the card is shown. Pure
functions: the view-model in, the card dict out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import adaptive_cards.card as ac
from adaptive_cards import types as act

from cards.adaptive import (
    COMMENT_INPUT,
    MAX_CARD_BYTES,
    MAX_REFRESH_USERS,
    VERB_REFRESH,
    _card,
    _cut,
    _execute,
    _markup,
    _text,
    _title,
    escape,
    size_of,
)
from cards.adaptive_elements import element
from handlers.audit import format_ts
from handlers.reviews.views import ReviewBatchView, ReviewItemView
from handlers.text import is_digits

VERB_REVIEW = "review"
ITEM_INPUT = "item-{}"
ITEM_KEY = re.compile(r"^item-([0-9]{1,9})$")
DECISIONS = ("keep", "remove")
SHOWN_KEY = "items"  # a bulk action's data: the item numbers its card showed
STATES_KEY = "shown"  # every action's data: item number → the decision its card showed ("" undecided)
PAGE_SIZE = 20  # items per card: 20 items with long names, titles and departments stay under 28 KB
RV_VALUE = re.compile(r"^\s*(?:RV-)?([0-9]{1,9})\s*$", re.IGNORECASE)
FIELD_LIMITS = (160, 60, 24, 8)  # characters of one item's name, title, department or group shown: the first
# limit whose card fits in 28 KB (text full of Markdown characters grows threefold: escaped, then JSON)


def parse_review_id(value: Any) -> int | None:
    """``RV-n`` (or n) → n; anything else → None."""
    if isinstance(value, bool):
        return None
    m = RV_VALUE.match(str(value)) if isinstance(value, str | int) else None
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def parse_page(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return min(max(value, 0), 10**6)
    if isinstance(value, str) and is_digits(value.strip()) and len(value.strip()) < 7:
        return int(value.strip())
    return 0


def pages(view: ReviewBatchView) -> int:
    return max(1, -(-len(view.items) // PAGE_SIZE))


def page_items(view: ReviewBatchView, page: int) -> tuple[ReviewItemView, ...]:
    page = min(max(page, 0), pages(view) - 1)
    return view.items[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]


def review_refresh(review_id: str, page: int, user_ids: Sequence[str]) -> dict[str, Any] | None:
    ids = [u for u in dict.fromkeys(user_ids) if u][:MAX_REFRESH_USERS]
    if not ids:
        return None
    return {"action": {"type": "Action.Execute", "verb": VERB_REFRESH, "title": "Refresh",
                       "data": {"review_id": review_id, "page": page}}, "userIds": ids}


def _who(item: ReviewItemView, limit: int) -> str:
    parts = [item.name if item.name and item.name != item.user else "", item.title or "", item.department or ""]
    return ", ".join(_cut(p, limit) for p in parts if p)


def _details(item: ReviewItemView, limit: int) -> str:
    held = f"held via {_cut(item.held_via, limit)}" + (f" since {_cut(item.since, 20)}" if item.since else "")
    advice = f"recommend {item.recommendation}" + (f" ({_cut(item.recommendation_reason, limit)})"
                                                    if item.recommendation_reason else "")
    parts = [_who(item, limit), held, f"last sign-in {_cut(item.last_sign_in, 20) or 'unknown'}", advice]
    if item.inactive:
        parts.append("NO LONGER ACTIVE")
    if item.decided_by:
        parts.append(f"decided {item.decision} by {_cut(item.decided_by, max(limit, 40))}")
    return " · ".join(p for p in parts if p)


def _item(item: ReviewItemView, *, decidable: bool, chosen: str | None, limit: int) -> list[Any]:
    service = " \\[service account\\]" if item.service else ""
    head = (f"**{item.number}. {escape(_cut(item.user, limit))}**{service} — {escape(_cut(item.profile, limit))} "
            f"({escape(_cut(item.group, limit))})")
    rows: list[Any] = [_markup(head, spacing=act.Spacing.MEDIUM, separator=True),
                       _text(_details(item, limit), is_subtle=True, spacing=act.Spacing.NONE)]
    if item.gone:
        rows.append(_text("Gone: no longer in the group; nothing to decide.", color=act.Colors.WARNING,
                          spacing=act.Spacing.NONE))
    elif decidable:
        value = chosen if chosen in DECISIONS else item.decision if item.decision in DECISIONS else None
        rows.append(element(ac.InputChoiceSet,
            id=ITEM_INPUT.format(item.number), label=f"Item {item.number}", style=act.ChoiceInputStyle.EXPANDED,
            choices=[element(ac.InputChoice, title="Keep", value="keep"),
                     element(ac.InputChoice, title="Remove", value="remove")],
            value=value, spacing=act.Spacing.SMALL))
    return rows


def review_card(view: ReviewBatchView, *, page: int = 0, refresh_user_ids: Sequence[str] = (),
                note: str | None = None, attention: bool = False, choices: Mapping[int, str] | None = None,
                comment: str | None = None, ask_reason: bool = False, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """One page of ``view`` as a card; ``choices`` and ``comment`` show what was typed but not saved. Names and
    titles are cut to the first of :data:`FIELD_LIMITS` that keeps the card under ``budget`` bytes
    (:func:`size_of`); ValueError when none does."""
    card: dict[str, Any] = {}
    for limit in FIELD_LIMITS:
        card = _review_card(view, page, refresh_user_ids, note, attention, choices, comment, ask_reason, limit)
        if size_of(card) < budget:
            return card
    raise ValueError(f"review card of {view.review_id} page {page} is {size_of(card)} bytes")  # never at 8 chars


def _review_card(view: ReviewBatchView, page: int, refresh_user_ids: Sequence[str], note: str | None,
                 attention: bool, choices: Mapping[int, str] | None, comment: str | None, ask_reason: bool,
                 limit: int) -> dict[str, Any]:
    count = pages(view)
    page = min(max(page, 0), count - 1)
    shown = page_items(view, page)
    first = page * PAGE_SIZE + 1 if shown else 0
    due = format_ts(view.due_at)[:16].replace("T", " ")
    body: list[Any] = [
        _title(f"{view.review_id}: {view.title}"),
        _text(f"Decide by {due} UTC · items {first}-{first + len(shown) - 1 if shown else 0} of {len(view.items)}"
              + (f" · card {page + 1} of {count}" if count > 1 else "") + " · a choice left empty stays undecided",
              is_subtle=True, spacing=act.Spacing.NONE),
    ]
    if view.notes:
        body.append(_text(_cut("Live check: " + "; ".join(view.notes), 1200), color=act.Colors.WARNING))
    if not view.decidable:
        body.append(_text(f"{view.review_id} is {view.state}: decisions can no longer be changed.",
                          weight=act.FontWeight.BOLDER))
    if note:
        body.append(_text(_cut(note, 600), color=act.Colors.ATTENTION if attention else act.Colors.ACCENT,
                          spacing=act.Spacing.MEDIUM))
    for item in shown:
        body += _item(item, decidable=view.decidable, chosen=(choices or {}).get(item.number), limit=limit)
    actions: list[Any] = []
    if view.decidable and any(not i.gone for i in shown):
        needs = [d for d, on in (("keep", view.keep_reason_required), ("remove", view.remove_reason_required)) if on]
        label = f"Why (required to {' and to '.join(needs)})" if needs else "Comment (optional)"
        body.append(element(ac.InputText,
            id=COMMENT_INPUT, label="Why? Say it to save your choices." if ask_reason else label,
            is_multiline=True, max_length=2000, value=_cut(comment, 2000) if comment else None,
            is_required=ask_reason or None, error_message="Say why." if ask_reason else None,
            spacing=act.Spacing.LARGE))
        states = {str(i.number): i.decision if i.decision in DECISIONS else "" for i in shown if not i.gone}
        data: dict[str, Any] = {"review_id": view.review_id, "page": page, STATES_KEY: states}  # the decisions this
        # card showed: a choice left as shown is not a decision, whatever happened since
        scope = "all" if count == 1 else "all on this card"
        bulk = {**data, SHOWN_KEY: [i.number for i in shown if not i.gone]}  # what this card showed: a stale
        # card's bulk never decides an item added to the page since (an escalation), unseen
        actions = [
            _execute("Save", VERB_REVIEW, data, style=act.ActionStyle.POSITIVE, inputs=act.AssociatedInputs.AUTO),
            _execute(f"Keep {scope}", VERB_REVIEW, {**bulk, "bulk": "keep"}, inputs=act.AssociatedInputs.AUTO),
            _execute(f"Remove {scope}", VERB_REVIEW, {**bulk, "bulk": "remove"}, style=act.ActionStyle.DESTRUCTIVE,
                     inputs=act.AssociatedInputs.AUTO),
        ]
    refresh = review_refresh(view.review_id, page, refresh_user_ids) if view.decidable else None
    return _card(body, actions, refresh=refresh, fallback=f"{view.review_id}: {len(view.items)} item(s) to review")


def submitted(data: Mapping[str, Any]) -> tuple[dict[int, str], list[str]]:
    """The ``item-<k>`` choices of an invoke: number → decision, and what was not understood (a value
    that is not text, or neither keep nor remove; one item named twice)."""
    chosen: dict[int, str] = {}
    named: set[int] = set()
    problems: list[str] = []
    for key, value in data.items():
        m = ITEM_KEY.match(str(key))
        if m is None:
            continue
        number = int(m.group(1))
        if number in named:
            problems.append(f"item {number} is named twice")
            continue
        named.add(number)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            problems.append(f"item {number}: {str(value)[:20]!r} is neither keep nor remove")
            continue
        text = value.strip().lower()
        if not text:
            continue
        if text not in DECISIONS:
            problems.append(f"item {number}: {value[:20]!r} is neither keep nor remove")
            continue
        chosen[number] = text
    return chosen, problems


def shown_items(data: Mapping[str, Any]) -> list[int] | None:
    """The item numbers a bulk action's card showed (``data.items``); None when the card does not say (cards
    sent before it did) or says it in a way no card of ours does."""
    value = data.get(SHOWN_KEY)
    if not isinstance(value, list) or len(value) > PAGE_SIZE:
        return None
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 10**9:
            return None
        numbers.append(v)
    return numbers


def shown_states(data: Mapping[str, Any], limit: int = PAGE_SIZE) -> tuple[tuple[int, str], ...] | None:
    """The decisions an action's card showed (``data.shown``: item number → keep | remove | ""); None when the
    card does not say, or says it in a way no card of ours does (then choices are judged against the decisions
    as they are now)."""
    value = data.get(STATES_KEY)
    if not isinstance(value, dict) or len(value) > limit:
        return None
    states: dict[int, str] = {}
    for key, state in value.items():
        if not isinstance(key, str) or not is_digits(key) or len(key) > 9 or state not in ("", *DECISIONS):
            return None
        if int(key) in states:
            return None
        states[int(key)] = state
    return tuple(sorted(states.items()))
