"""Adaptive Cards 1.5 for Teams: handler view-models in, card dicts out.

Pure functions: no I/O, no clock. Every element is written as the dict its ``adaptive_cards`` model
serialises to (:mod:`cards.adaptive_elements`), without building and validating the model on each
click; the tests build every card through the models too and compare the two byte for byte. Hosts
render ``TextBlock`` text and facts as Markdown (a CommonMark subset), so every piece of text that is not the card's own
markup goes through :func:`escape` first: a justification, comment, reason or name is shown
literally, never as a link, emphasis, list or heading. The approval card carries
``Action.Execute`` buttons (verbs :data:`VERB_APPROVE` / :data:`VERB_DENY`, ``data.request_id``),
an optional ``Input.Text`` with id :data:`COMMENT_INPUT`, and a ``refresh`` block so that each
approver sees the current state when the card is opened again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import adaptive_cards.card as ac
import pydantic_core
from adaptive_cards import types as act

from cards.adaptive_elements import card_dict, element
from cards.lists import fit_names
from handlers.views import FormRequest, ProfileView, Reply, RequestView

VERSION = "1.5"
# The bound kept on what is posted to Teams (SPEC §4.2): the whole activity as sent, not the card alone. The card
# leaves room for what goes around it: the attachment, the summary and the addressing (ids, names, service URL);
# the activity is sent as compact UTF-8 JSON, as the card is measured (bot/teams/connector.py ``wire_json``).
# That room is measured, not guaranteed: the Teams channel measures each activity as it is written
# (bot/teams/connector.py ``fitted``) and cuts its summary, then rebuilds its card for a smaller budget when over.
MAX_ACTIVITY_BYTES = 28_672
ACTIVITY_ROOM = 1_024
MAX_CARD_BYTES = MAX_ACTIVITY_BYTES - ACTIVITY_ROOM  # the card alone, as compact JSON (:func:`size_of`)
MAX_REFRESH_USERS = 60  # Teams runs the refresh automatically for at most 60 users

# Verbs and input ids, shared with the invoke translator (bot/teams/invoke.py).
VERB_APPROVE = "approve"
VERB_DENY = "deny"
VERB_REFRESH = "refresh"
VERB_REQUEST = "request"
VERB_EXTEND = "extend"
COMMENT_INPUT = "comment"
FORM_INPUTS = ("profile", "duration", "justification", "ticket")
EXTEND_INPUT = "extend_duration"

MAX_TEXT = 1500  # characters of free text shown in one block
MAX_ROWS = 25  # rows in a list card; the rest is summarised
# The longest any one text of a card is cut to, tried in turn until the card is under its budget (the first changes
# nothing: each text keeps its own limit under it). A card for a smaller budget (the Teams channel rebuilds one when
# the activity as sent is over its bound, bot/teams/connector.py ``fitted``) shows fewer rows first, then shorter text.
TEXT_CAPS = (MAX_TEXT, 600, 250, 100, 40, 16)
WITHOUT_GRANT = "Members without a grant (drift): "

STATE_COLOR = {
    "pending": "warning", "approved": "good", "active": "good", "denied": "attention",
    "failed": "attention", "revoked": "attention", "cancelled": "default", "expired": "default",
    "released": "default",
}
RISK_COLOR = {"high": "attention", "medium": "warning", "low": "good"}


# -- small helpers -------------------------------------------------------------------------------
# Characters that open or close Markdown anywhere in a line (links, emphasis, code, HTML, entities,
# strike-through, the hosts' {{DATE()}} functions), and what makes a line a heading or a list item.
_INLINE = str.maketrans({c: "\\" + c for c in "\\`*_[]<>&~{}"})
_ORDERED = re.compile(r"(\d{1,9})([.)])")


# What makes ``escape`` change a text at all: a line break (as ``str.splitlines`` sees them), an inline
# mark, or a start that indents, heads, lists or rules. Text with none of these is returned as it is.
_NEEDS_ESCAPE = re.compile(r"[\\`*_\[\]<>&~{}\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]|^[ \t#+=-]|^\d{1,9}[.)]")


# Short texts escaped before (labels, names, emails, profile titles: a card repeats them on every click), kept
# up to a bound and forgotten all at once past it; plain ``str`` only, key and value
_ESCAPED: dict[str, str] = {}
_ESCAPED_MAX, _ESCAPED_LEN = 4096, 256


def escape(text: str | None) -> str:
    """Text shown literally by a CommonMark renderer: every construct it could start is backslash-escaped.

    Leading indentation is dropped (four spaces would start a code block); a line that begins
    like a heading, list item, quote or rule gets its first mark escaped.
    """
    if not text:
        return ""
    if type(text) is not str:  # a str subclass (a str enum member) is never kept: another text equal to it would
        return escape_lines(text) if _NEEDS_ESCAPE.search(text) else text  # get the member back, not a str
    found = _ESCAPED.get(text)
    if found is not None:
        return found
    found = escape_lines(text) if _NEEDS_ESCAPE.search(text) else text
    if len(text) <= _ESCAPED_LEN:
        if len(_ESCAPED) >= _ESCAPED_MAX:
            _ESCAPED.clear()
        _ESCAPED[text] = found
    return found


def escape_inline(text: str | None) -> str:
    """Text shown literally inside a line (not at its start): only the inline marks escaped, blanks kept."""
    return (text or "").translate(_INLINE)


def escape_lines(text: str | None) -> str:
    """:func:`escape`, line by line, for text that needs it."""
    lines = []
    for line in (text or "").splitlines():
        line = line.lstrip(" \t").translate(_INLINE)
        ordered = _ORDERED.match(line)
        if ordered:
            line = ordered.group(1) + "\\" + line[len(ordered.group(1)):]
        elif line[:1] in ("#", "+", "-", "="):
            line = "\\" + line
        lines.append(line)
    return "\n".join(lines)


def _cut(text: str | None, limit: int = MAX_TEXT) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(text: str, *, cap: int = MAX_TEXT, **kw: Any) -> Any:
    """A block of plain text (escaped), cut to ``cap`` characters."""
    return element(ac.TextBlock, text=escape(_cut(text, min(MAX_TEXT, cap))), wrap=True, **kw)


def _markup(markup: str, **kw: Any) -> Any:
    """A block of the card's own Markdown, whose every interpolated piece was escaped by the caller."""
    return element(ac.TextBlock, text=markup, wrap=True, **kw)


def _title(text: str, *, cap: int = MAX_TEXT) -> Any:
    return element(ac.TextBlock, text=escape(_cut(text, min(200, cap))), wrap=True, size=act.FontSize.MEDIUM,
                                 weight=act.FontWeight.BOLDER)


def _facts(rows: Sequence[tuple[str, str | None]], *, cap: int = MAX_TEXT) -> Any:
    return element(ac.FactSet, facts=[element(ac.Fact, title=escape(_cut(k, min(80, cap))),
                                              value=escape(_cut(v, min(400, cap)))) for k, v in rows if v])


def _serialise(card: Any, *, refresh: dict[str, Any] | None = None) -> dict[str, Any]:
    out = card_dict(card)
    out["version"] = VERSION
    if refresh is not None:  # the library types refresh.action as a string; the schema wants Action.Execute
        out["refresh"] = refresh
    return out


def _card(body: list[Any], actions: list[Any] | None = None, *, refresh: dict[str, Any] | None = None,
          fallback: str | None = None) -> dict[str, Any]:
    card = element(ac.AdaptiveCard, version=VERSION, body=body, actions=actions or None,
                                    fallback_text=_cut(fallback, 300) if fallback else None)
    return _serialise(card, refresh=refresh)


def size_of(card: dict[str, Any]) -> int:
    """Bytes of the card as compact JSON in UTF-8 (measured against :data:`MAX_CARD_BYTES`). Every card is
    measured as it is built: pydantic's serialiser writes the same bytes as ``json.dumps`` compact and unescaped, in
    a quarter of the time; text no UTF-8 can carry (a lone surrogate) takes ``json.dumps``."""
    try:
        return len(pydantic_core.to_json(card))
    except pydantic_core.PydanticSerializationError:
        return len(json.dumps(card, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))


def fit(build: Callable[[int], dict[str, Any]], budget: int, what: str) -> dict[str, Any]:
    """The card ``build`` makes with the first of :data:`TEXT_CAPS` that keeps it under ``budget`` bytes
    (:func:`size_of`); ValueError when none does."""
    card: dict[str, Any] = {}
    for cap in TEXT_CAPS:
        card = build(cap)
        if size_of(card) < budget:
            return card
    raise ValueError(f"{what} is {size_of(card)} bytes with every text cut to {TEXT_CAPS[-1]} characters")


def fit_rows(build: Callable[[int, int], dict[str, Any]], rows: int, budget: int, what: str) -> dict[str, Any]:
    """The card ``build(shown, cap)`` makes with the most rows shown (``rows`` down to one), then the longest texts
    (:data:`TEXT_CAPS`), that keeps it under ``budget`` bytes (:func:`size_of`); ValueError when none does. The
    card says how many rows it leaves out."""
    card: dict[str, Any] = {}
    for cap in TEXT_CAPS:
        for shown in range(rows, 0, -1) if rows else (0,):
            card = build(shown, cap)
            if size_of(card) < budget:
                return card
    raise ValueError(f"{what} is {size_of(card)} bytes with {min(rows, 1)} row and every text cut to "
                     f"{TEXT_CAPS[-1]} characters")


def _execute(title: str, verb: str, data: dict[str, Any], *, style: act.ActionStyle | None = None,
             inputs: act.AssociatedInputs | None = None) -> Any:
    return element(ac.ActionExecute, title=title, verb=verb, data=data, style=style, associated_inputs=inputs)


# -- request cards -------------------------------------------------------------------------------
def _state_line(view: RequestView, cap: int) -> Any:
    label = view.state.upper()
    if view.extension and view.state == "active":
        label += f" — extension by {view.extension} awaiting approval"
    if view.end_reason and view.state in ("revoked", "expired", "released", "failed"):
        label += f" ({view.end_reason})"
    return element(ac.TextBlock, text=escape(_cut(label, min(200, cap))), wrap=True, weight=act.FontWeight.BOLDER,
                                 color=getattr(act.Colors, STATE_COLOR.get(view.state, "default").upper()))


def _chain_rows(view: RequestView, cap: int) -> list[Any]:
    rows: list[Any] = []
    for step in view.steps:
        done = ", ".join(step.approved_by)
        who = ", ".join(step.approvers[:10]) + (" …" if len(step.approvers) > 10 else "")
        need = f" ({len(step.approved_by)} of {step.need})" if step.need > 1 else ""
        mark = {"done": "✔", "open": "▶", "denied": "✖"}.get(step.status, "·")
        line = f"{mark} Step {step.index}: {step.label}{need} — {step.status}"
        if done:
            line += f"; approved by {done}"
        elif step.status in ("open", "waiting") and who:
            line += f"; {who}"
        if step.held_for:  # the safety brake holds passing it to the manager the provider names now
            line += f"; passing it to {', '.join(step.held_for[:10])} is held by the safety brake"
        rows.append(element(ac.TextBlock, text=escape(_cut(line, min(500, cap))), wrap=True,
                            spacing=act.Spacing.SMALL))
    return rows


def _request_body(view: RequestView, *, heading: str, cap: int) -> list[Any]:
    facts: list[tuple[str, str | None]] = [
        ("Requester", f"{view.requester_name} ({view.requester})" if view.requester_name != view.requester
         else view.requester),
        ("Profile", f"{view.profile} — {view.profile_title}"),
        ("Risk", view.risk),
        ("Kind", "EXCEPTION" if view.kind == "exception" else "standard"),
        ("Duration", view.duration),
        ("Justification", view.justification),
        ("Ticket", view.ticket),
        ("Group", f"{view.provider}/{view.group}"),
        ("Submitted", view.submitted_at),
        ("Expires", f"{view.expires_at} ({view.time_left} left)" if view.time_left else view.expires_at),
        ("Policy", view.policy_version),
    ]
    body: list[Any] = [_title(heading, cap=cap), _state_line(view, cap), _facts(facts, cap=cap)]
    if view.facts:
        body.append(element(ac.TextBlock, text="From the identity provider", wrap=True, weight=act.FontWeight.BOLDER,
                                          spacing=act.Spacing.MEDIUM))
        body.append(_facts(list(view.facts), cap=cap))
    if view.steps:
        body.append(element(ac.TextBlock, text="Approval chain", wrap=True, weight=act.FontWeight.BOLDER,
                                          spacing=act.Spacing.MEDIUM))
        body += _chain_rows(view, cap)
    return body


def can_decide(view: RequestView, viewer: str | None) -> bool:
    """Whether ``viewer`` still has a decision to make on the open step."""
    in_chain = view.state == "pending" or (view.state == "active" and view.extension is not None)
    return bool(viewer and in_chain and viewer.lower() in view.waiting_on)


def refresh_block(request_number: int, user_ids: Sequence[str]) -> dict[str, Any] | None:
    ids = [u for u in dict.fromkeys(user_ids) if u][:MAX_REFRESH_USERS]
    if not ids:
        return None
    return {"action": {"type": "Action.Execute", "verb": VERB_REFRESH, "title": "Refresh",
                       "data": {"request_id": request_number}}, "userIds": ids}


def approval_card(view: RequestView, *, viewer: str | None = None, refresh_user_ids: Sequence[str] = (),
                  note: str | None = None, ask_reason: bool = False, comment: str | None = None,
                  budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """The card an approver sees: buttons while ``viewer`` can still decide, the outcome otherwise; its texts cut
    shorter (:data:`TEXT_CAPS`) when that keeps it under ``budget`` bytes (:func:`size_of`)."""
    return fit(lambda cap: _approval_card(view, viewer, refresh_user_ids, note, ask_reason, comment, cap), budget,
               f"approval card of {view.id}")


def _approval_card(view: RequestView, viewer: str | None, refresh_user_ids: Sequence[str], note: str | None,
                   ask_reason: bool, comment: str | None, cap: int) -> dict[str, Any]:
    what = f"extend {view.profile} by {view.extension}" if view.extension else view.profile
    body = _request_body(view, heading=f"{view.id}: {view.requester} asks to {what}" if view.extension
                         else f"{view.id}: {view.requester} asks for {what}", cap=cap)
    if note:
        body.append(_text(note, cap=cap, color=act.Colors.ATTENTION if ask_reason else act.Colors.ACCENT,
                          spacing=act.Spacing.MEDIUM))
    actions: list[Any] = []
    if can_decide(view, viewer):
        body.append(element(ac.InputText, id=COMMENT_INPUT, label="Comment (required to deny)" if not ask_reason
                                          else "Why do you deny it?", is_multiline=True, max_length=2000,
                                          placeholder="optional for approve",
                                          value=(comment if cap >= MAX_TEXT else _cut(comment, cap)) or None,
                                          is_required=ask_reason or None,
                                          error_message="Say why you deny the request." if ask_reason else None))
        # the round and step this card asks about: a click counts for them alone, never for a later step or round
        data: dict[str, Any] = {"request_id": view.number}
        if view.open_step is not None:
            data.update(round=view.round, step=view.open_step.index)
        actions = [
            _execute("Approve", VERB_APPROVE, data, style=act.ActionStyle.POSITIVE, inputs=act.AssociatedInputs.AUTO),
            _execute("Deny", VERB_DENY, data, style=act.ActionStyle.DESTRUCTIVE, inputs=act.AssociatedInputs.AUTO),
        ]
    elif viewer and not note:
        body.append(_text(_outcome_line(view), cap=cap, spacing=act.Spacing.MEDIUM, is_subtle=True))
    refresh = refresh_block(view.number, refresh_user_ids) if view.state == "pending" or view.extension else None
    return _card(body, actions, refresh=refresh, fallback=f"{view.id} {view.profile}: {view.state}")


def _outcome_line(view: RequestView) -> str:
    if view.state == "pending" or (view.state == "active" and view.extension):
        who = ", ".join(view.waiting_on) or "the next step"
        return f"Nothing for you to decide now; waiting on {who}."
    return f"Decided: {view.id} is {view.state}."


def outcome_card(view: RequestView, *, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """The state of a request with no buttons (what every approver sees after a decision)."""
    def build(cap: int) -> dict[str, Any]:
        body = _request_body(view, heading=f"{view.id}: {view.profile} for {view.requester}", cap=cap)
        body.append(_text(_outcome_line(view), cap=cap, spacing=act.Spacing.MEDIUM, is_subtle=True))
        return _card(body, fallback=f"{view.id} {view.profile}: {view.state}")
    return fit(build, budget, f"outcome card of {view.id}")


def status_card(view: RequestView, *, note: str | None = None, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """The requester's view of their own request, updated as it moves."""
    def build(cap: int) -> dict[str, Any]:
        body = _request_body(view, heading=f"Your request {view.id}: {view.profile}", cap=cap)
        if note:
            body.append(_text(note, cap=cap, spacing=act.Spacing.MEDIUM))
        return _card(body, fallback=f"{view.id} {view.profile}: {view.state}")
    return fit(build, budget, f"status card of {view.id}")


def expiring_card(view: RequestView, *, note: str | None = None, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """A grant about to expire, with an ``extend`` action."""
    return fit(lambda cap: _expiring_card(view, note, cap), budget, f"expiring card of {view.id}")


def _expiring_card(view: RequestView, note: str | None, cap: int) -> dict[str, Any]:
    body: list[Any] = [
        _title(f"{view.id}: {view.profile} expires {view.expires_at or 'soon'}", cap=cap),
        _text(note or f"{view.time_left or 'little time'} left on {view.profile_title}.", cap=cap),
        element(ac.InputText, id=EXTEND_INPUT, label="Extend by", placeholder="e.g. 2h", max_length=20,
                              value=view.duration),
        element(ac.InputText, id=COMMENT_INPUT, label="Why", is_multiline=True, max_length=2000),
    ]
    actions = [_execute("Extend", VERB_EXTEND, {"request_id": view.number}, inputs=act.AssociatedInputs.AUTO)]
    return _card(body, actions, fallback=f"{view.id} expires {view.expires_at}")


# -- lists, profiles, forms, text ----------------------------------------------------------------
def requests_card(title: str, views: Sequence[RequestView], *, extra: Sequence[str] = (),
                  without_grant: Sequence[str] = (), budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """Pending, who has, history: one row per request, up to :data:`MAX_ROWS` and as many as keep the card under
    ``budget`` bytes (:func:`size_of`), then how many more there are and the command that shows each; ``without_grant``:
    the group's members no grant explains, as many as one block shows after escaping, and how many more there are."""
    def build(shown: int, cap: int) -> dict[str, Any]:
        body: list[Any] = [_title(title, cap=cap)]
        if not views:
            body.append(_text("Nothing to show."))
        for v in views[:shown]:
            left = f", {v.time_left} left" if v.time_left else ""
            waiting = f"; waiting on {', '.join(v.waiting_on[:5])}" if v.waiting_on else ""
            exc = " EXCEPTION" if v.kind == "exception" else ""
            row = _cut(f"{v.profile}{exc} — {v.requester} — {v.state}{left}{waiting}", min(MAX_TEXT - 100, cap))
            body.append(_markup(f"**{escape(v.id)}** {escape(row)}", spacing=act.Spacing.SMALL))
        if len(views) > shown:
            body.append(_markup(f"… and {len(views) - shown} more: **status REQ-n** shows one, the CLI lists them "
                                "all.", is_subtle=True))
        for line in extra:
            body.append(_text(line, cap=cap, spacing=act.Spacing.MEDIUM))
        if without_grant:
            body.append(_markup(fit_names(WITHOUT_GRANT, without_grant, escape=escape, measure=len,
                                          limit=min(MAX_TEXT, cap * 4)), spacing=act.Spacing.MEDIUM))
        return _card(body, fallback=title)
    return fit_rows(build, min(len(views), MAX_ROWS), budget, f"list card {title[:80]!r}")


def profiles_card(profiles: Sequence[ProfileView], *, title: str = "Profiles",
                  budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """Up to :data:`MAX_ROWS` profiles, as many as keep the card under ``budget`` bytes (:func:`size_of`), then how
    many more there are."""
    def build(shown: int, cap: int) -> dict[str, Any]:
        body: list[Any] = [_title(title, cap=cap)]
        for p in profiles[:shown]:
            mark = "eligible" if p.eligible else f"not eligible ({p.reason})"
            needs = [n for n, on in (("justification", p.justification_required), ("ticket", p.ticket_required))
                     if on]
            body.append(_markup(f"**{escape(p.id)}** — {escape(_cut(f'{p.title} [{p.risk}]', min(300, cap)))}",
                                spacing=act.Spacing.MEDIUM))
            body.append(_text(f"{mark}; default {p.default_duration}, max {p.max_duration}"
                              + (f"; needs {' and '.join(needs)}" if needs else ""), cap=cap, is_subtle=True,
                              spacing=act.Spacing.NONE))
        if len(profiles) > shown:
            body.append(_markup(f"… and {len(profiles) - shown} more: the CLI lists them all.", is_subtle=True))
        return _card(body, fallback=title)
    return fit_rows(build, min(len(profiles), MAX_ROWS), budget, f"profiles card {title[:80]!r}")


def form_card(form: FormRequest, *, budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    """The request form: eligible profiles, duration, justification, ticket; errors shown by the fields. What was
    typed is kept whole unless the card is over ``budget`` bytes (:func:`size_of`) with it: then texts are cut
    shorter (:data:`TEXT_CAPS`)."""
    return fit(lambda cap: _form_card(form, cap), budget, "request form")


def _form_card(form: FormRequest, cap: int) -> dict[str, Any]:
    title = "Ask for an exception" if form.exception else "Ask for access"
    body: list[Any] = [_title(title)]
    if form.missing:
        body.append(_text("Please fill in: " + ", ".join(form.missing) + ".", cap=cap))
    choices = [p for p in form.profiles if p.eligible or form.exception] or list(form.profiles)
    current = form.profile if form.profile in {p.id for p in choices} else None
    body.append(element(
        ac.InputChoiceSet, id="profile", label="Profile", is_required=True, value=current,
        error_message=_cut(form.errors.get("profile"), min(MAX_TEXT, cap)) or "Choose a profile.",
        choices=[element(ac.InputChoice, title=_cut(f"{p.id} — {p.title} (max {p.max_duration})", min(200, cap)),
                         value=p.id) for p in choices[:MAX_ROWS]]))
    for key, label, hint in (("duration", "Duration", "e.g. 2h, 30m, 1d"),
                             ("justification", "Justification", "why you need it"),
                             ("ticket", "Ticket", "e.g. INC-4411")):
        value = getattr(form, key)
        error = form.errors.get(key)
        if error:
            body.append(_text(f"{label}: {error}", cap=cap, color=act.Colors.ATTENTION, spacing=act.Spacing.MEDIUM))
        body.append(element(ac.InputText, id=key, label=label, placeholder=hint,
                            value=_cut(value, 2000 if cap >= MAX_TEXT else cap) if value else None,
                            is_multiline=key == "justification", max_length=2000,
                            is_required=(key in form.missing) or None,
                            error_message=_cut(error, min(MAX_TEXT, cap)) if error
                            else (f"{label} is required." if key in form.missing else None)))
    data = {"exception": True} if form.exception else {}
    actions = [_execute("Submit", VERB_REQUEST, data, style=act.ActionStyle.POSITIVE,
                        inputs=act.AssociatedInputs.AUTO)]
    return _card(body, actions, fallback=title)


def text_card(text: str, *, title: str | None = None, attention: bool = False,
              budget: int = MAX_CARD_BYTES) -> dict[str, Any]:
    def build(cap: int) -> dict[str, Any]:
        body: list[Any] = [_title(title, cap=cap)] if title else []
        body.append(_text(text, cap=cap, color=act.Colors.ATTENTION if attention else None))
        return _card(body, fallback=_cut(text, min(300, cap)))
    return fit(build, budget, "text card")


def help_card(reply: Reply) -> dict[str, Any]:
    lines = reply.text.splitlines()
    body: list[Any] = []
    for line in lines:
        if line.startswith("  "):
            cmd, _, desc = line.strip().partition("  ")
            body.append(_markup(f"**{escape(_cut(cmd, 200))}** — {escape(_cut(desc.strip(), 500))}",
                                spacing=act.Spacing.SMALL))
        elif line:
            body.append(_text(line, weight=act.FontWeight.BOLDER if line == "Commands:" else None))
    return _card(body, fallback="help")


def reply_card(reply: Reply, *, viewer: str | None = None, budget: int = MAX_CARD_BYTES) -> dict[str, Any] | None:
    """The card that answers a command, or None when plain text says it best; under ``budget`` bytes
    (:func:`size_of`: fewer rows, then shorter texts), ValueError when it cannot be (the help card is fixed text)."""
    if reply.kind == "form" and reply.form is not None:
        return form_card(reply.form, budget=budget)
    if reply.kind == "profiles" and reply.profiles:
        return profiles_card(reply.profiles, budget=budget)
    if reply.kind == "requests":
        return requests_card(reply.title or "Requests", reply.requests,
                             without_grant=reply.data.get("without_grant") or (), budget=budget)
    if reply.kind == "help":
        return help_card(reply)
    if reply.request is not None:
        view = reply.request
        if viewer and viewer.lower() == view.requester.lower():
            return status_card(view, note=reply.text, budget=budget)
        return approval_card(view, viewer=viewer, note=reply.text, budget=budget)
    return None
