"""Block Kit for the security team's compliance notices: a drift finding (remove / accept) and a paused
safety brake (resume). Handler view-models in, blocks out; the buttons' ``action_id`` are the verbs of
the chat words (``drift remove``, ``drift accept``, ``resume removals``), the ``value`` the finding id
(``D-n``) or, to resume, the count the person saw and the pause's reason (``30:terminated``). Remove and
accept ask for the reason (and the duration) in a modal whose metadata names the finding and the message. The
security team's lines of a drift sweep sent as one message are listed in sections packed after escaping, each
within Slack's section limit, and no more blocks than a message may carry."""

from __future__ import annotations

import json
import re
from typing import Any

from cards.slack import (
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    _cut_escaped,
    _message,
    _modal,
    _text_input,
    escape,
    text_units,
)
from handlers.compliance.findings import parse_drift_ref
from handlers.compliance.views import (
    VERB_DRIFT_ACCEPT,
    VERB_DRIFT_REMOVE,
    VERB_RESUME,
    DriftLines,
    DriftView,
    PauseView,
)

MAX_SAMPLE = 10
DRIFT_REMOVE_MODAL = "compliance_drift_remove"
DRIFT_ACCEPT_MODAL = "compliance_drift_accept"
REASON_BLOCK = "reason"
DURATION_BLOCK = "duration"
MAX_METADATA = 3000


def _section(text: str) -> dict[str, Any]:
    """A section of escaped text, cut (saying so, never through an entity) to Slack's section limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut_escaped(text, MAX_SECTION_TEXT) or " "}}


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
    if view.outcome is not None:  # done with: what was done, and no buttons
        blocks.append(_section(escape(view.outcome)))
    elif actions:
        blocks.append({"type": "actions", "block_id": f"drift-{view.id}", "elements": actions})
    return blocks


def pause_blocks(view: PauseView) -> list[dict[str, Any]]:
    sample = "\n".join(f"• {escape(s)}" for s in view.sample[:MAX_SAMPLE])
    return [
        _section(f"*Removals paused*: {view.count} {escape(view.reason)} removals at once, above the limit "
                 f"of {view.limit}. Check the identity provider before resuming."),
        _section(sample or "(no sample)"),
        {"type": "actions", "block_id": "brake", "elements": [
            _button(f"Resume {view.count} removals", VERB_RESUME, pause_value(view), "danger")]},
    ]


def drift_message(view: DriftView, note: str | None = None) -> dict[str, Any]:
    """The DM of one finding: its card, and the notice's own words as the fallback text."""
    blocks = drift_blocks(view)
    if view.escalated:
        blocks.insert(0, _section(f"*Still open past the SLA*: {escape(view.id)}"))
    return _message(note or f"Drift {view.id}", blocks)


def drift_lines_message(view: DriftLines, note: str | None = None) -> dict[str, Any]:
    """The security team's lines of a drift sweep as one DM: the heading, a line each, escaped (``&<>`` grow up
    to fivefold) and then packed into sections of at most ``MAX_SECTION_TEXT`` characters, never splitting a line
    or an entity; lines that would take the message past ``MAX_MESSAGE_BLOCKS`` are counted with the rest."""
    rows = [_cut_escaped("• " + escape(line), MAX_SECTION_TEXT) for line in view.lines]
    shown = len(rows)
    while True:
        sections: list[str] = []
        for text in [escape(view.heading), *rows[:shown], escape(view.more_line(shown) or "")]:
            if not text:
                continue
            if sections and text_units(sections[-1]) + 1 + text_units(text) <= MAX_SECTION_TEXT:
                sections[-1] += "\n" + text
            else:
                sections.append(text)
        if len(sections) <= MAX_MESSAGE_BLOCKS or shown == 0:
            break
        shown -= 1
    return _message(note or view.heading, [_section(text) for text in sections])


def pause_message(view: PauseView, note: str | None = None) -> dict[str, Any]:
    return _message(note or f"Removals paused: {view.count}", pause_blocks(view))


def pause_value(view: PauseView) -> str:
    return f"{view.count}:{view.reason}" + (f":{view.pause}" if view.pause else "")


def parse_pause_value(value: Any) -> tuple[int, str, str | None] | None:
    """The count, reason and pause digest a resume button names (``30:terminated:1a2b3c4d5e6f``; buttons sent
    before pauses had a digest: ``30:terminated``), else None."""
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"([0-9]{1,9}):([a-z]+(?: RV-[0-9]{1,9})?)(?::([0-9a-f]{12}))?", value.strip())
    return (int(m.group(1)), m.group(2), m.group(3)) if m else None


def parse_finding_value(value: Any) -> int | None:
    """The finding number a button value or metadata names (``D-7``), else None."""
    return parse_drift_ref(value)


def _metadata(finding: str, message: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"finding": finding}
    if message and isinstance(message.get("channel"), str) and isinstance(message.get("ts"), str):
        meta["message"] = {k: str(message[k])[:64] for k in ("channel", "ts", "mac") if message.get(k)}
    return meta if len(json.dumps(meta)) < MAX_METADATA else {"finding": finding}


def drift_remove_modal(finding: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
    blocks = [_section(f"Remove the member of drift finding *{escape(finding)}* from the group, through the "
                       "identity provider."),
              _text_input(REASON_BLOCK, "Because", value=None, placeholder="Recorded with the removal.",
                          multiline=True, max_length=500)]
    return _modal(DRIFT_REMOVE_MODAL, f"Remove {finding}", blocks, submit="Remove",
                  metadata=_metadata(finding, message))


def drift_accept_modal(finding: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
    blocks = [_section(f"Accept drift finding *{escape(finding)}* as an exception: it runs through the profile's "
                       "exception chain."),
              _text_input(DURATION_BLOCK, "For", value=None, placeholder="e.g. 30d", max_length=20),
              _text_input(REASON_BLOCK, "Because", value=None, placeholder="Recorded with the exception.",
                          multiline=True, max_length=500)]
    return _modal(DRIFT_ACCEPT_MODAL, f"Accept {finding}", blocks, submit="Accept",
                  metadata=_metadata(finding, message))
