"""The chat words a compliance card's button stands for, built from what the card carried.

``drift accept`` goes through the grammar, as typed. Only a duration that parses and a reason made one
line go into the words, so that nothing typed into a card's box becomes another command or finding.
"""

from __future__ import annotations

from handlers.durations import DurationError, parse_duration

MAX_REASON = 500
DURATION, REASON = "duration", "reason"


def _duration(text: str | None) -> str | None:
    raw = (text or "").strip()
    try:
        parse_duration(raw)
    except DurationError:
        return None
    return raw


def _reason(text: str | None) -> str:
    return " ".join((text or "").split())[:MAX_REASON]


def accept_problem(duration: str | None, reason: str | None) -> tuple[str, str] | None:
    """What a form must still say before its words are worth sending: (field, message), or None."""
    if not (duration or "").strip():
        return DURATION, "Say for how long, e.g. 30d."
    try:
        parse_duration(duration or "")
    except DurationError as exc:
        return DURATION, f"Not a duration: {exc}."
    if not _reason(reason):
        return REASON, "Say why the membership may stay."
    return None


def accept_words(finding: int, duration: str | None, reason: str | None) -> str:
    """``drift accept D-n [for <d>] [because <r>]``: what is missing the grammar asks for."""
    words = f"drift accept D-{finding}"
    if (d := _duration(duration)) is not None:
        words += f" for {d}"
    if r := _reason(reason):
        words += f" because {r}"
    return words
