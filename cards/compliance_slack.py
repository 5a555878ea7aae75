"""Block Kit for the security team's compliance notices: a drift finding (remove / accept) and a paused
safety brake (resume). Handler view-models in, blocks out; the buttons' ``action_id`` are the verbs of
the chat words (``drift remove``, ``drift accept``, ``resume removals``), the ``value`` the finding id."""

from __future__ import annotations

from typing import Any

from cards.slack import escape
from handlers.compliance.views import VERB_DRIFT_ACCEPT, VERB_DRIFT_REMOVE, VERB_RESUME, DriftView, PauseView

MAX_SAMPLE = 10


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id,
                              "value": value}
    if style:
        button["style"] = style
    return button


def drift_blocks(view: DriftView) -> list[dict[str, Any]]:
    where = f"{escape(view.provider)}/{escape(view.group)}"
    if view.member:
        text = f"*{view.id}*: {escape(view.user)} is in {where} with no active grant (since {escape(view.first_seen)})."
        actions = [_button("Remove", VERB_DRIFT_REMOVE, view.id, "danger"),
                   _button("Accept as exception", VERB_DRIFT_ACCEPT, view.id)]
    else:
        text = (f"*{view.id}*: {escape(view.user)} holds {escape(view.request_id or 'a grant')} but is not in "
                f"{where} (since {escape(view.first_seen)}).")
        actions = []
    blocks = [_section(text)]
    if actions:
        blocks.append({"type": "actions", "block_id": f"drift-{view.id}", "elements": actions})
    return blocks


def pause_blocks(view: PauseView) -> list[dict[str, Any]]:
    sample = "\n".join(f"• {escape(s)}" for s in view.sample[:MAX_SAMPLE])
    return [
        _section(f"*Removals paused*: {view.count} {escape(view.reason)} removals in one sweep, above the limit "
                 f"of {view.limit}. Check the identity provider before resuming."),
        _section(sample or "(no sample)"),
        {"type": "actions", "block_id": "brake", "elements": [
            _button(f"Resume {view.count} removals", VERB_RESUME, str(view.count), "danger")]},
    ]
