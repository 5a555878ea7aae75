"""Adaptive Cards 1.5 for the security team's compliance notices: a drift finding (remove / accept, with a
reason and a duration) and a paused safety brake (resume). ``Action.Execute`` verbs are those of the chat
words; ``data.finding_id`` is the finding's ``D-n``, ``data.count`` the count the person saw and
``data.reason`` the pause it belongs to."""

from __future__ import annotations

from typing import Any

import adaptive_cards.card as ac

from cards.adaptive import _card, _execute, _facts, _text, _title
from cards.adaptive_elements import element
from handlers.compliance.views import VERB_DRIFT_ACCEPT, VERB_DRIFT_REMOVE, VERB_RESUME, DriftView, PauseView

REASON_INPUT = "reason"
DURATION_INPUT = "duration"


def drift_card(view: DriftView) -> dict[str, Any]:
    body: list[Any] = [
        _title(f"Drift {view.id}" + (" — still open past the SLA" if view.escalated else "")),
        _text(f"{view.user} is in {view.provider}/{view.group} with no active grant." if view.member else
              f"{view.user} holds {view.request_id or 'a grant'} but is not in {view.provider}/{view.group}."),
        _facts([("Finding", view.id), ("Since", view.first_seen)]),
    ]
    actions: list[Any] = []
    if view.outcome is not None:  # done with: what was done, and no inputs or buttons
        body.append(_text(view.outcome))
    elif view.member:
        body += [element(ac.InputText, id=REASON_INPUT, label="Because", is_multiline=True, max_length=500),
                 element(ac.InputText, id=DURATION_INPUT, label="Accept for (e.g. 30d)", max_length=20)]
        actions = [_execute("Remove", VERB_DRIFT_REMOVE, {"finding_id": view.id}),
                   _execute("Accept as exception", VERB_DRIFT_ACCEPT, {"finding_id": view.id})]
    return _card(body, actions, fallback=f"Drift {view.id}: {view.user} in {view.provider}/{view.group}")


def pause_card(view: PauseView) -> dict[str, Any]:
    body: list[Any] = [
        _title("Removals paused"),
        _text(f"{view.count} {view.reason} removals at once, above the limit of {view.limit}. "
              "Check the identity provider before resuming."),
        *[_text(s) for s in view.sample[:10]],
    ]
    actions = [_execute(f"Resume {view.count} removals", VERB_RESUME, {"count": view.count, "reason": view.reason,
                                                                      **({"pause": view.pause} if view.pause else {})})]
    return _card(body, actions, fallback=f"Removals paused: {view.count}")

