"""Compliance reports: drift, terminations, and who has a profile (text, CSV or JSON)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from handlers.audit import format_ts
from handlers.context import Deps
from handlers.records import HOLDING_STATES

DRIFT_COLUMNS = ["provider", "group", "user", "first_seen", "resolved_at", "status"]
TERMINATION_COLUMNS = ["user", "detected_at", "grants", "revoked_at", "hours_to_revoke", "within_sla"]
ACCESS_COLUMNS = ["request_id", "user", "profile", "kind", "provider", "group", "started_at", "expires_at",
                  "approved_by", "policy_version"]


class ReportSource(Protocol):
    def drift_findings(self) -> AsyncIterator[dict[str, Any]]: ...

    def events_of_type(self, *types: str) -> AsyncIterator[dict[str, Any]]: ...


async def drift_rows(source: ReportSource) -> list[dict[str, Any]]:
    return [{**d, "status": "resolved" if d.get("resolved_at") else "open"} async for d in source.drift_findings()]


async def termination_rows(source: ReportSource, sla_hours: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    by_grant: dict[str, dict[str, Any]] = {}
    async for e in source.events_of_type("user.terminated", "grant.revoked"):
        data = e["data"]
        if e["type"] == "user.terminated":
            row = {"user": data.get("user"), "detected_at": e["ts"], "grants": ";".join(data.get("grants") or []),
                   "revoked_at": "", "hours_to_revoke": "", "within_sla": "yes"}
            rows.append(row)
            for ref in data.get("grants") or []:
                by_grant[ref] = row
        elif data.get("reason") == "terminated" and e.get("request_id") in by_grant:
            row = by_grant[e["request_id"]]
            row["revoked_at"] = e["ts"]
            hours = (_at(e["ts"]) - _at(row["detected_at"])).total_seconds() / 3600
            row["hours_to_revoke"] = f"{hours:.2f}"
            row["within_sla"] = "yes" if hours <= sla_hours else "no"
    return rows


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


def render(rows: list[dict[str, Any]], columns: list[str], fmt: str, title: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if not rows:
        return f"{title}: none.\n"
    lines = [f"{title}:"]
    lines += ["  " + " | ".join(f"{c}={row.get(c, '')}" for c in columns if row.get(c) not in (None, ""))
              for row in rows]
    return "\n".join(lines) + "\n"
