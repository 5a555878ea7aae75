"""Compliance reports: drift, terminations, and who has a profile (text, CSV or JSON)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any, Protocol

from handlers.audit import format_ts
from handlers.compliance.drift_report import DRIFT_COLUMNS, finding_rows
from handlers.context import Deps
from handlers.records import HOLDING_STATES

TERMINATION_COLUMNS = ["user", "detected_at", "grants", "memberships", "revoked_at", "hours_to_revoke", "within_sla"]
ROLLUP_COLUMNS = ["month", "leavers", "within_sla", "breached", "pending"]
ACCESS_COLUMNS = ["request_id", "user", "profile", "kind", "provider", "group", "started_at", "expires_at",
                  "approved_by", "policy_version"]


class ReportSource(Protocol):
    def drift_findings(self) -> AsyncIterator[dict[str, Any]]: ...

    def events_of_type(self, *types: str) -> AsyncIterator[dict[str, Any]]: ...


async def drift_rows(source: ReportSource) -> list[dict[str, Any]]:
    """Every drift finding with its resolution, who chose it, the request behind it and the hours it took
    (the same derivation as the evidence pack's report.html)."""
    return finding_rows([e async for e in source.events_of_type("drift.detected", "drift.resolved")])


__all__ = ["DRIFT_COLUMNS", "drift_rows"]


class TerminationRows:
    """One row per leaver, fed the audit events in order: the grants revoked and the other memberships removed
    (SPEC §3.6), with the hours from the first sweep that saw them inactive to the last of those removals. The
    one reckoning of the termination SLA: ``report terminations``, the dashboard and the pack's report.html."""

    TYPES = ("user.terminated", "grant.revoked", "membership.removed")

    def __init__(self, sla_hours: float, limit: int = 10_000) -> None:
        self.sla_hours, self.limit = sla_hours, limit
        self.rows: list[dict[str, Any]] = []
        self._by_grant: dict[str, dict[str, Any]] = {}
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}  # (user, "provider/group") -> row

    def event(self, e: dict[str, Any]) -> None:
        data = e.get("data") or {}
        if e["type"] == "user.terminated":
            if len(self.rows) >= self.limit:
                return
            detected = _at(e["ts"]) - timedelta(hours=float(data.get("inactive_hours") or 0))
            row = {"user": data.get("user"), "detected_at": format_ts(detected),
                   "grants": ";".join(data.get("grants") or []), "memberships": ";".join(data.get("memberships") or []),
                   "revoked_at": "", "hours_to_revoke": "", "within_sla": "yes"}
            self.rows.append(row)
            for ref in data.get("grants") or []:
                self._by_grant[ref] = row
            for m in data.get("memberships") or []:
                self._waiting[(str(data.get("user")), m)] = row
        elif e["type"] == "grant.revoked" and data.get("reason") == "terminated" \
                and e.get("request_id") in self._by_grant:
            _removed(self._by_grant.pop(e["request_id"]), e["ts"], self.sla_hours)
        elif e["type"] == "membership.removed" and data.get("reason") == "terminated":
            row = self._waiting.pop((str(data.get("user")), f"{data.get('provider')}/{data.get('group')}"), None)
            if row is not None:
                _removed(row, e["ts"], self.sla_hours)

    def done(self) -> list[dict[str, Any]]:
        """The rows, a leaver still waiting for a removal marked ``pending``."""
        waiting = [*self._by_grant.values(), *self._waiting.values()]
        for row in self.rows:
            if any(r is row for r in waiting):
                row["within_sla"] = "pending"  # a removal has not happened yet
        return self.rows


async def termination_rows(source: ReportSource, sla_hours: float) -> list[dict[str, Any]]:
    """One row per leaver (see :class:`TerminationRows`)."""
    rows = TerminationRows(sla_hours, limit=10**9)
    async for e in source.events_of_type(*TerminationRows.TYPES):
        rows.event(e)
    return rows.done()


def _removed(row: dict[str, Any], ts: str, sla_hours: float) -> None:
    if row["revoked_at"] and _at(row["revoked_at"]) >= _at(ts):
        return
    row["revoked_at"] = ts
    hours = (_at(ts) - _at(row["detected_at"])).total_seconds() / 3600
    row["hours_to_revoke"] = f"{hours:.2f}"
    row["within_sla"] = "yes" if hours <= sla_hours else "no"


def termination_rollup(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The monthly roll-up of the termination SLA: leavers detected per month, within it or not."""
    months: dict[str, dict[str, Any]] = {}
    for row in rows:
        month = str(row["detected_at"])[:7]
        entry = months.setdefault(month, {"month": month, "leavers": 0, "within_sla": 0, "breached": 0,
                                          "pending": 0})
        entry["leavers"] += 1
        entry[{"yes": "within_sla", "no": "breached"}.get(row["within_sla"], "pending")] += 1
    return [months[m] for m in sorted(months)]


async def access_rows(deps: Deps, profile: str | None) -> list[dict[str, Any]]:
    """The active grants of one profile, or of every profile when ``profile`` is None."""
    async with deps.store.read() as repo:
        records = await repo.find_requests(profile=profile, states=HOLDING_STATES)
        out = []
        for r in records:
            approvers = [d.approver for d in await repo.decisions(r.id or 0) if d.decision == "approved"]
            out.append({"request_id": r.ref, "user": r.requester, "profile": r.profile, "kind": r.kind,
                        "provider": r.provider, "group": r.group,
                        "started_at": format_ts(r.started_at) if r.started_at else "",
                        "expires_at": format_ts(r.expires_at) if r.expires_at else "",
                        "approved_by": ";".join(dict.fromkeys(approvers)) or "auto-approved",
                        "policy_version": r.policy_version})
    return out


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # as the evidence pack's cells (verify_pack.py's ``cell``)


_SIGNED_NUMBER = re.compile(r"[+-][0-9]+(?:\.[0-9]+)?")


def _csv_cell(value: Any) -> Any:
    """A text a spreadsheet would run as a formula (someone's justification, a name) is written behind a quote; a
    signed number (a trend's ``+1``) is a number, not a formula, and stays as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _SIGNED_NUMBER.fullmatch(value):
        return "'" + value
    return value


def render(rows: list[dict[str, Any]], columns: list[str], fmt: str, title: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
        return buf.getvalue()
    if not rows:
        return f"{title}: none.\n"
    lines = [f"{title}:"]
    lines += ["  " + " | ".join(f"{c}={row.get(c, '')}" for c in columns if row.get(c) not in (None, ""))
              for row in rows]
    return "\n".join(lines) + "\n"
