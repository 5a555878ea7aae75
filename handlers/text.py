"""Free text from people: cleaned and limited in one place before any handler sees it.

Every channel hands the service a command (parsed from a message, or built from a Slack modal
or a Teams form); :func:`clean_command` cleans every text field of it — justification, ticket,
comment, reason, and the rest — so that control characters and bidi overrides never reach a
reply, a card or the audit log, and states the limits each field is held to.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

_DIGITS = re.compile(r"[0-9]+")
MAX_TEXT = 4000  # a whole message; any text is read only up to twice this
# Fields over their limit are refused, never cut (a request judges its own, in SPEC §3.1's order).
LIMITS = {"justification": 2000, "ticket": 64, "comment": 2000, "reason": 2000}

_DROP = frozenset([0x061C, 0x200E, 0x200F, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
_SPACE = frozenset("\t\n\r\v\f\u2028\u2029\x85")

# characters that show nothing (letters by category but drawn blank): a text of only these and format characters
# (zero-width space, joiners, word joiner) says nothing
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_UNSEEN = frozenset(("Cf", "Zs", "Zl", "Zp", "Mn", "Me", "Cc"))

C = TypeVar("C")


def clean(text: str) -> str:
    """Drop control characters and bidi marks and overrides, fold white space; a lone UTF-16 surrogate
    (half an emoji, which JSON can carry as ``\\ud83d`` but no UTF-8 store can hold) becomes U+FFFD."""
    out = []
    for ch in text[: MAX_TEXT * 2]:
        code = ord(ch)
        if ch in _SPACE:
            out.append(" ")
        elif code < 32 or 127 <= code <= 159 or code in _DROP:
            continue
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    text = re.sub(r"\s+", " ", "".join(out)).strip()
    return text if shows_something(text) else ""


def shows_something(text: str) -> bool:
    """Whether ``text`` has a character a reader sees: not only zero-width or format characters, combining marks
    on nothing, or blank fillers (a required justification of ``\u200b`` is none)."""
    return any(ch not in _BLANK and unicodedata.category(ch) not in _UNSEEN for ch in text)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (NUL among them, which PostgreSQL refuses in text) or a lone
    UTF-16 surrogate (which no UTF-8 store holds): no address or name people type has one."""
    return any(ord(ch) < 32 or 127 <= ord(ch) <= 159 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def is_digits(text: str) -> bool:
    """Whether ``text`` is a number as people type one: ASCII digits 0-9 and nothing else.

    ``str.isdigit()`` also holds for '³' or '²', which ``int()`` refuses (ValueError), and
    ``str.isdecimal()`` for '٣', which ``int()`` reads as 3; neither is an item or request number.
    """
    return _DIGITS.fullmatch(text) is not None


def too_long(rule: str, value: object) -> str | None:
    """The refusal text when ``value`` is over the limit of ``rule``, else None."""
    limit = LIMITS.get(rule)
    if not isinstance(value, str) or limit is None or len(value) <= limit:
        return None
    return f"the {rule} is longer than {limit} characters"


def clean_command(cmd: C) -> C:
    """``cmd`` with every text field cleaned; an optional field left empty becomes None."""
    if not is_dataclass(cmd) or isinstance(cmd, type):
        return cmd
    changes: dict[str, Any] = {}
    for f in fields(cmd):
        value = getattr(cmd, f.name)
        if not isinstance(value, str):
            continue
        cleaned = clean(value)
        if not cleaned and "None" in str(f.type):
            changes[f.name] = None
        elif cleaned != value:
            changes[f.name] = cleaned
    return replace(cmd, **changes) if changes else cmd  # type: ignore[type-var]


def over_limit(cmd: object) -> tuple[str, str] | None:
    """(rule, refusal text) for the first field of ``cmd`` named in :data:`LIMITS` that is over it."""
    if not is_dataclass(cmd):
        return None
    for f in fields(cmd):
        problem = too_long(f.name, getattr(cmd, f.name))
        if problem:
            return f.name, problem
    return None
