"""The policy file (SPEC §2.1): a typed model, the loader, and a validator that names lines.

``parse_policy`` reports every problem it finds at once, each with its line and field, and
never returns a half-valid policy. The label and the SHA-256 of the exact bytes identify the
version; every request is judged to its end by the version in force when it was submitted.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from handlers.durations import format_duration
from handlers.files import read_regular

if TYPE_CHECKING:
    from handlers.reviews.model import Review

StepKind = Literal["manager", "owner", "any_of", "all_of", "n_of", "user"]
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ID_RE = re.compile(r"^[a-z0-9-]+$")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# minute, hour, day of month, month, day of week: (low, high, names)
_CRON_FIELDS = ((0, 59, ()), (0, 23, ()), (1, 31, ()), (1, 12, _MONTHS), (0, 6, _DAYS))

STEP_HELP = "use manager, owner, {any_of: G}, {all_of: G}, {n_of: N, from: G} or {user: EMAIL}"
TOP_KEYS = {"version", "approver_groups", "security_team", "profiles", "reminders", "schedule", "reviews",
            "evidence", "safety"}
PROFILE_KEYS = {"id", "title", "owner", "risk", "provider", "group", "eligible", "ineligible", "duration",
                "justification", "ticket", "approval", "auto_approve", "exception", "description", "removed_holder"}


@dataclass(frozen=True)
class Step:
    kind: StepKind
    group: str | None = None
    n: int = 1
    user: str | None = None
    line: int | None = field(default=None, compare=False)  # where the step is written, for `policy check`

    def label(self) -> str:
        if self.kind in ("manager", "owner"):
            return self.kind
        if self.kind == "n_of":
            return f"{self.n} of {self.group}"
        if self.kind == "user":
            return f"user {self.user}"
        return f"{self.kind} {self.group}"


@dataclass(frozen=True)
class Rule:
    attrs: Mapping[str, Any]
    max_duration: timedelta | None = None
    # member_of counts a membership held only through an active grant of this bot (opt-in)
    count_granted: bool = False
    line: int | None = field(default=None, compare=False)  # where the rule is written, for warnings

    def describe(self) -> str:
        parts = [f"{k}={'|'.join(map(str, v)) if isinstance(v, list | tuple) else v}" for k, v in self.attrs.items()]
        if self.max_duration is not None:
            parts.append(f"max_duration={format_duration(self.max_duration)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class TicketRule:
    required: bool
    pattern: str | None


@dataclass(frozen=True)
class ExceptionRule:
    approval: tuple[Step, ...]
    max_duration: timedelta


@dataclass(frozen=True)
class Reminders:
    remind_after: timedelta = timedelta(hours=4)
    escalate_after: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Schedule:
    sweep_interval: timedelta = timedelta(seconds=30)
    drift_cron: str = "0 6 * * *"
    expiry_warning: timedelta = timedelta(minutes=30)
    termination_sla: timedelta = timedelta(hours=24)
    retry_budget: timedelta = timedelta(minutes=10)
    # how long a process that claimed a provider call owns it before another may run it again: at
    # least as long as one call can take (a Graph batch keeps retrying for up to 40 s)
    provider_lease: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class EvidenceSchedule:
    """Evidence that arrives by itself: the quarter's pack, and a weekly CSV of who held some profiles."""

    quarterly: bool = False
    weekly_admin_export: tuple[str, ...] = ()
    deliver_to: str = "evidence"  # a folder, or "sharepoint"

    @property
    def enabled(self) -> bool:
        return self.quarterly or bool(self.weekly_admin_export)


@dataclass(frozen=True)
class Safety:
    """The safety block (SPEC §3.6): brakes on bulk removals and bulk re-routes, patience with people not found."""

    max_removals: int = 25
    max_reroutes: int = 25  # manager steps one sweep may pass to new managers (handlers/compliance/reroute_brake.py)
    unknown_grace: timedelta = timedelta(hours=1)
    drift_sla: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Profile:
    id: str
    title: str
    owner: str
    risk: Literal["low", "medium", "high"]
    provider: Literal["directory", "entra", "okta"]
    group: str
    eligible: tuple[Rule, ...]
    ineligible: tuple[Rule, ...]
    default_duration: timedelta
    max_duration: timedelta
    justification_required: bool
    ticket: TicketRule | None
    approval: tuple[Step, ...]
    auto_approve: tuple[Rule, ...]
    exception: ExceptionRule | None
    # a grant holder found removed from the group behind the bot's back (SPEC §3.6): put back while the
    # grant runs ("readd"), or end the grant ("end": grant.revoked reason drift)
    removed_holder: Literal["readd", "end"] = "readd"


@dataclass(frozen=True)
class Policy:
    version: str
    sha256: str
    raw: bytes = field(repr=False)
    approver_groups: Mapping[str, tuple[str, ...]]
    security_team: str | None
    profiles: tuple[Profile, ...]
    reminders: Reminders = Reminders()
    schedule: Schedule = Schedule()
    reviews: tuple[Review, ...] = ()
    safety: Safety = Safety()

    def review(self, review_id: str) -> Review | None:
        key = review_id.strip().lower()
        return next((r for r in self.reviews if r.id == key), None)
    evidence: EvidenceSchedule = EvidenceSchedule()

    def profile(self, profile_id: str) -> Profile | None:
        key = profile_id.strip().lower()
        return next((p for p in self.profiles if p.id == key), None)

    def security_members(self) -> frozenset[str]:
        return frozenset(self.approver_groups.get(self.security_team or "", ()))

    def closest_profiles(self, name: str, n: int = 3) -> list[str]:
        return difflib.get_close_matches(name.strip().lower()[:100], [p.id for p in self.profiles], n=n, cutoff=0.5)


@dataclass(frozen=True)
class PolicyIssue:
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.field}: {self.message}"


class PolicyError(Exception):
    def __init__(self, issues: list[PolicyIssue]) -> None:
        super().__init__("\n".join(str(i) for i in issues))
        self.issues = issues


def check_policy(raw: bytes) -> list[PolicyIssue]:
    """Every problem of a policy file, each with its line and field (empty when valid)."""
    try:
        parse_policy(raw)
    except PolicyError as exc:
        return exc.issues
    return []


_parses = [0]


def policy_parses() -> int:
    """How many policy texts this process has parsed (start-up, ``policy check``, older versions read back)."""
    return _parses[0]


def parse_policy(raw: bytes, source: str = "<policy>", *, stored: bool = False) -> Policy:
    """The policy in these bytes; raises :class:`PolicyError` with every problem at once.

    ``stored``: a version the store recorded while it was in force (the one that judges a request submitted under
    it, the evidence pack's figures). It is read as it was accepted then: a check that only guides the author of a
    new file (an approval chain no requester could finish, refused since) does not make it unreadable, which
    would have judged its requests by the policy in force and left its grants out of the pack's checks. What
    makes a file meaningless (a wrong type, an unknown step) still fails."""
    from handlers.policy_check import build_policy

    _parses[0] += 1
    return build_policy(raw, source, stored=stored)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    try:
        raw = read_regular(path)
    except OSError as exc:
        raise PolicyError([PolicyIssue(None, str(path), f"cannot read the policy file ({exc.strerror})")]) from None
    return parse_policy(raw, str(path))
