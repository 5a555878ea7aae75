"""The chat grammar of SPEC §4.1: the same words in Teams, Slack and the console.

``parse`` turns a line of text into a channel-neutral command. It never guesses: free phrasing
(``handlers.phrasing``) is understood only when the asker asks for exactly one known profile for
themselves; anything else is :class:`Unknown`, which the service answers with help.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from handlers.phrasing import NotActed, free_request
from handlers.text import MAX_TEXT, clean

TICKET_RE = re.compile(r"\b([A-Z][A-Z0-9]{1,9}-[0-9]{1,9})\b")
REQ_RE = re.compile(r"^(?:REQ-)?([0-9]{1,9})$", re.IGNORECASE)


@dataclass(frozen=True)
class Help:
    topic: str | None = None


@dataclass(frozen=True)
class Unknown:
    text: str
    hint: str = ""


@dataclass(frozen=True)
class Profiles:
    pass


@dataclass(frozen=True)
class RequestAccess:
    profile: str | None
    duration: str | None = None
    reason: str | None = None
    ticket: str | None = None
    exception: bool = False


@dataclass(frozen=True)
class Mine:
    pass


@dataclass(frozen=True)
class Extend:
    request_id: int
    duration: str | None
    reason: str | None = None


@dataclass(frozen=True)
class Release:
    request_id: int


@dataclass(frozen=True)
class Cancel:
    request_id: int


def decision_at(data: object) -> tuple[int, int] | None:
    """The (round, 1-based step) a clicked card's data names (``round``, ``step``: a Teams card's action data, a
    Slack deny form's metadata), None when it names none or not as whole numbers in range."""
    if not isinstance(data, dict):
        return None
    round_, step = data.get("round"), data.get("step")
    if type(round_) is int and type(step) is int and 0 <= round_ < 10**6 and 0 < step < 1000:
        return round_, step
    return None


@dataclass(frozen=True)
class Approve:
    request_id: int
    comment: str | None = None
    at: tuple[int, int] | None = None  # (round, 1-based step) the clicked card showed; None: what is open now


@dataclass(frozen=True)
class Deny:
    request_id: int
    reason: str | None = None
    at: tuple[int, int] | None = None  # (round, 1-based step) the clicked card showed; None: what is open now


@dataclass(frozen=True)
class Status:
    request_id: int
    events: bool = True  # False: a card's status, which shows no event list (one statement less)


@dataclass(frozen=True)
class Pending:
    pass


@dataclass(frozen=True)
class WhoHas:
    profile: str


@dataclass(frozen=True)
class History:
    email: str


@dataclass(frozen=True)
class Revoke:
    request_id: int
    reason: str | None = None


@dataclass(frozen=True)
class Verify:
    pass


@dataclass(frozen=True)
class Evidence:
    date_from: str
    date_to: str


@dataclass(frozen=True)
class Report:
    what: str  # drift | terminations | access
    profile: str | None = None


@dataclass(frozen=True)
class Dashboard:
    """A one-time sign-in link to the web dashboard (SPEC §8)."""


Command = (Help | Unknown | Profiles | RequestAccess | Mine | Extend | Release | Cancel | Approve | Deny
           | Status | Pending | WhoHas | History | Revoke | Verify | Evidence | Report | Dashboard)

SECURITY_COMMANDS = (Pending, WhoHas, History, Revoke, Verify, Evidence, Report)


def command_name(cmd: object) -> str:
    names = {RequestAccess: "request", WhoHas: "who has"}
    if isinstance(cmd, RequestAccess) and cmd.exception:
        return "exception"
    return names.get(type(cmd), type(cmd).__name__.lower())


def find_ticket(text: str | None) -> str | None:
    if not text:
        return None
    m = TICKET_RE.search(text)
    return m.group(1) if m else None


def _req(token: str) -> int | None:
    m = REQ_RE.match(token.strip())
    return int(m.group(1)) if m else None


def _split_reason(rest: str) -> tuple[str, str | None]:
    """``"... because <text>"`` → (head, text)."""
    m = re.search(r"(?:^|\s)because(?:\s+|$)", rest, re.IGNORECASE)
    if not m:
        return rest.strip(), None
    reason = rest[m.end():].strip()
    return rest[: m.start()].strip(), (reason or "")


def _parse_request(rest: str, *, exception: bool) -> Command:
    head, reason = _split_reason(rest)
    words = head.split()
    if not words:
        return RequestAccess(profile=None, reason=reason, ticket=find_ticket(reason), exception=exception)
    profile = words[0].lower()
    tail = " ".join(words[1:])
    duration = None
    if tail:
        m = re.match(r"^for\s+(.+)$", tail, re.IGNORECASE)
        if not m:
            return Unknown(rest, hint=f"after the profile, say `for <duration>` or `because <reason>`, not {tail!r}")
        duration = m.group(1).strip()
    return RequestAccess(profile=profile, duration=duration, reason=reason, ticket=find_ticket(reason),
                         exception=exception)


def parse(text: str, profile_ids: Iterable[str] = ()) -> Command:
    text = clean(text)
    if not text:
        return Help()
    if len(text) > MAX_TEXT:
        return Unknown(text[:80], hint=f"that message is longer than {MAX_TEXT} characters")
    words = text.split()
    verb = words[0].lower().lstrip("/")
    rest = text[len(words[0]):].strip()
    args = rest.split()

    if verb in ("help", "?", "commands"):
        return Help(args[0].lower() if args else None)
    if verb == "profiles" and not args:
        return Profiles()
    if verb == "request":
        return _parse_request(rest, exception=False)
    if verb == "exception":
        return _parse_request(rest, exception=True)
    if verb == "mine" and not args:
        return Mine()
    if verb == "dashboard" and not args:
        return Dashboard()
    if verb in ("pending", "verify") and not args:
        return Pending() if verb == "pending" else Verify()
    if verb == "who" and len(args) == 2 and args[0].lower() == "has":
        return WhoHas(args[1].lower().rstrip("?"))
    if verb == "history" and len(args) == 1 and "@" in args[0]:
        return History(args[0].lower())
    if verb == "evidence" and len(args) == 2:
        return Evidence(args[0], args[1])
    if verb == "report" and args and args[0].lower() in ("drift", "terminations", "access"):
        profile = args[2].lower() if len(args) >= 3 and args[1] in ("--profile", "for") else (
            args[1].lower() if len(args) == 2 else None)
        return Report(args[0].lower(), profile)
    if verb in ("release", "cancel", "status") and len(args) == 1 and _req(args[0]) is not None:
        n = _req(args[0])
        assert n is not None
        return {"release": Release, "cancel": Cancel, "status": Status}[verb](n)
    if verb == "approve" and args and _req(args[0]) is not None:
        comment = rest[len(args[0]):].strip() or None
        return Approve(_req(args[0]) or 0, comment)
    if verb in ("deny", "revoke") and args and _req(args[0]) is not None:
        n = _req(args[0]) or 0
        _, reason = _split_reason(rest[len(args[0]):])
        if reason is None:
            tail = rest[len(args[0]):].strip()
            reason = tail or None
        return Deny(n, reason) if verb == "deny" else Revoke(n, reason)
    if verb == "extend" and args and _req(args[0]) is not None:
        n = _req(args[0]) or 0
        head, reason = _split_reason(rest[len(args[0]):])
        m = re.match(r"^by\s+(.+)$", head, re.IGNORECASE)
        if head and not m:
            return Unknown(text, hint="say `extend REQ-n by <duration>`")
        return Extend(n, m.group(1).strip() if m else None, reason)
    if verb in ("release", "cancel", "status", "approve", "deny", "revoke", "extend"):
        return Unknown(text, hint=f"`{verb}` needs a request id like REQ-7")

    free = free_request(text, profile_ids)
    if isinstance(free, NotActed):
        return Unknown(text, hint=free.hint)
    if free is not None:
        profile, duration, reason = free
        return RequestAccess(profile=profile, duration=duration, reason=reason, ticket=find_ticket(text))
    return Unknown(text)
