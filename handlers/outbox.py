"""The outbox of unattended notices: reminders, escalations, expiry warnings and expiries a sweep decided.

A sweep writes the notice in the same transaction that records the decision (``approval.reminded``, a
``warned_expiry``, ``grant.expired``), then :func:`deliver_pending` sends what is pending and marks it. A
process that dies between the two (SIGKILL, a sweep cancelled at a stop) leaves the notice pending: the next
sweep, in this process or another, sends it. A process takes the notices it sends under the store's write lock
and owns them for ``NOTICE_LEASE`` (as evidence deliveries are taken, handlers/evidence_schedule.py): two
processes never send the same one, and one taken by a process that died is taken again once its lease ran out.

A notice no channel could deliver is tried again with growing delays; after ``MAX_ATTEMPTS`` it is marked
undeliverable and recorded (``notice.undeliverable``), and the security team is told.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

from handlers.context import SYSTEM, Deps
from handlers.ports import Notice
from handlers.records import OutboxNotice, req_id

# How long a process owns the notices it took to send; longer than any send (the channels' own retries included).
NOTICE_LEASE = timedelta(minutes=2)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
MAX_ATTEMPTS = 6  # sent, or undeliverable, within about an hour of the first attempt
BATCH = 200


@runtime_checkable
class Sender(Protocol):
    """A notifier that says how each notice went (the channels do; a plain ``Notifier`` is taken at its word)."""

    async def send(self, notices: list[Notice]) -> list[str | None]:
        """Deliver now; for each notice None when it was sent (or the channel has no way to reach the person),
        else what went wrong."""
        ...


def retry_delay(attempts: int) -> timedelta:
    return min(LONGEST_RETRY, FIRST_RETRY * (2 ** max(0, attempts - 1)))


async def deliver_pending(deps: Deps) -> int:
    """Send every pending notice that is due, and mark each sent, to be retried, or undeliverable. How many were
    sent."""
    sent = 0
    while True:
        now = deps.now()
        async with deps.store.write() as repo:
            taken = await repo.claim_notices(now, now + NOTICE_LEASE, BATCH)
        if not taken:
            return sent
        notices = [Notice(n.recipient, n.kind, n.text, n.request_id, n.view) for n in taken]
        notifier = deps.notifier
        if isinstance(notifier, Sender):
            outcomes = await notifier.send(notices)
        else:
            await notifier.notify(notices)
            outcomes = [None] * len(notices)
        sent += await _record(deps, taken, outcomes)
        if len(taken) < BATCH:
            return sent


async def _record(deps: Deps, taken: list[OutboxNotice], outcomes: list[str | None]) -> int:
    now = deps.now()
    tell: list[Notice] = []
    async with deps.store.write() as repo:
        for notice, error in zip(taken, outcomes, strict=True):
            notice.attempts += 1
            if error is None:
                notice.status, notice.next_attempt_at, notice.last_error = "sent", None, None
            elif notice.attempts >= MAX_ATTEMPTS:
                notice.status, notice.next_attempt_at, notice.last_error = "undeliverable", None, error[:500]
                await repo.append("notice.undeliverable", actor=SYSTEM, ts=now,
                                  request_id=req_id(notice.request_id) if notice.request_id else None, data={
                                      "recipient": notice.recipient, "kind": notice.kind, "text": notice.text,
                                      "attempts": notice.attempts, "error": notice.last_error})
                if notice.kind != "failure":  # telling the team of an undeliverable failure notice would not end
                    tell += [Notice(m, "failure", f"A {notice.kind} notice to {notice.recipient} could not be "
                                    f"delivered after {notice.attempts} attempts ({notice.last_error}): "
                                    f"{notice.text}", notice.request_id)
                             for m in sorted(deps.policy.security_members())]
            else:
                notice.last_error = error[:500]
                notice.next_attempt_at = now + retry_delay(notice.attempts)
            await repo.save_notice(notice, now)
        await repo.queue_notices(tell, now)
    return sum(1 for n in taken if n.status == "sent")
