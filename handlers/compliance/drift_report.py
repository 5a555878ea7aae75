"""Drift findings as an auditor reads them: detection → decision → removal, one row per finding.

Derived from the chain alone (``drift.detected``, ``drift.resolved``), by ``report drift`` over every
event and by the evidence pack's ``report.html`` over the period's, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

DRIFT_COLUMNS = ["id", "provider", "group", "user", "kind", "first_seen", "status", "resolution", "resolved_by",
                 "request_id", "resolved_at", "hours_to_resolution"]
BEFORE = "before the period"


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _when(e: dict[str, Any], data: dict[str, Any]) -> str:
    """When it happened: the instant it was judged as of (``data.as_of``) when that differs from the recording."""
    return str(data.get("as_of") or e["ts"])


def _key(data: dict[str, Any]) -> tuple[str, ...]:
    if data.get("id"):
        return (str(data["id"]),)
    return (str(data.get("provider", "")), str(data.get("group", "")), str(data.get("user", "")).lower(),
            "missing" if data.get("member") is False else "member")


def finding_rows(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per finding, in the order found. ``events`` are drift.detected / drift.resolved events in
    chain order, each {type, ts, actor?, data} (or the data flattened in, as the evidence figures keep them).

    ``resolved_by`` is the security team member who chose the remediation (``drift remove``, ``drift
    accept``), ``system`` for what the bot saw or did by itself; ``request_id`` the exception request of
    an accept, or the grant of a holder who was not a member.
    """
    rows: list[dict[str, Any]] = []
    open_rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for e in events:
        data = e.get("data") if isinstance(e.get("data"), dict) else e
        key = _key(data)
        if e["type"] == "drift.detected":
            row = {"id": data.get("id", ""), "provider": data.get("provider", ""), "group": data.get("group", ""),
                   "user": str(data.get("user", "")).lower(),
                   "kind": "missing" if data.get("member") is False else "member", "first_seen": _when(e, data),
                   "status": "open", "resolution": "", "resolved_by": "",
                   "request_id": data.get("request_id", "") if data.get("member") is False else "",
                   "resolved_at": "", "hours_to_resolution": ""}
            rows.append(row)
            open_rows[key] = row
        elif e["type"] == "drift.resolved":
            row = open_rows.pop(key, None)
            if row is None:  # found before these events begin
                row = {"id": data.get("id", ""), "provider": data.get("provider", ""), "group": data.get("group", ""),
                       "user": str(data.get("user", "")).lower(),
                       "kind": "missing" if data.get("member") is False else "member", "first_seen": BEFORE,
                       "request_id": ""}
                rows.append(row)
            row.update(status="resolved", resolution=data.get("resolution", ""),
                       resolved_by=data.get("by") or "system", resolved_at=_when(e, data),
                       request_id=data.get("request_id") or row.get("request_id", ""), hours_to_resolution="")
            if row["first_seen"] != BEFORE:
                hours = (_at(row["resolved_at"]) - _at(row["first_seen"])).total_seconds() / 3600
                row["hours_to_resolution"] = f"{hours:.2f}"
    return rows
