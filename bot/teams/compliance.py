"""Universal Actions of the security team's compliance cards (SPEC §3.6): ``drift_remove`` and
``drift_accept`` (with the card's ``reason`` and ``duration`` inputs) and ``resume_removals`` (the
count and pause the card showed), run through the same words as a typed message.

``data.finding_id`` and ``data.count`` only name which finding or pause; who acts is the authenticated
sender (the aadObjectId in a pinned tenant, checked before this runs), and the handler refuses and
records what that person may not do. A card whose words are incomplete comes back with a note.
"""

from __future__ import annotations

import re
from typing import Any

from bot.bootstrap import App
from cards import adaptive, compliance_adaptive
from handlers.compliance.commands import DriftAccept, DriftRemove, ResumeRemovals
from handlers.compliance.findings import parse_drift_ref
from handlers.compliance.views import VERB_DRIFT_ACCEPT, VERB_DRIFT_REMOVE, VERB_RESUME
from handlers.drift import finding_view
from handlers.ports import Person
from handlers.text import is_digits
from handlers.views import Reply

VERBS = (VERB_DRIFT_REMOVE, VERB_DRIFT_ACCEPT, VERB_RESUME)
MAX_FIELD = 500


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, bool | dict | list):
        return None
    return str(value).strip()[:MAX_FIELD] or None


def finding_number(data: dict[str, Any]) -> int | None:
    return parse_drift_ref(_text(data, "finding_id"))


def pause_seen(data: dict[str, Any]) -> tuple[str, int, str | None] | None:
    """The reason, count and pause digest a card's Resume names (cards sent before pauses had a digest: none)."""
    count, reason = data.get("count"), _text(data, "reason")
    if isinstance(count, bool) or not isinstance(count, int | str) or not is_digits(str(count)) or not reason:
        return None
    if len(str(count)) > 9 or not re.fullmatch(r"[a-z]+(?: RV-[0-9]{1,9})?", reason):
        return None
    pause = data.get("pause")
    if pause in (None, ""):
        return reason, int(count), None
    if not isinstance(pause, str) or not re.fullmatch(r"[0-9a-f]{12}", pause):
        return None
    return reason, int(count), pause


def _outcome(reply: Reply) -> dict[str, Any]:
    """What the clicked card becomes: the outcome without buttons (a refusal in the attention colour)."""
    return adaptive.text_card(reply.text, attention=not reply.ok)


async def compliance_invoke(app: App, person: Person, verb: str, data: dict[str, Any]) -> dict[str, Any]:
    """The card the clicking person sees next."""
    if verb == VERB_RESUME:
        seen = pause_seen(data)
        if seen is None:
            return adaptive.text_card("This card does not name a pause.", attention=True)
        return _outcome(await app.service.handle(person, ResumeRemovals(*seen)))
    n = finding_number(data)
    if n is None:
        return adaptive.text_card("This card does not name a drift finding.", attention=True)
    reason = _text(data, compliance_adaptive.REASON_INPUT)
    if verb == VERB_DRIFT_REMOVE:
        reply = await app.service.handle(person, DriftRemove(n, reason))
        if reply.rule == "reason":
            return await _again(app, n, reply, "To remove, say why in the Because box, then press Remove again.")
        return _outcome(reply)
    # the handler judges what the boxes hold (and records a refusal) as it does the typed words
    reply = await app.service.handle(person, DriftAccept(n, _text(data, compliance_adaptive.DURATION_INPUT), reason))
    if reply.rule in ("reason", "duration", "duration>max"):
        return await _again(app, n, reply, reply.text)
    return _outcome(reply)


async def _again(app: App, n: int, reply: Reply, note: str) -> dict[str, Any]:
    """The finding's card again, with what is missing (a finding no longer open says so)."""
    view = await finding_view(app.deps, n)
    if view is None:
        return adaptive.text_card(f"There is no open drift finding D-{n}.", attention=True)
    card = compliance_adaptive.drift_card(view)
    card["body"].insert(1, {"type": "TextBlock", "text": adaptive.escape(note), "wrap": True, "color": "attention"})
    return card
