"""The store against the chain, before a pack is written (SPEC §6): the pack's rows come from the
audit events, and a database row that says otherwise stops the export, named, so that an edited
justification or a deleted request is never passed over in silence.

Times: the store keeps the instant a handler judged (``deps.now()``), the chain the instant it
recorded (``ts``) and, when those were more than a second apart, the judged one in ``data.as_of``.
A stored time matches when it equals ``data.as_of`` or lies within two seconds of ``ts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from handlers.audit import format_ts

ENDED_STATES = frozenset({"expired", "released", "revoked"})
REQUEST_FIELDS = ("requester", "profile", "kind", "duration", "justification", "ticket", "policy_version",
                  "policy_sha256", "state")
GRANT_FIELDS = (("provider", "provider"), ("group_name", "group"))
TRACKED = frozenset({"request.submitted", "grant.provisioned", "approval.granted", "approval.denied"})


class CheckSource(Protocol):
    async def request_records(self, numbers: Sequence[int]) -> dict[int, dict[str, Any]]: ...

    async def decision_records(self, numbers: Sequence[int]) -> dict[int, list[tuple[Any, ...]]]: ...

    async def request_numbers_in(self, start: datetime, end: datetime) -> set[int]: ...

    async def submitted_in_chain(self, request_ids: Sequence[str]) -> set[str]: ...

    async def changed_after(self, seq: int, request_ids: Sequence[str]) -> set[str]: ...


def tracking(rows_class: type) -> type:
    """The rules' fold (``verify_pack.Rows``), also keeping what the store is checked against."""

    class Tracked(rows_class):  # type: ignore[misc, valid-type]
        def feed(self, event: dict[str, Any]) -> Any:
            row = super().feed(event)
            kind = event.get("type")
            if kind not in TRACKED:
                return row
            rid = event.get("request_id")
            r = self.requests.get(rid) if rid else None
            if r is None:
                return row
            data = event.get("data") or {}
            if kind == "request.submitted":
                r["_submitted_as_of"] = data.get("as_of")
            elif kind == "grant.provisioned":
                r["_started_as_of"] = data.get("as_of")
            elif "submitted_at" in r:
                # a decision; only a request submitted in the chain is held against the store (see contradictions)
                decision = "approved" if kind == "approval.granted" else "denied"
                r.setdefault("_decisions", []).append(
                    (r["round"], data.get("step"), event.get("actor"), decision, data.get("comment")))
            return row

    return Tracked


def _time(value: datetime | None) -> str | None:
    return format_ts(value) if value is not None else None


def time_matches(stored: datetime | None, ts: str | None, as_of: str | None) -> bool:
    """Whether a stored time is the one an event recorded: ``data.as_of``, or within two seconds of ``ts``."""
    if stored is None or ts is None:
        return stored is None and ts is None
    if as_of and format_ts(stored) == as_of:
        return True
    recorded = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    return abs(stored - recorded) <= timedelta(seconds=2)


def _number(request_id: str) -> int:
    """The rules' ``request_number``: the digits after the last "-" (ASCII 0-9, at most 19), 0 without them."""
    digits = request_id.rpartition("-")[2]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 19 else 0


def compare(rid: str, r: dict[str, Any], db: dict[str, Any] | None, decisions: list[tuple[Any, ...]]) -> str | None:
    """The first way the stored request contradicts the chain's, or None."""
    if db is None:
        return f"requests.csv {rid}: in the audit chain but not in the database"
    for name in REQUEST_FIELDS:
        if (db.get(name) or None) != (r.get(name) or None):
            return (f"requests.csv {rid}: {name} in the database is {db.get(name)!r}, "
                    f"the audit chain says {r.get(name)!r}")
    if not time_matches(db["submitted_at"], r.get("submitted_at"), r.get("_submitted_as_of")):
        return (f"requests.csv {rid}: submitted_at in the database is {_time(db['submitted_at'])}, "
                f"the audit chain says {r.get('submitted_at')}")
    if r.get("started_at"):
        for column, key in GRANT_FIELDS:
            if db.get(column) != r.get(key):
                return f"grants.csv {rid}: {key} in the database is {db.get(column)!r}, the audit chain says {r[key]!r}"
        if not time_matches(db["started_at"], r["started_at"], r.get("_started_as_of")):
            return (f"grants.csv {rid}: started_at in the database is {_time(db['started_at'])}, "
                    f"the audit chain says {r['started_at']}")
        if _time(db["expires_at"]) != r.get("expires_at"):
            return (f"grants.csv {rid}: expires_at in the database is {_time(db['expires_at'])}, "
                    f"the audit chain says {r.get('expires_at')}")
    if r.get("state") in ENDED_STATES and r.get("started_at"):
        if not time_matches(db["ended_at"], r.get("ended_at"), r.get("ended_as_of")):
            return (f"grants.csv {rid}: ended_at in the database is {_time(db['ended_at'])}, "
                    f"the audit chain says {r.get('ended_at')}")
        if db.get("end_reason") != r.get("end_reason"):
            return (f"grants.csv {rid}: end_reason in the database is {db.get('end_reason')!r}, "
                    f"the audit chain says {r.get('end_reason')!r}")
    chain = r.get("_decisions", [])
    if [tuple(d) for d in decisions] != [tuple(d) for d in chain]:
        for n, (stored, recorded) in enumerate(zip(decisions, chain, strict=False), start=1):
            if tuple(stored) != tuple(recorded):
                return (f"approvals.csv {rid}: decision {n} in the database is {tuple(stored)!r}, "
                        f"the audit chain says {tuple(recorded)!r}")
        return (f"approvals.csv {rid}: the database holds {len(decisions)} decisions, "
                f"the audit chain {len(chain)}")
    return None


async def contradictions(source: CheckSource, requests: Iterable[dict[str, Any]], *, start: datetime,
                         end: datetime, head_seq: int, batch: int = 500) -> list[str]:
    """Every request the pack concerns against its stored row and decisions (``requests``: the
    chain's view of each, from all its events up to ``head_seq``, in request-number order); then
    every stored request of the period that the chain does not hold. Requests changed after
    ``head_seq`` are left alone. The store is read ``batch`` requests at a time."""
    in_window = await source.request_numbers_in(start, end)
    problems: list[str] = []
    pending: list[tuple[str, dict[str, Any]]] = []

    async def check() -> None:
        ids = [rid for rid, _ in pending]
        numbers = [_number(rid) for rid in ids]
        stored = await source.request_records(numbers)
        decisions = await source.decision_records(numbers)
        moving = await source.changed_after(head_seq, ids)
        for (rid, r), n in zip(pending, numbers, strict=True):
            if rid in moving:
                continue
            problem = compare(rid, r, stored.get(n), decisions.get(n, []))
            if problem:
                problems.append(problem)
        pending.clear()

    for r in requests:
        rid = r["request_id"]
        n = _number(rid)
        if n in in_window and rid == f"REQ-{n}":
            in_window.discard(n)
        if r.get("submitted_at"):
            pending.append((rid, r))
            if len(pending) >= batch:
                await check()
    if pending:
        await check()
    unknown = [f"REQ-{n}" for n in sorted(in_window)]
    if unknown:
        known = await source.submitted_in_chain(unknown)
        problems += [f"requests.csv {rid}: in the database but not in the audit chain"
                     for rid in unknown if rid not in known]
    return problems
