"""Slack Block Kit: handler view-models in, message / modal / App Home dicts out.

Pure functions: no I/O, no clock. Action ids, callback ids and block ids are defined here once
and shared with the Bolt listeners (``bot/slack/app.py``). Approval messages carry buttons with
``action_id`` :data:`ACTION_APPROVE` / :data:`ACTION_DENY` and ``value`` the request id and the
round and step the message shows (``REQ-n:r<round>:s<step>``); the value only says *which* request
and step, never *who* acts. Every builder keeps to
Slack's documented limits (blocks per message / view, characters per text object).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from cards.lists import fit_names
from handlers.views import FormRequest, ProfileView, Reply, RequestView

# -- ids shared with the listeners ---------------------------------------------------------------
ACTION_APPROVE = "approve"
ACTION_DENY = "deny"
ACTION_EXTEND = "extend"
ACTION_OPEN_REQUEST = "open_request"  # App Home button that opens the request modal
REQUEST_MODAL = "access_request"
DENY_MODAL = "access_deny"
EXTEND_MODAL = "access_extend"
FORM_FIELDS = ("profile", "duration", "justification", "ticket")
REASON_BLOCK = "reason"
EXTEND_BLOCK = "duration"

# -- Slack's limits ------------------------------------------------------------------------------
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER = 150
MAX_FALLBACK = 3000  # the notification text; Slack truncates long messages at 40,000
MAX_OPTION = 75
MAX_OPTIONS = 100
MAX_MODAL_TITLE = 24
MAX_METADATA = 3000
MAX_INPUT = 3000
MAX_ROWS = 40  # request rows in one message; the rest is summarised
WITHOUT_GRANT = "Members without a grant (drift): "

STATE_EMOJI = {
    "pending": ":hourglass_flowing_sand:", "approved": ":white_check_mark:", "active": ":large_green_circle:",
    "denied": ":no_entry:", "failed": ":x:", "revoked": ":no_entry_sign:", "cancelled": ":heavy_minus_sign:",
    "expired": ":clock3:", "released": ":wave:",
}
RISK_EMOJI = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_green_circle:"}
REQ_VALUE = re.compile(r"^\s*(?:REQ-)?([0-9]{1,9})\s*$", re.IGNORECASE)
DECISION_VALUE = re.compile(r"^\s*(?:REQ-)?([0-9]{1,9})(?::r([0-9]{1,6}):s([0-9]{1,3}))?\s*$", re.IGNORECASE)
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")  # characters UTF-16 holds in two units
_REGIONAL_RUN = re.compile("[\U0001F1E6-\U0001F1FF]+")  # regional indicators: two of them make a flag


# -- text helpers --------------------------------------------------------------------------------
def escape(text: str | None) -> str:
    """Slack mrkdwn control characters (``&``, ``<``, ``>``) escaped: user text cannot mention or link."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object of escaped text, cut (never through an entity) to ``limit``."""
    return {"type": "mrkdwn", "text": _cut_escaped(text, limit) or " "}


def _plain(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit) or " ", "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _md(text)}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": _plain(text, MAX_HEADER)}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_md(text)]}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "text": _plain(text, 75), "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def _message(text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """``text`` is what notifications show: escaped as the blocks are, so that user text in it cannot mention."""
    return {"text": _cut_escaped(escape(text), MAX_FALLBACK) or " ", "blocks": _fit(blocks, MAX_MESSAGE_BLOCKS)}


def _cut_escaped(text: str, limit: int) -> str:
    """:func:`_cut` of escaped text, never through an entity (``&amp;`` is one character shown) nor through what
    shows as one character (see :func:`_safe_cut`); lengths as :func:`text_units` counts them."""
    if _fits(text, limit) == len(text):
        return text
    return text[: _safe_cut(text, _fits(text, limit - 1))] + "…"


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def text_units(text: str) -> int:
    """A text's length as Slack may count it: UTF-16 code units, so a character outside the Basic Multilingual
    Plane (most emoji) counts two. Never less than the characters, so a text within a limit by this count is
    within it however Slack counts."""
    try:
        return len(text.encode("utf-16-le")) // 2
    except UnicodeEncodeError:  # a lone surrogate (JSON can carry one): each counts one
        return len(text) + len(_ASTRAL.findall(text))


def _fits(text: str, limit: int) -> int:
    """How many characters of ``text`` from its start are within ``limit`` :func:`text_units` (found by halving
    between half the limit, which always fits, and the limit: a few encodings, never a walk of the text)."""
    low, high = min(len(text), limit // 2), min(len(text), limit)
    while low < high:
        mid = (low + high + 1) // 2
        if text_units(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return low


def _regional(c: str) -> bool:
    return 0x1F1E6 <= ord(c) <= 0x1F1FF


def _joined(text: str, at: int) -> bool:
    """Whether cutting ``text`` before index ``at`` splits what shows as one character: the two halves of a
    surrogate pair, a character and the mark, variation selector, skin tone or tag after it, the sides of a
    zero-width joiner, or a flag's two letters."""
    before, after = ord(text[at - 1]), ord(text[at])
    if 0xD800 <= before <= 0xDBFF or before == 0x200D or after == 0x200D or 0xDC00 <= after <= 0xDFFF:
        return True
    if 0xFE00 <= after <= 0xFE0F or 0x1F3FB <= after <= 0x1F3FF or 0xE0020 <= after <= 0xE007F:
        return True
    if unicodedata.category(text[at]) in ("Mn", "Mc", "Me"):
        return True
    if _regional(text[at - 1]) and _regional(text[at]):
        run = _REGIONAL_RUN.match(text[at - 1::-1])  # the run of them that ends before the cut
        return run is not None and len(run.group()) % 2 == 1
    return False


MAX_JOINED = 200  # what shows as one character is far shorter (the longest emoji sequences are some 30 characters)


def _outside_entity(text: str, at: int) -> int:
    """``at``, or the start of the entity of the escaping (``&amp;`` ``&lt;`` ``&gt;``) that it falls inside."""
    amp = text.rfind("&", max(0, at - 4), at)
    return amp if amp >= 0 and ";" not in text[amp:at] else at


def _safe_cut(text: str, at: int) -> int:
    """``at`` moved back, if need be, so that cutting ``text`` there splits neither an entity of the escaping
    (``&amp;`` ``&lt;`` ``&gt;``) nor what shows as one character (:func:`_joined`). When no such place is within
    :data:`MAX_JOINED` characters before it (a letter under thousands of combining marks, a run of joiners), the
    cut is made where it must be, still never inside an entity; ``at`` itself only when that would leave nothing
    before it. The walk back is bounded so that no text costs more than that per cut."""
    if not 0 < at < len(text):
        return at
    forced = cut = _outside_entity(text, at)
    floor = max(0, forced - MAX_JOINED)
    while cut > floor:
        if not _joined(text, cut):
            return cut
        cut = _outside_entity(text, cut - 1)
    return forced if forced > 0 else at


MIN_PIECE = 8


def _pieces(text: str, limit: int) -> Iterator[str]:
    """:func:`split_escaped`'s pieces, one at a time (a caller that needs only the first few reads no further)."""
    if limit < MIN_PIECE:  # room for an entity (``&amp;``) and a character of two units, so every piece moves on
        raise ValueError(f"a piece of escaped text needs room for {MIN_PIECE} units at least, not {limit}")
    start = 0
    while True:
        window = text[start: start + limit + 1]  # every cut starts a piece at a whole character, outside an entity
        fit = _fits(window, limit)
        if fit == len(window):
            yield window
            return
        line = window.rfind("\n", 0, fit) + 1
        space = window.rfind(" ", 0, fit) + 1
        whole = [c for c in (line, space) if c > 0 and not _joined(window, c)]
        at = next((c for c in whole if 2 * text_units(window[:c]) > limit), 0) or next(iter(whole), 0)
        at = at or _safe_cut(window, fit)
        yield window[:at]
        start += at


def split_escaped(text: str, limit: int = MAX_SECTION_TEXT) -> list[str]:
    """Escaped text in pieces, in order, each within ``limit`` :func:`text_units`, that join back into it. A piece
    ends after the last line end that fits, if that fills it more than half; else after the last space that does;
    else after the last line end or space at all; else as late as fits, but never inside an entity or what shows as
    one character (:func:`_safe_cut`)."""
    return list(_pieces(text, limit))


def _text_sections(text: str, room: int) -> list[dict[str, Any]]:
    """Sections showing all of escaped ``text`` (:func:`split_escaped`) in at most ``room`` blocks; what does not
    fit is counted (in characters shown) in the last block, never dropped unsaid."""
    pieces = list(islice(_pieces(text, MAX_SECTION_TEXT), room + 1))
    if len(pieces) <= room:
        return [_section(piece) for piece in pieces]
    shown = pieces[: room - 1]
    rest = len(_unescape(text[sum(len(p) for p in shown):]))
    return [*(_section(piece) for piece in shown), _context(f"… ({rest} more characters not shown)")]


def _fit(blocks: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` blocks, keeping any actions block at the end."""
    if len(blocks) <= limit:
        return blocks
    tail = [b for b in blocks[-2:] if b["type"] == "actions"]
    head = [b for b in blocks if b not in tail][: limit - len(tail) - 1]
    return [*head, _context("… more in `/access mine` or `/access status REQ-n`."), *tail]


def request_value(view: RequestView) -> str:
    return view.id


def decision_value(view: RequestView) -> str:
    """An approve / deny button's value: the request, and the round and step the message asks about."""
    step = view.open_step
    return f"{view.id}:r{view.round}:s{step.index}" if step is not None else view.id


def parse_decision_value(value: Any) -> tuple[int, tuple[int, int] | None] | None:
    """(request number, (round, step) or None) from :func:`decision_value` (or a bare ``REQ-7``), else None."""
    if not isinstance(value, str):
        return None
    m = DECISION_VALUE.match(value)
    if not m or int(m.group(1)) <= 0:
        return None
    return int(m.group(1)), ((int(m.group(2)), int(m.group(3))) if m.group(2) is not None else None)


def parse_request_value(value: Any) -> int | None:
    """The request number a button value or metadata names (``REQ-7`` or ``7``), else None."""
    if not isinstance(value, str):
        return None
    m = REQ_VALUE.match(value)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


# -- request messages ----------------------------------------------------------------------------
def can_decide(view: RequestView, viewer: str | None) -> bool:
    """Whether ``viewer`` still has a decision to make on the open step."""
    in_chain = view.state == "pending" or (view.state == "active" and view.extension is not None)
    return bool(viewer and in_chain and viewer.lower() in view.waiting_on)


def _state_line(view: RequestView) -> str:
    label = f"{STATE_EMOJI.get(view.state, '')} *{view.state.upper()}*".strip()
    if view.extension and view.state == "active":
        label += f" — extension by {escape(view.extension)} awaiting approval"
    if view.end_reason and view.state in ("revoked", "expired", "released", "failed"):
        label += f" ({escape(view.end_reason)})"
    if view.kind == "exception":
        label += "  :warning: *EXCEPTION*"
    return label


def _fields(view: RequestView) -> dict[str, Any]:
    rows: list[tuple[str, str | None]] = [
        ("Requester", f"{view.requester_name} ({view.requester})" if view.requester_name != view.requester
         else view.requester),
        ("Profile", f"{view.profile} — {view.profile_title}"),
        ("Risk", f"{RISK_EMOJI.get(view.risk, '')} {view.risk}".strip()),
        ("Duration", view.duration + (f" (+{view.extension} asked)" if view.extension else "")),
        ("Justification", view.justification),
        ("Ticket", view.ticket),
        ("Group", f"{view.provider}/{view.group}"),
        ("Expires", f"{view.expires_at} ({view.time_left} left)" if view.time_left else view.expires_at),
        ("Submitted", view.submitted_at),
        ("Policy", view.policy_version),
    ]
    fields = [_md(f"*{k}*\n{escape(v)}", MAX_FIELD_TEXT) for k, v in rows if v][:MAX_FIELDS]
    return {"type": "section", "fields": fields}


def chain_lines(view: RequestView) -> list[str]:
    lines: list[str] = []
    for step in view.steps:
        mark = {"done": ":white_check_mark:", "open": ":arrow_forward:", "denied": ":x:"}.get(step.status, "▫️")
        need = f" ({len(step.approved_by)} of {step.need})" if step.need > 1 else ""
        line = f"{mark} Step {step.index}: {escape(step.label)}{need} — {step.status}"
        if step.approved_by:
            line += f"; approved by {escape(', '.join(step.approved_by))}"
        elif step.status in ("open", "waiting") and step.approvers:
            more = " …" if len(step.approvers) > 10 else ""
            line += f"; {escape(', '.join(step.approvers[:10]))}{more}"
        if step.held_for:  # the safety brake holds passing it to the manager the provider names now
            more = " …" if len(step.held_for) > 10 else ""
            line += f"; passing it to {escape(', '.join(step.held_for[:10]))}{more} is held by the safety brake"
        lines.append(line)
    return lines


def _request_blocks(view: RequestView, heading: str) -> list[dict[str, Any]]:
    blocks = [_header(heading), _section(_state_line(view)), _fields(view)]
    if view.facts:
        blocks.append(_context(escape(" · ".join(f"{k}: {v}" for k, v in view.facts))))
    lines = chain_lines(view)
    if lines:
        blocks.append(_section("*Approval chain*\n" + "\n".join(lines)))
    return blocks


def outcome_line(view: RequestView) -> str:
    if view.state == "pending" or (view.state == "active" and view.extension):
        who = ", ".join(view.waiting_on) or "the next step"
        return f"Nothing for you to decide now; waiting on {escape(who)}."
    return f"Decided: {view.id} is {view.state}."


def approval_message(view: RequestView, *, viewer: str | None = None, note: str | None = None) -> dict[str, Any]:
    """What an approver sees: buttons while ``viewer`` can still decide, the outcome otherwise."""
    what = f"extend {view.profile} by {view.extension}" if view.extension else view.profile
    verb = "asks to" if view.extension else "asks for"
    heading = f"{view.id}: {view.requester_name} {verb} {what}"
    blocks = _request_blocks(view, heading)
    if note:
        blocks.append(_section(escape(note)))
    if can_decide(view, viewer):
        blocks.append({"type": "actions", "block_id": f"decide:{view.id}", "elements": [
            _button("Approve", ACTION_APPROVE, decision_value(view), "primary"),
            _button("Deny", ACTION_DENY, decision_value(view), "danger"),
        ]})
    else:
        blocks.append(_context(outcome_line(view)))
    return _message(f"{heading} ({view.state})", blocks)


def status_message(view: RequestView, *, note: str | None = None) -> dict[str, Any]:
    """The requester's view of their own request, updated as it moves."""
    heading = f"Your request {view.id}: {view.profile}"
    blocks = _request_blocks(view, heading)
    if note:
        blocks.append(_section(escape(note)))
    return _message(f"{heading} — {view.state}" + (f": {note}" if note else ""), blocks)


def expiring_message(view: RequestView, *, note: str | None = None) -> dict[str, Any]:
    """A grant about to expire, with an ``extend`` button (it opens the extend modal)."""
    text = note or f"{view.id} ({view.profile}) expires at {view.expires_at}."
    blocks = [
        _header(f"{view.id}: {view.profile} expires soon"),
        _section(escape(text) + (f"\n{view.time_left} left." if view.time_left else "")),
        {"type": "actions", "block_id": f"extend:{view.id}", "elements": [
            _button("Extend…", ACTION_EXTEND, request_value(view), "primary")]},
    ]
    return _message(text, blocks)


def text_message(text: str, *, title: str | None = None) -> dict[str, Any]:
    """A plain-text notice or answer: escaped, then in sections within Slack's limits (:func:`_text_sections`)."""
    blocks: list[dict[str, Any]] = [_header(title)] if title else []
    blocks += _text_sections(escape(text or " "), MAX_MESSAGE_BLOCKS - len(blocks))
    return _message(text, blocks)


# -- lists ---------------------------------------------------------------------------------------
def request_row(view: RequestView) -> str:
    left = f", {view.time_left} left" if view.time_left else ""
    waiting = f"; waiting on {', '.join(view.waiting_on[:5])}" if view.waiting_on else ""
    exc = " :warning: EXCEPTION" if view.kind == "exception" else ""
    return escape(f"{view.id} {view.profile}") + exc + escape(f" — {view.requester} — {view.state}{left}{waiting}")


def _rows(views: Sequence[RequestView], limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    blocks = [_section(f"{STATE_EMOJI.get(v.state, '•')} {request_row(v)}") for v in views[:limit]]
    if len(views) > limit:
        blocks.append(_context(f"… and {len(views) - limit} more (use the CLI for the full list)."))
    return blocks


def requests_message(title: str, views: Sequence[RequestView], *, extra: Sequence[str] = (),
                     without_grant: Sequence[str] = ()) -> dict[str, Any]:
    """A list of requests; ``without_grant``: the group's members no grant explains, as many as one section shows
    after escaping, and how many more there are."""
    blocks = [_header(title)]
    blocks += _rows(views) if views else [_section("Nothing to show.")]
    blocks += [_section(escape(line)) for line in extra]
    if without_grant:
        blocks.append(_section(fit_names(WITHOUT_GRANT, without_grant, escape=escape, measure=text_units,
                                         limit=MAX_SECTION_TEXT)))
    text = f"{title}: " + (", ".join(v.id for v in views[:50]) or "nothing")
    return _message(text, blocks)


def profiles_message(profiles: Sequence[ProfileView], *, title: str = "Profiles") -> dict[str, Any]:
    blocks = [_header(title)]
    for p in profiles[:MAX_ROWS]:
        mark = ":white_check_mark: eligible" if p.eligible else f":no_entry: not eligible ({escape(p.reason)})"
        needs = [n for n, on in (("justification", p.justification_required), ("ticket", p.ticket_required)) if on]
        blocks.append(_section(f"*{escape(p.id)}* — {escape(p.title)} {RISK_EMOJI.get(p.risk, '')} {p.risk}\n"
                               f"{mark}; default {p.default_duration}, max {p.max_duration}"
                               + (f"; needs {' and '.join(needs)}" if needs else "")))
    return _message(title, blocks)


def help_message(reply: Reply) -> dict[str, Any]:
    rows: list[str] = []
    for line in reply.text.splitlines():
        if line.startswith("  "):
            cmd, _, desc = line.strip().partition("  ")
            rows.append(f"`/access {escape(cmd)}` — {escape(desc.strip())}")
        elif line:
            rows.append(f"*{escape(line)}*" if line == "Commands:" else escape(line))
    return _message(reply.text, _text_sections("\n".join(rows) or " ", MAX_MESSAGE_BLOCKS))


def reply_message(reply: Reply, *, viewer: str | None = None) -> dict[str, Any]:
    """The (ephemeral) answer to a command: Block Kit where it helps, plain sections otherwise."""
    if reply.kind == "profiles" and reply.profiles:
        return profiles_message(reply.profiles)
    if reply.kind == "requests":
        if reply.title is None and not reply.requests:
            return text_message(reply.text)
        return requests_message(reply.title or "Your requests and approvals", reply.requests,
                                without_grant=reply.data.get("without_grant") or ())
    if reply.kind == "help":
        return help_message(reply)
    if reply.request is not None and reply.kind != "refusal":
        view = reply.request
        if viewer and viewer.lower() == view.requester.lower():
            return status_message(view, note=reply.text.splitlines()[0] if reply.text else None)
        if reply.text and "\n" in reply.text:  # status: the full text with the events
            message = approval_message(view, viewer=viewer)
            detail = _text_sections(escape(reply.text), max(MAX_MESSAGE_BLOCKS - len(message["blocks"]), 1))
            return {**message, "blocks": _fit([*message["blocks"][:-1], *detail, message["blocks"][-1]],
                                              MAX_MESSAGE_BLOCKS)}  # its text is escaped already
        return approval_message(view, viewer=viewer, note=reply.text)
    return text_message(reply.text)


# -- modals --------------------------------------------------------------------------------------
def _modal(callback_id: str, title: str, blocks: list[dict[str, Any]], *, submit: str | None = "Submit",
           metadata: dict[str, Any] | None = None, close: str = "Cancel") -> dict[str, Any]:
    view: dict[str, Any] = {"type": "modal", "callback_id": callback_id, "title": _plain(title, MAX_MODAL_TITLE),
                            "close": _plain(close, MAX_MODAL_TITLE), "blocks": _fit(blocks, MAX_VIEW_BLOCKS)}
    if submit:
        view["submit"] = _plain(submit, MAX_MODAL_TITLE)
    if metadata is not None:
        view["private_metadata"] = _cut(json.dumps(metadata, separators=(",", ":")), MAX_METADATA)
    return view


def _text_input(block_id: str, label: str, *, value: str | None, placeholder: str, multiline: bool = False,
                optional: bool = False, hint: str | None = None, max_length: int = 2000) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": block_id, "multiline": multiline,
                               "max_length": max_length, "placeholder": _plain(placeholder, 150)}
    if value:
        element["initial_value"] = _cut(value, max_length)
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": _plain(label, 2000),
                             "element": element, "optional": optional}
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _option(p: ProfileView) -> dict[str, Any]:
    return {"text": _plain(f"{p.id} — {p.title}", MAX_OPTION), "value": p.id,
            "description": _plain(f"{p.risk} risk, max {p.max_duration}", MAX_OPTION)}


def request_modal(form: FormRequest) -> dict[str, Any]:
    """The request form: eligible profiles, duration, justification, ticket (errors come with the answer)."""
    title = "Ask for an exception" if form.exception else "Ask for access"
    choices = [p for p in form.profiles if p.eligible or form.exception] or list(form.profiles)
    options = [_option(p) for p in choices[:MAX_OPTIONS]]
    select: dict[str, Any] = {"type": "static_select", "action_id": "profile",
                              "placeholder": _plain("Choose a profile", 150), "options": options}
    current = next((o for o in options if o["value"] == form.profile), None)
    if current is not None:
        select["initial_option"] = current
    blocks: list[dict[str, Any]] = []
    if form.missing or form.errors:
        todo = ", ".join([*form.missing, *(k for k in form.errors if k not in form.missing)])
        blocks.append(_context(f"Please complete: {escape(todo)}."))
    blocks.append({"type": "input", "block_id": "profile", "label": _plain("Profile"), "element": select})
    blocks.append(_text_input("duration", "Duration", value=form.duration, placeholder="e.g. 2h, 30m, 1d",
                              optional="duration" not in form.missing, max_length=40,
                              hint="Leave empty for the profile's default." if not form.exception else None))
    blocks.append(_text_input("justification", "Justification", value=form.justification,
                              placeholder="Why do you need it?", multiline=True,
                              optional="justification" not in form.missing))
    blocks.append(_text_input("ticket", "Ticket", value=form.ticket, placeholder="e.g. INC-4411",
                              optional="ticket" not in form.missing, max_length=40))
    return _modal(REQUEST_MODAL, title, blocks, metadata={"exception": form.exception})


def form_errors(form: FormRequest) -> dict[str, str]:
    """``response_action: errors`` for the request modal: block id → message."""
    errors = {k: _cut(v, 150) for k, v in form.errors.items() if k in FORM_FIELDS}
    for key in form.missing:
        if key in FORM_FIELDS:
            errors.setdefault(key, f"{key.capitalize()} is required.")
    return errors


RULE_FIELD = (("duration", "duration"), ("justification", "justification"), ("ticket", "ticket"))


def refusal_errors(reply: Reply) -> dict[str, str]:
    """A refused request shown by the field the refusing rule is about (the profile otherwise)."""
    rule = reply.rule or ""
    block = next((b for prefix, b in RULE_FIELD if rule.startswith(prefix)), "profile")
    return {block: _cut(reply.text, 150)}


def deny_modal(request_id: str, *, heading: str | None = None, at: tuple[int, int] | None = None) -> dict[str, Any]:
    """The deny form; ``at`` is the (round, step) of the message whose button opened it, kept for the submission."""
    blocks = [_section(escape(heading or f"Deny {request_id}")),
              _text_input(REASON_BLOCK, "Why do you deny it?", value=None, placeholder="The requester sees this.",
                          multiline=True)]
    metadata: dict[str, Any] = {"request": request_id}
    if at is not None:
        metadata["round"], metadata["step"] = at
    return _modal(DENY_MODAL, f"Deny {request_id}", blocks, submit="Deny", metadata=metadata)


def extend_modal(request_id: str, *, duration: str | None = None) -> dict[str, Any]:
    blocks = [_section(f"Ask for more time on {escape(request_id)}. The same approval chain decides."),
              _text_input(EXTEND_BLOCK, "Extend by", value=duration, placeholder="e.g. 2h", max_length=40),
              _text_input(REASON_BLOCK, "Why", value=None, placeholder="What still needs doing?", multiline=True,
                          optional=True)]
    return _modal(EXTEND_MODAL, f"Extend {request_id}", blocks, submit="Ask", metadata={"request": request_id})


def result_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only shows an answer (``response_action: update``)."""
    return _modal("access_result", title, _text_sections(escape(text or " "), MAX_VIEW_BLOCKS),
                  submit=None, close="Close")


def late_answer(answer: dict[str, Any] | None) -> dict[str, Any]:
    """A modal's answer that came after Slack stopped waiting, as a message: the errors it would have shown next
    to the fields, or the view it would have shown instead (``response_action: update``: a refusal, 'Not saved');
    'Done.' only when it had nothing to show (the work itself tells the person what it did)."""
    answer = answer if isinstance(answer, dict) else {}
    errors = answer.get("errors")
    if isinstance(errors, dict) and errors:
        return text_message("; ".join(str(v) for v in errors.values()))
    view = answer.get("view")
    if answer.get("response_action") == "update" and isinstance(view, dict):
        title = str((view.get("title") or {}).get("text") or "").strip() or "Not done"
        sections = [b for b in view.get("blocks") or () if isinstance(b, dict) and b.get("type") == "section"]
        shown = " ".join(str((b.get("text") or {}).get("text") or "") for b in sections).strip()  # escaped already
        return {"text": _cut_escaped(f"{escape(title)}: {shown}" if shown else escape(title), MAX_FALLBACK),
                "blocks": _fit([_header(title), *sections], MAX_MESSAGE_BLOCKS)}
    return text_message("Done.")


def modal_values(state: dict[str, Any]) -> dict[str, str | None]:
    """``view.state.values`` → block id → the typed or chosen value (stripped, None when empty)."""
    out: dict[str, str | None] = {}
    values = state.get("values") if isinstance(state, dict) else None
    for block_id, actions in (values or {}).items():
        if not isinstance(actions, dict):
            continue
        for element in actions.values():
            if not isinstance(element, dict):
                continue
            raw = element.get("value")
            if element.get("type") == "static_select":
                raw = (element.get("selected_option") or {}).get("value")
            out[str(block_id)] = (str(raw).strip()[:MAX_INPUT] or None) if raw is not None else None
    return out


# -- App Home ------------------------------------------------------------------------------------
def home_view(*, own: Sequence[RequestView], waiting_on_me: Sequence[RequestView],
              queue: Sequence[RequestView] | None = None, name: str | None = None) -> dict[str, Any]:
    """My grants with time left, my pending requests, approvals waiting on me; the queue for security."""
    grants = [v for v in own if v.state == "active"]
    open_ = [v for v in own if v.state != "active"]
    blocks: list[dict[str, Any]] = [
        _header(f"Privileged access{' for ' + name if name else ''}"),
        {"type": "actions", "block_id": "home", "elements": [
            _button("Ask for access", ACTION_OPEN_REQUEST, "request", "primary")]},
        _context("Or type `/access request <profile> for <duration> because <reason>`; `/access help` for more."),
        {"type": "divider"},
        _header("My active grants"),
    ]
    blocks += _rows(grants, 20) if grants else [_context("No active grants.")]
    blocks += [_header("My open requests")]
    blocks += _rows(open_, 20) if open_ else [_context("No open requests.")]
    blocks += [_header("Waiting on my decision")]
    if waiting_on_me:
        for v in waiting_on_me[:15]:
            blocks.append(_section(request_row(v)))
            blocks.append({"type": "actions", "block_id": f"home-decide:{v.id}", "elements": [
                _button("Approve", ACTION_APPROVE, decision_value(v), "primary"),
                _button("Deny", ACTION_DENY, decision_value(v), "danger")]})
        if len(waiting_on_me) > 15:
            blocks.append(_context(f"… and {len(waiting_on_me) - 15} more: `/access mine`."))
    else:
        blocks.append(_context("Nothing waits on you."))
    if queue is not None:
        blocks += [{"type": "divider"}, _header("Security: pending queue")]
        blocks += _rows(queue, 20) if queue else [_context("Nothing is waiting.")]
    return {"type": "home", "blocks": _fit(blocks, MAX_VIEW_BLOCKS)}
