"""View-models: what the handlers return and the channels render (``cards/`` knows only these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepView:
    index: int  # 1-based
    label: str  # "manager", "any_of dba", "2 of security"
    approvers: tuple[str, ...]  # who may decide (requester and earlier approvers excluded)
    approved_by: tuple[str, ...]
    need: int
    status: str  # done | open | waiting | denied | skipped
    # an open manager step whose re-route the safety brake holds (safety.max_reroutes): the managers the
    # identity provider names now, while the step stays with those it asked (``approvers``)
    held_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventView:
    seq: int
    ts: str
    type: str
    actor: str
    summary: str


@dataclass(frozen=True)
class RequestView:
    id: str  # "REQ-7"
    number: int
    requester: str
    requester_name: str
    profile: str
    profile_title: str
    risk: str
    kind: str  # standard | exception
    state: str
    duration: str
    justification: str | None
    ticket: str | None
    submitted_at: str
    provider: str
    group: str
    policy_version: str
    steps: tuple[StepView, ...] = ()
    expires_at: str | None = None
    time_left: str | None = None
    extension: str | None = None  # duration of an extension awaiting approval
    round: int = 0
    end_reason: str | None = None
    facts: tuple[tuple[str, str], ...] = ()  # eligibility facts from the identity source
    events: tuple[EventView, ...] = ()
    waiting_on: tuple[str, ...] = ()

    @property
    def open_step(self) -> StepView | None:
        return next((s for s in self.steps if s.status == "open"), None)


@dataclass(frozen=True)
class ProfileView:
    id: str
    title: str
    risk: str
    eligible: bool
    reason: str | None
    default_duration: str
    max_duration: str
    justification_required: bool
    ticket_required: bool
    exception_allowed: bool


@dataclass(frozen=True)
class FormRequest:
    """Fields still missing from a request; channels with forms ask for them."""

    profile: str | None
    duration: str | None
    justification: str | None
    ticket: str | None
    missing: tuple[str, ...]
    errors: dict[str, str] = field(default_factory=dict)
    profiles: tuple[ProfileView, ...] = ()
    exception: bool = False


@dataclass(frozen=True)
class Reply:
    """The answer to one command.

    ``text`` is a complete plain-text answer (the console prints it); ``kind`` and the typed
    fields let richer channels render cards. ``rule`` names the rule that refused, if any.
    ``private`` marks an answer only its asker may read.
    """

    text: str
    ok: bool = True
    kind: str = "message"  # message | request | requests | profiles | form | help | refusal
    rule: str | None = None
    request: RequestView | None = None
    requests: tuple[RequestView, ...] = ()
    profiles: tuple[ProfileView, ...] = ()
    form: FormRequest | None = None
    title: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # A secret for the asker alone (a sign-in link): channels deliver it only where nobody else reads it
    # (Slack: an ephemeral answer or a DM; Teams: the personal chat), never into a channel or group chat.
    private: bool = False



def refused(rule: str, text: str, **kw: Any) -> Reply:
    """A refusal: its text names the rule that refused, as every refusal's does."""
    return Reply(text=f"Refused ({rule}): {text}", ok=False, kind="refusal", rule=rule, **kw)
