"""Evidence that arrives by itself: the policy's ``evidence:`` block, what is due, and delivery with retries.

At each quarter's end the pack of the quarter is built; each week a CSV of who held the listed
profiles goes to the security team. Due deliveries are rows in the store (one per kind, period and
target), so a restart or a second replica never loses or repeats one. A delivery that fails is
retried with growing delays and reported each time (``evidence.delivery_failed`` and a notice to
the security team); one that lands records ``evidence.delivered`` with the item's id and hash. Both notices
are written to the outbox (handlers/outbox.py) with the record that tells it, and sent after it: a process
stopped in between leaves them for the next delivery of notices, and a send that fails is tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from handlers.audit import format_ts
from handlers.context import SYSTEM, Deps
from handlers.evidence import Period
from handlers.outbox import deliver_pending
from handlers.policy import EvidenceSchedule
from handlers.ports import Notice

FIRST_RETRY = timedelta(minutes=5)
LONGEST_RETRY = timedelta(hours=6)
# How long a process owns a delivery it took (building and uploading it); one that stopped or died meanwhile
# is taken again once this has run out, so a period is delivered once and never lost.
DELIVERY_LEASE = timedelta(hours=1)
QUARTERLY = "quarterly"
WEEKLY = "weekly"


# -- the policy block (called by the policy validator) ----------------------------------------------
def check_evidence(c: Any, data: Any, profile_ids: set[str]) -> EvidenceSchedule:
    """``evidence: {quarterly, weekly_admin_export, deliver_to}``, every problem named by its line."""
    raw = data.get("evidence")
    if raw is None:
        return EvidenceSchedule()
    if not isinstance(raw, dict):
        c.err(c.line_of(data, "evidence"), "evidence",
              "must be {quarterly: true, weekly_admin_export: [profiles], deliver_to: FOLDER|sharepoint}")
        return EvidenceSchedule()
    c.unknown_keys(raw, {"quarterly", "weekly_admin_export", "deliver_to"}, "evidence.")
    quarterly = raw.get("quarterly", False)
    if not isinstance(quarterly, bool):
        c.err(c.line_of(raw, "quarterly"), "evidence.quarterly", "must be true or false")
        quarterly = False
    weekly = raw.get("weekly_admin_export")
    ids: list[str] = []
    if weekly is not None and not isinstance(weekly, list):
        c.err(c.line_of(raw, "weekly_admin_export"), "evidence.weekly_admin_export", "must be a list of profile ids")
    for i, item in enumerate(weekly if isinstance(weekly, list) else []):
        key = item.strip().lower() if isinstance(item, str) else None
        if key not in profile_ids:
            import difflib

            close = difflib.get_close_matches(str(item), sorted(profile_ids), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            c.err(c.line_of(weekly, i), f"evidence.weekly_admin_export[{i}]", f"no profile {item!r}{hint}")
        elif key:
            ids.append(key)
    target = raw.get("deliver_to", EvidenceSchedule.deliver_to)
    if not isinstance(target, str) or not target.strip():
        c.err(c.line_of(raw, "deliver_to"), "evidence.deliver_to", "must be a folder path or sharepoint")
        target = EvidenceSchedule.deliver_to
    return EvidenceSchedule(quarterly=quarterly, weekly_admin_export=tuple(dict.fromkeys(ids)),
                            deliver_to=target.strip())


# -- calendar -------------------------------------------------------------------------------------
def last_quarter(now: datetime) -> Period:
    """The last quarter that has ended by ``now`` (UTC)."""
    first = date(now.year, 3 * ((now.month - 1) // 3) + 1, 1)
    end = first - timedelta(days=1)
    return Period(date(end.year, 3 * ((end.month - 1) // 3) + 1, 1), end)


def last_week(now: datetime) -> Period:
    """The last ISO week (Monday to Sunday) that has ended by ``now`` (UTC)."""
    monday = now.astimezone(UTC).date() - timedelta(days=now.astimezone(UTC).weekday())
    return Period(monday - timedelta(days=7), monday - timedelta(days=1))


def due(schedule: EvidenceSchedule, now: datetime) -> list[tuple[str, Period]]:
    """The latest period of each kind the policy asks for; never a backlog of older ones."""
    out = []
    if schedule.quarterly:
        out.append((QUARTERLY, last_quarter(now)))
    if schedule.weekly_admin_export:
        out.append((WEEKLY, last_week(now)))
    return out


def file_name(kind: str, period: Period) -> str:
    if kind == QUARTERLY:
        return f"evidence-{period.start}-{period.end}.zip"
    return f"admin-access-{period.start}-{period.end}.csv"


# -- ports ----------------------------------------------------------------------------------------
@dataclass
class DeliveryRecord:
    kind: str
    period_from: str
    period_to: str
    target: str
    created_at: datetime
    status: str = "pending"  # pending | delivered
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    file_name: str | None = None
    sha256: str | None = None
    item_id: str | None = None
    size: int | None = None
    delivered_at: datetime | None = None
    id: int | None = None

    @property
    def period(self) -> Period:
        return Period.parse(self.period_from, self.period_to)


@dataclass(frozen=True)
class Delivered:
    item_id: str  # where the file now is: a path, or the drive item's id
    sha256: str
    size: int
    location: str = ""  # a URL or path people can open
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the drive's own hash


class EvidenceTarget(Protocol):
    name: str

    async def deliver(self, path: Path, name: str) -> Delivered: ...


class EvidenceBuilder(Protocol):
    async def pack(self, period: Period, folder: Path) -> Path: ...

    async def admin_csv(self, period: Period, profiles: Sequence[str], folder: Path) -> Path: ...


class DeliveryTx(Protocol):
    async def add(self, record: DeliveryRecord) -> bool:
        """Insert unless that kind, period and target is there already; True when inserted."""
        ...

    async def due(self, now: datetime) -> list[DeliveryRecord]: ...

    async def save(self, record: DeliveryRecord) -> None: ...

    async def append(self, type: str, *, actor: str, ts: datetime, data: dict[str, Any] | None = None,
                     request_id: str | None = None, profile: str | None = None) -> Any: ...

    async def queue_notices(self, notices: Sequence[Notice], at: datetime) -> None:
        """Write notices to the outbox in this transaction (handlers/outbox.py)."""
        ...


class DeliveryStore(Protocol):
    def write(self) -> AbstractAsyncContextManager[DeliveryTx]: ...


# -- the run --------------------------------------------------------------------------------------
def retry_delay(attempts: int) -> timedelta:
    return min(LONGEST_RETRY, FIRST_RETRY * (2 ** max(0, attempts - 1)))


async def run_due(deps: Deps, store: DeliveryStore, builder: EvidenceBuilder, target: EvidenceTarget,
                  scratch: Path) -> list[str]:
    """Schedule what is due, then build and deliver every delivery whose time has come. Lines for people."""
    schedule = deps.policy.evidence
    now = deps.now()
    lines: list[str] = []
    async with store.write() as tx:
        for kind, period in due(schedule, now):
            record = DeliveryRecord(kind=kind, period_from=period.start.isoformat(), period_to=period.end.isoformat(),
                                    target=target.name, created_at=now, file_name=file_name(kind, period))
            await tx.add(record)
        pending = await tx.due(now)
        for record in pending:  # claimed: another process (a worker, `accessbot sweep`) finds it not due meanwhile
            record.next_attempt_at = now + DELIVERY_LEASE
            await tx.save(record)
    for record in pending:
        lines.append(await _deliver(deps, store, builder, target, record, scratch))
    return lines


async def _deliver(deps: Deps, store: DeliveryStore, builder: EvidenceBuilder, target: EvidenceTarget,
                   record: DeliveryRecord, scratch: Path) -> str:
    period, name = record.period, record.file_name or file_name(record.kind, record.period)
    what = f"{record.kind} evidence {period.start}..{period.end}"
    try:
        if record.kind == QUARTERLY:
            path = await builder.pack(period, scratch)
        else:
            path = await builder.admin_csv(period, deps.policy.evidence.weekly_admin_export, scratch)
        delivered = await target.deliver(path, name)
    except Exception as exc:  # every failure is retried and reported, whatever raised it
        now = deps.now()
        record.attempts += 1
        record.last_error = f"{type(exc).__name__}: {exc}"[:500]
        record.next_attempt_at = now + retry_delay(record.attempts)
        async with store.write() as tx:
            await tx.save(record)
            await tx.append("evidence.delivery_failed", actor=SYSTEM, ts=now, data={
                "kind": record.kind, "from": record.period_from, "to": record.period_to, "target": record.target,
                "file": name, "attempt": record.attempts, "error": record.last_error,
                "next_attempt_at": format_ts(record.next_attempt_at)})
            text = (f"Delivering {what} to {record.target} failed (attempt {record.attempts}): {record.last_error}. "
                    f"Trying again at {format_ts(record.next_attempt_at)}.")
            await tx.queue_notices([Notice(m, "failure", text) for m in sorted(deps.policy.security_members())], now)
        await deliver_pending(deps)
        return text
    now = deps.now()
    record.status, record.delivered_at, record.attempts = "delivered", now, record.attempts + 1
    record.item_id, record.sha256, record.size = delivered.item_id, delivered.sha256, delivered.size
    record.last_error, record.next_attempt_at = None, None
    async with store.write() as tx:
        await tx.save(record)
        await tx.append("evidence.delivered", actor=SYSTEM, ts=now, data={
            "kind": record.kind, "from": record.period_from, "to": record.period_to, "target": record.target,
            "file": name, "item_id": delivered.item_id, "sha256": delivered.sha256, "size": delivered.size,
            "location": delivered.location, **delivered.extra})
        text = (f"Delivered {what}: {name} to {delivered.location or delivered.item_id} "
                f"(sha256 {delivered.sha256[:12]}…).")
        await tx.queue_notices([Notice(m, "info", text) for m in sorted(deps.policy.security_members())], now)
    await deliver_pending(deps)
    return text

