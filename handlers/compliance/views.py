"""View-models of the compliance notices the cards render (SPEC §3.6): a drift finding, a paused brake."""

from __future__ import annotations

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


# the verbs of the buttons, the same as the chat words (Slack action_id, Teams Action.Execute verb)
VERB_DRIFT_REMOVE = "drift_remove"
VERB_DRIFT_ACCEPT = "drift_accept"
VERB_RESUME = "resume_removals"
