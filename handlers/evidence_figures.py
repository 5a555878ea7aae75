"""What report.html shows, gathered from the very rows and events the pack's files hold, so that the
readable report and the files never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from handlers.compliance.drift_report import finding_rows
from handlers.evidence_reviews import REVIEW_EVENTS, ReviewFigures
from handlers.policy import Policy
from handlers.reports import TerminationRows

LIMIT = 1000  # rows of one kind the report lists (the files hold them all)
REFUSALS = frozenset({"request.refused", "approval.refused", "command.refused"})
# what removals.csv reads (verify_pack.py REMOVAL_TYPES, whose RemovalRows writes it: tests hold them equal)
REMOVAL_TYPES = frozenset({"user.terminated", "grant.revoked", "membership.removed", "drift.detected",
                           "request.submitted", "automation.paused", "automation.resumed"})
INTERESTING = frozenset({"policy.loaded", "user.terminated", "grant.revoked", "drift.detected", "drift.resolved",
                         "request.submitted", "approval.granted", *REFUSALS, *REMOVAL_TYPES, *REVIEW_EVENTS})


def at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass
class GrantLine:
    """One row of grants.csv, with what an auditor checks first."""

    row: dict[str, str]
    flags: list[str]


@dataclass
class Figures:
    period: Any  # handlers.evidence.Period
    requests: int = 0
    by_profile: dict[str, dict[str, int]] = field(default_factory=dict)
    per_week: dict[str, int] = field(default_factory=dict)
    approve_seconds: list[float] = field(default_factory=list)
    grants: int = 0
    grant_lines: list[GrantLine] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)  # flag -> request ids (every grant, not only listed)
    exceptions: list[dict[str, str]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    refusal_counts: dict[str, int] = field(default_factory=dict)
    leavers: TerminationRows = field(default_factory=lambda: TerminationRows(24.0))  # as `report terminations`
    drift: list[dict[str, Any]] = field(default_factory=list)
    removals: Any = None  # removals.csv (SPEC §6): verify_pack.py's RemovalRows, the rules it checks it by
    policy_versions: list[tuple[str, str]] = field(default_factory=list)
    policy_shas: set[str] = field(default_factory=set)
    chain_ok: bool | None = None
    policies: dict[str, Policy] = field(default_factory=dict)
    generated_at: datetime | None = None
    reviews: ReviewFigures = field(default_factory=ReviewFigures)
    _submitted: dict[str, datetime] = field(default_factory=dict)

    @property
    def terminations(self) -> list[dict[str, Any]]:
        """The period's leavers, as ``report terminations`` reckons them (report.html says within the SLA
        from ``hours_to_revoke``)."""
        return self.leavers.done()

    def drift_findings(self) -> list[dict[str, Any]]:
        """The period's drift findings with their resolution, as ``report drift`` derives them."""
        return finding_rows(self.drift)

    # -- rows of the CSV files ------------------------------------------------------------------
    def request_row(self, row: dict[str, str]) -> None:
        self.requests += 1
        self.policy_shas.add(row["policy_sha256"])
        states = self.by_profile.setdefault(row["profile"], {})
        states[row["state"]] = states.get(row["state"], 0) + 1
        week = at(row["submitted_at"]).isocalendar()
        key = f"{week[0]}-W{week[1]:02d}"
        self.per_week[key] = self.per_week.get(key, 0) + 1

    def exception_row(self, row: dict[str, str]) -> None:
        if len(self.exceptions) < LIMIT:
            self.exceptions.append(row)

    def grant_row(self, row: dict[str, str]) -> None:
        self.grants += 1
        if row["policy_sha256"]:
            self.policy_shas.add(row["policy_sha256"])
        flags = self._flags(row)
        for flag in flags:
            self.flagged.setdefault(flag.split(":")[0], []).append(row["request_id"])
        if len(self.grant_lines) < LIMIT:
            self.grant_lines.append(GrantLine(row, flags))

    def _flags(self, row: dict[str, str]) -> list[str]:
        flags = []
        if row["kind"] == "exception":
            flags.append("exception")
        if row["auto_approved"]:
            flags.append("auto-approved")
        if not row["justification"]:
            flags.append("no justification")
        started, expires = row["started_at"], row["expires_at"]
        if started and expires:
            policy = self.policies.get(row["policy_sha256"])
            profile = policy.profile(row["profile"]) if policy else None
            if profile is not None and row["extensions"] == "0":
                limit = profile.exception.max_duration if row["kind"] == "exception" and profile.exception \
                    else profile.max_duration
                if at(expires) - at(started) > limit + timedelta(seconds=1):
                    flags.append("longer than the policy maximum")
            grace = policy.schedule.sweep_interval * 2 if policy else timedelta(minutes=1)
            held_until = at(row["ended_at"]) if row["ended_at"] else self._report_end()
            if held_until > at(expires) + grace:
                flags.append("held past its expiry")
        if row["ended_as_of"]:
            flags.append("as-of sweep")
        return flags

    def _report_end(self) -> datetime:
        return self.report_end

    @property
    def report_end(self) -> datetime:
        """The end of what the pack covers: the period's end, or when it was made if that is earlier."""
        end = self.period.end_at
        return min(end, self.generated_at) if self.generated_at else end

    # -- events of audit.jsonl -----------------------------------------------------------------
    def event(self, event: dict[str, Any]) -> None:
        kind, data, ts = event["type"], event.get("data") or {}, event["ts"]
        rid = event.get("request_id") or ""
        if kind in REMOVAL_TYPES and self.removals is not None:
            self.removals.event(event)
        if kind in REVIEW_EVENTS:
            self.reviews.event(event)
        elif kind == "request.submitted" and len(self._submitted) < 200_000:
            self._submitted[rid] = at(ts)
        elif kind == "approval.granted":
            submitted = self._submitted.get(rid)
            if submitted is not None and len(self.approve_seconds) < 200_000:
                self.approve_seconds.append((at(ts) - submitted).total_seconds())
        elif kind in REFUSALS:
            self.refusal_counts[kind] = self.refusal_counts.get(kind, 0) + 1
            if len(self.refusals) < LIMIT:
                what = data.get("rule") or data.get("reason") or ""
                if kind == "command.refused":
                    what = f"{data.get('command')}: {data.get('reason')}"
                self.refusals.append({"ts": ts, "type": kind, "actor": event.get("actor"), "request_id": rid,
                                      "profile": event.get("profile") or "", "what": what})
        elif kind == "policy.loaded" and data.get("sha256"):
            self.policy_shas.add(str(data["sha256"]))
        if kind in TerminationRows.TYPES:
            self.leavers.event(event)
        if kind in ("drift.detected", "drift.resolved") and len(self.drift) < LIMIT:
            self.drift.append({"type": kind, "ts": ts, **data})
