"""View-models of the compliance notices the cards render (SPEC §3.6): a drift finding, a paused brake, the
security team's lines of a drift sweep sent as one message."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class DriftView:
    id: str  # D-n
    provider: str
    group: str
    user: str
    member: bool  # True: in the group with no grant; False: holds a grant but is not in the group
    first_seen: str  # ISO 8601
    request_id: str | None = None  # the grant, for a holder who is not a member
    escalated: bool = False  # told again: still open past safety.drift_sla
    outcome: str | None = None  # what was done about it: the card says so and offers no buttons


@dataclass(frozen=True)
class PauseView:
    reason: str  # terminated | ineligible | review
    count: int
    limit: int
    sample: tuple[str, ...]
    pause: str = ""  # which pause: a digest of the removals it holds (a resume names it)


@dataclass(frozen=True)
class ReaddQueued:
    """What a notice that a drift re-add is queued was for (the finding, the provisioning op putting the holder
    back, the grant): kept for the outbox to judge whether it still holds (handlers/compliance/readd.py); the
    notice is sent as text."""

    finding: int
    op: int
    request: int


@dataclass(frozen=True)
class DriftLines:
    """The security team's lines of the drift sweep due for one person, sent as one message (handlers/outbox.py
    ``combined``): ``total`` notices, of which ``lines`` are listed, each one line of plain text (line breaks
    inside folded); each channel renders them within its own limits after its escaping, and may list fewer
    (the rest counted, :meth:`more_line`). Never stored: the outbox keeps each line's own row."""

    total: int
    lines: tuple[str, ...]

    @property
    def heading(self) -> str:
        return f"Drift sweep: {self.total} notices"

    def more_line(self, shown: int, command: str = "`report drift`") -> str | None:
        """What is said of the lines not listed when ``shown`` are (``command`` as the channel marks one up)."""
        more = self.total - shown
        return f"… and {more} more: say {command} for every finding and how it was settled." if more > 0 else None


# The chat commands the bot writes between backticks in a drift line: only these are marked up as a command by a
# channel; any other backtick (a name or a group from the directory may hold one) is text, shown as it is. A command
# stands on its own: at the line's start or after a blank or "(", and before a blank, the end or ")" . , ; :
DRIFT_COMMAND = re.compile(r"(?<![^\s(])`(report drift|drift|drift remove D-\d+ because …|"
                           r"drift accept D-\d+ for [^`\s]+ because …)`(?=[\s).,;:]|$)")


def drift_line_parts(line: str) -> list[tuple[str, bool]]:
    """``line`` as its pieces in order, each with whether it is a chat command the bot wrote between backticks
    (:data:`DRIFT_COMMAND`, the backticks left out) rather than text; pieces of text are never empty."""
    parts: list[tuple[str, bool]] = []
    at = 0
    for m in DRIFT_COMMAND.finditer(line):
        if m.start() > at:
            parts.append((line[at:m.start()], False))
        parts.append((m.group(1), True))
        at = m.end()
    if at < len(line):
        parts.append((line[at:], False))
    return parts


# the verbs of the buttons, the same as the chat words (Slack action_id, Teams Action.Execute verb)
VERB_DRIFT_REMOVE = "drift_remove"
VERB_DRIFT_ACCEPT = "drift_accept"
VERB_RESUME = "resume_removals"
