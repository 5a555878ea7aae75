"""Free phrasing (SPEC §4.1): a sentence acts only when it is one person asking for one profile.

A sentence becomes a request only when it has the shape of the asker asking for access for
themselves — "I need …", "I'd like …", "can I get …?", "please give me …" — followed by exactly
one known profile and nothing but a duration, a reason and a polite word. Everything else that
names a profile gets a clarifying answer and acts on nothing: a negation ("I no longer need …"),
a question about needing or having access ("do I need …?", "does carol have …?"), another
person's name or email, or any other verb ("I would like to release …").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DURATION_WORDS = r"(?:\d{1,12}\s*(?:m|min|mins|minutes?|h|hr|hrs|hours?|d|days?|w|weeks?|s)\b\s*)+"
TICKET_AHEAD = r"(?=[A-Za-z][A-Za-z0-9]{1,9}-[0-9])"

# The asker asking for themselves. ``polite`` openers are questions in form and requests in meaning.
_PLAIN = (r"i\s+(?:really\s+|urgently\s+|still\s+|also\s+)?(?:need|want|require)",
          r"i(?:'d|’d|\s+would)\s+(?:really\s+)?like",
          r"(?:i\s+am\s+|i'm\s+|i’m\s+)?requesting",
          r"i\s+request",
          r"(?:give|grant)\s+me")
_POLITE = (r"(?:can|could|may)\s+i\s+(?:please\s+)?(?:get|have|request|be\s+given|be\s+granted)",
           r"(?:can|could|would|will)\s+you\s+(?:please\s+)?(?:give|grant)\s+me")
_LEAD = r"^(?:(?:hi|hello|hey)\b[\s,!.]*)?(?:please[\s,]+)?"
_BRIDGE = (r"(?:to\s+(?:have|get|use|request)\s+)?(?:(?:temporary|temp|some)\s+)?"
           r"(?:access\s+to\s+|(?:a\s+)?grant\s+(?:of|for)\s+)?(?:the\s+)?")
_HEAD = re.compile(rf"{_LEAD}(?:(?P<polite>{'|'.join(_POLITE)})|(?:{'|'.join(_PLAIN)}))\s+{_BRIDGE}"
                   r"(?P<profile>[a-z0-9][a-z0-9-]*)(?![a-z0-9-])", re.IGNORECASE)
_TAIL = re.compile(
    r"^(?:\s+(?:access|rights|permissions?|role|profile))?"
    rf"(?:\s+(?:for|during)\s+(?P<duration>{DURATION_WORDS}))?"
    r"(?:\s*,?\s*(?:please|now|asap|right\s+now|today))?"
    r"\s*[,;:.]?"
    r"(?:\s*(?:(?:to|because|so\s+that|so|as|since|in\s+order\s+to)\s+|for\s+" + TICKET_AHEAD + r")(?P<reason>.+?))?"
    r"\s*(?:,?\s*(?:please|thanks|thank\s+you))?\s*(?P<end>[.!?]*)\s*$", re.IGNORECASE)
_TRAILING_DURATION = re.compile(rf"\s+for\s+(?P<duration>{DURATION_WORDS})[.!]*$", re.IGNORECASE)

_EMAIL = re.compile(r"[^\s@]+@[^\s@]+")
_OTHERS = re.compile(r"\b(?:on\s+behalf|behalf\s+of|(?:he|she|they|we)\s+(?:need|needs|want|wants)|"
                     r"for\s+(?:him|her|them|us|someone|somebody|everyone|everybody|anyone|(?:my|our|the)\s+"
                     r"(?:colleague|co-?worker|teammate|team|boss|manager|friend|report|contractor)s?))\b",
                     re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:no\s+longer|not|never|no\s+more|any\s*more|don'?t|doesn'?t|didn'?t|won'?t|dont|"
                       r"do\s+not|does\s+not|without|stop|no\s+need)\b|n[’']t\b", re.IGNORECASE)
_ENDING = re.compile(r"\b(?:release|releasing|remove|removing|revoke|revoking|drop|dropping|give\s+up|"
                     r"end|ending|cancel|cancelling|done\s+with|finished\s+with|return|returning)\b", re.IGNORECASE)
_ENDED = (r"(?:released|removed|revoked|dropped|ended|cancell?ed|deleted|disabled|deactivated|deprovisioned|"
          r"expired|lapsed|withdrawn|terminated|suspended|blocked|locked|retired|closed|rescinded|retracted|pulled|"
          r"stripped|killed|(?:switched|turned|shut|cut|taken|signed)\s+(?:off|away|back|out|down)|gone)")
_FEW = r"(?:[\w'’-]+\s+){0,3}"  # a few words between ("to be completely and permanently revoked")
# a reason that is about the access itself ending ("... to be revoked", "so that it gets removed", "to end now",
# "to never be granted again", "to not be active"): the sentence asks for an end, not for the access (SPEC §4.1)
_ENDS_IT = re.compile(
    rf"(?:\b(?:be|been|being|is|are|was|get|gets|got|getting|have\s+it|has\s+it)\s+{_FEW}{_ENDED}\b"
    rf"|\b(?:it|this|that|them|access|grant|(?:my|the)\s+(?:access|grant|rights?))\s+{_FEW}{_ENDED}\b"
    r"|^(?:(?:\w+ly)\s+)*(?:end|stop|expire|finish|terminate|go\s+away|lapse|never|not|no\s+longer|be\s+(?!able\b))\b)",
    re.IGNORECASE)
# the reason says the access is for someone else ("so Carol can run it", "because my colleague needs it")
_FOR_OTHERS = re.compile(
    r"\bso(?:\s+that)?\s+(?!(?:i|we|it|this|that|the|there|a|an|my|our|they)\b)[A-Za-z]+\s+"
    r"(?:can|could|will|would|may|might|gets?|has|have|is|does)\b"
    r"|\b(?:my|our|a|his|her|their)\s+(?:colleague|co-?worker|teammate|boss|manager|friend|report|contractor|"
    r"intern|lead|peer|partner|assistant)s?\b"
    r"|\b(?:he|she|him|his|hers)\b", re.IGNORECASE)
# after "so" / "so that", a subject other than the asker ("so Carol can run the report")
_SO_SOMEONE = re.compile(r"(?!(?:i|we|it|this|that|the|there|a|an|my|our|they)\b)[A-Za-z]+\s+"
                         r"(?:can|could|will|would|may|might|gets?|has|have|is|does)\b", re.IGNORECASE)
_NAMED_OTHER = re.compile(r"\b[A-Z][a-z]+\s+(?:asked|requested|wants\b|(?:needs|requires)\s+(?:it|this|that|access|"
                          r"the\s+access|a\s+grant))\b")
_QUESTION_START = re.compile(r"^(?:do|does|did|is|are|was|were|am|should|shall|who|whom|whose|what|which|why|"
                             r"how|when|where|whether|has|have|had|will|would|can|could|may|might|must)\b",
                             re.IGNORECASE)


@dataclass(frozen=True)
class NotActed:
    """A sentence about a profile that must not act; ``hint`` is the clarifying answer."""

    hint: str


def named_profiles(text: str, profile_ids: Iterable[str]) -> list[str]:
    lowered = text.lower()
    return [p for p in profile_ids if re.search(rf"(?<![a-z0-9-]){re.escape(p)}(?![a-z0-9-])", lowered)]


def _how_to_ask(profile: str) -> str:
    return f"to ask for {profile} yourself, say `request {profile} for <duration> because <reason>`"


def free_request(text: str, profile_ids: Iterable[str]
                 ) -> tuple[str, str | None, str | None] | NotActed | None:
    """(profile, duration, reason) for a clear request; :class:`NotActed` for a sentence about a profile
    that must not act; None when the sentence names no profile and asks for nothing."""
    ids = list(profile_ids)
    named = named_profiles(text, ids)
    if not named:
        if re.search(r"\b(?:need|needs|want|wants|access|request|like)\b", text, re.IGNORECASE):
            return NotActed("say which profile you need (`profiles` lists them)")
        return None
    if len(named) > 1:
        return NotActed("name one profile at a time, e.g. "
                        f"`request {named[0]} for <duration> because <reason>`")
    profile = named[0]
    if _EMAIL.search(text) or _OTHERS.search(text):
        return NotActed(f"nothing was requested: I file requests only for the person asking, never for someone "
                        f"else; {_how_to_ask(profile)}")
    head = _HEAD.match(text)
    if head is None or head.group("profile").lower() != profile:
        return NotActed(_why_not(text, profile))
    tail = _TAIL.match(text[head.end():])
    if tail is None:
        return NotActed(f"I am not sure what you want with {profile}; {_how_to_ask(profile)}")
    if "?" in tail.group("end") and not head.group("polite"):
        return NotActed(f"nothing was requested; {_how_to_ask(profile)}, and `profiles` shows what you may ask for")
    duration = tail.group("duration")
    reason = tail.group("reason")
    if reason and not duration:
        late = _TRAILING_DURATION.search(reason)
        if late:
            duration, reason = late.group("duration"), reason[: late.start()]
    reason = reason.strip().rstrip("?!.").strip() if reason else None
    so = tail.group("reason") is not None and re.search(r"\bso(?:\s+that)?\s+$", tail.string[:tail.start("reason")],
                                                         re.IGNORECASE)
    if reason and (_FOR_OTHERS.search(reason) or _NAMED_OTHER.search(reason) or (so and _SO_SOMEONE.match(reason))):
        return NotActed(f"nothing was requested: I file requests only for the person asking, never for someone "
                        f"else; {_how_to_ask(profile)}")
    if reason and _ENDS_IT.search(reason):
        return NotActed(f"nothing was requested: this reads as asking for {profile} to end. To end a grant you "
                        f"hold, say `release REQ-n` (`mine` lists yours); {_how_to_ask(profile)}")
    return profile, (duration.strip() if duration else None), (reason or None)


def _why_not(text: str, profile: str) -> str:
    """The clarifying answer for a sentence that names a profile but is not a request for it."""
    if _NEGATION.search(text) or _ENDING.search(text):
        return (f"nothing was requested. To end a grant of {profile} you hold, say `release REQ-n` "
                "(`mine` lists yours)")
    if text.rstrip().endswith("?") or _QUESTION_START.match(text):
        return f"nothing was requested; {_how_to_ask(profile)}, and `profiles` shows what you may ask for"
    return f"nothing was requested; {_how_to_ask(profile)}"
