"""Adaptive Cards 1.5 for the security team's compliance notices: a drift finding (remove / accept, with a
reason and a duration) and a paused safety brake (resume). ``Action.Execute`` verbs are those of the chat
words; ``data.finding_id`` is the finding's ``D-n``, ``data.count`` the count the person saw and
``data.reason`` the pause it belongs to. The security team's lines of a drift sweep sent as one message are a card
too: a TextBlock shows a subset of Markdown (no code spans, a list only after a line break), so each line is its
own block, its text escaped and a chat command in it (between backticks) in bold; lines that would take the card
past the 28 KB limit are counted with the rest."""

from __future__ import annotations

from typing import Any

import adaptive_cards.card as ac
from adaptive_cards import types as act

from cards.adaptive import (
    MAX_CARD_BYTES,
    MAX_TEXT,
    _card,
    _cut,
    _execute,
    _facts,
    _markup,
    _text,
    _title,
    escape,
    escape_inline,
    fit,
    size_of,
)
from cards.adaptive_elements import element
from handlers.compliance.views import (
    VERB_DRIFT_ACCEPT,
    VERB_DRIFT_REMOVE,
    VERB_RESUME,
    DriftLines,
    DriftView,
    PauseView,
    drift_line_parts,
)

REASON_INPUT = "reason"
DURATION_INPUT = "duration"


def drift_card(view: DriftView, *, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """A finding, with its buttons while it is open; texts cut shorter when that keeps the card under ``budget``
    bytes (:func:`size_of`)."""
    return fit(lambda cap: _drift_card(view, cap), budget, f"drift card of {view.id}")


def _drift_card(view: DriftView, cap: int) -> dict[str, Any]:
    body: list[Any] = [
        _title(f"Drift {view.id}" + (" — still open past the SLA" if view.escalated else ""), cap=cap),
        _text(f"{view.user} is in {view.provider}/{view.group} with no active grant." if view.member else
              f"{view.user} holds {view.request_id or 'a grant'} but is not in {view.provider}/{view.group}.",
              cap=cap),
        _facts([("Finding", view.id), ("Since", view.first_seen)], cap=cap),
    ]
    actions: list[Any] = []
    if view.outcome is not None:  # done with: what was done, and no inputs or buttons
        body.append(_text(view.outcome, cap=cap))
    elif view.member:
        body += [element(ac.InputText, id=REASON_INPUT, label="Because", is_multiline=True, max_length=500),
                 element(ac.InputText, id=DURATION_INPUT, label="Accept for (e.g. 30d)", max_length=20)]
        actions = [_execute("Remove", VERB_DRIFT_REMOVE, {"finding_id": view.id}),
                   _execute("Accept as exception", VERB_DRIFT_ACCEPT, {"finding_id": view.id})]
    return _card(body, actions, fallback=f"Drift {view.id}: {view.user} in {view.provider}/{view.group}")


def pause_card(view: PauseView, *, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """A paused safety brake, with the button that resumes it; the sample cut shorter when that keeps the card under
    ``budget`` bytes (:func:`size_of`)."""
    return fit(lambda cap: _pause_card(view, cap), budget, "pause card")


def _pause_card(view: PauseView, cap: int) -> dict[str, Any]:
    body: list[Any] = [
        _title("Removals paused"),
        _text(f"{view.count} {view.reason} removals at once, above the limit of {view.limit}. "
              "Check the identity provider before resuming."),
        *[_text(s, cap=cap) for s in view.sample[:10]],
    ]
    actions = [_execute(f"Resume {view.count} removals", VERB_RESUME, {"count": view.count, "reason": view.reason,
                                                                      **({"pause": view.pause} if view.pause else {})})]
    return _card(body, actions, fallback=f"Removals paused: {view.count}")


def drift_lines_card(view: DriftLines, *, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """The security team's lines of a drift sweep as one card: the heading, a block per line, and how many more
    there are and the command that lists them all; as many lines as keep the card under ``budget`` bytes
    (:func:`size_of`)."""
    shown = len(view.lines)
    while True:
        body: list[Any] = [_title(view.heading)]
        body += [_markup("• " + _line(_cut(line, MAX_TEXT)), spacing=act.Spacing.SMALL) for line in view.lines[:shown]]
        more = view.more_line(shown, "**report drift**")
        if more:
            body.append(_markup(more, spacing=act.Spacing.MEDIUM))
        card = _card(body, fallback=view.heading)
        if size_of(card) < budget or shown == 0:
            return card
        shown -= 1


def _line(text: str) -> str:
    """One line of plain text as a TextBlock's Markdown: escaped, and each chat command the bot wrote in it between
    backticks (:func:`drift_line_parts`) in bold instead (a TextBlock has no code spans); every other backtick, such
    as one a name or a group holds, is text and shown as it is."""
    out = []
    for i, (part, command) in enumerate(drift_line_parts(text)):
        if command:
            out.append(f"**{escape_inline(part)}**")
        else:
            out.append(escape(part) if i == 0 else escape_inline(part))
    return "".join(out)
