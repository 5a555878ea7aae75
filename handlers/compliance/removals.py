"""``removals.csv`` of the evidence pack (SPEC §6): every removal not caused by a grant's own expiry,
release or revoke, with the hours from detection to removal, derived from the audit events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from handlers.audit import format_ts

REMOVAL_COLUMNS = ["user", "provider", "group", "reason", "request_id", "detected_at", "removed_at", "hours"]
TYPES = frozenset({"user.terminated", "grant.revoked", "membership.removed", "drift.detected", "request.submitted",
                   "automation.paused", "automation.resumed"})
CONTEXT = frozenset({"request.submitted", "user.terminated", "drift.detected"})  # events before a period
# that say whose grant a removal in it ends, and when it was found
GRANT_REASONS = ("terminated", "ineligible", "review")  # a grant revoked for one of these is a removal


def _at(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


class RemovalRows:
    """Fed the audit events in order; ``rows`` are the removals seen so far."""

    def __init__(self, limit: int = 100_000) -> None:
        self.rows: list[dict[str, Any]] = []
        self.limit = limit
        self._detected: dict[str, str] = {}  # user -> when the first sweep saw them inactive
        self._grant_user: dict[str, str] = {}  # REQ-n -> the leaver holding it
        self._drift: dict[tuple[str, str, str], str] = {}  # (provider, group, user) -> detected_at
        self._held_since: dict[str, str] = {}  # reason -> when the safety brake first held removals of it
        self._to_release: dict[str, int] = {}  # reason -> held removals a resume let through, not yet seen

    def event(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        kind, ts = event["type"], event["ts"]
        if kind == "request.submitted" and event.get("request_id"):  # whose grant it will be (a drift accept is
            # filed by the security team for the member: ``requester``)
            self._grant_user[str(event["request_id"])] = str(data.get("requester") or event.get("actor") or "")
        elif kind == "automation.paused":
            self._held_since.setdefault(str(data.get("reason")), ts)
        elif kind == "automation.resumed":
            reason = str(data.get("reason"))
            if data.get("count"):  # a resume: the next ``count`` removals of that reason are the ones held
                self._to_release[reason] = int(data["count"])
            else:  # the pause ended by itself: what it held vanished
                self._held_since.pop(reason, None)
                self._to_release.pop(reason, None)
        elif kind == "user.terminated":
            user = str(data.get("user"))
            self._detected[user] = format_ts(_at(ts) - timedelta(hours=float(data.get("inactive_hours") or 0)))
            for ref in data.get("grants") or []:
                self._grant_user[ref] = user
        elif kind == "drift.detected" and data.get("member", True):
            self._drift[(str(data.get("provider")), str(data.get("group")), str(data.get("user")))] = ts
        elif kind == "grant.revoked" and str(data.get("reason", "")).split(":")[0] in GRANT_REASONS:
            user = self._grant_user.get(event.get("request_id") or "", "")
            reason = str(data.get("reason")).split(":")[0]
            detected = self._detected.get(user, "") if reason == "terminated" else \
                self._held_since.get(reason, ts) if reason == "ineligible" else ""  # a mover: found by the sweep
            # that revokes it, or by the first one the brake held it at
            self._add(user, data, reason, event.get("request_id") or "", detected, ts)
            if reason in self._to_release:
                self._to_release[reason] -= 1
                if self._to_release[reason] <= 0:  # what the pause held has run
                    self._to_release.pop(reason)
                    self._held_since.pop(reason, None)
        elif kind == "membership.removed":
            user = str(data.get("user"))
            reason = str(data.get("reason"))
            detected = self._detected.get(user, "") if reason == "terminated" else self._drift.get(
                (str(data.get("provider")), str(data.get("group")), user), "") if reason == "drift" else ""
            self._add(user, data, reason, str(data.get("request_id") or ""), detected, ts)

    def _add(self, user: str, data: dict[str, Any], reason: str, request_id: str, detected: str, removed: str) -> None:
        if len(self.rows) >= self.limit:
            return
        hours = f"{(_at(removed) - _at(detected)).total_seconds() / 3600:.2f}" if detected else ""
        self.rows.append({"user": user, "provider": data.get("provider", ""), "group": data.get("group", ""),
                          "reason": reason, "request_id": request_id, "detected_at": detected,
                          "removed_at": removed, "hours": hours})
