"""The outbox of unattended notices: reminders, escalations, expiry warnings and expiries a sweep decided.

A sweep writes the notice in the same transaction that records the decision (``approval.reminded``, a
``warned_expiry``, ``grant.expired``), then :func:`deliver_pending` sends what is pending and marks it. A
process that dies between the two (SIGKILL, a sweep cancelled at a stop) leaves the notice pending: the next
sweep, in this process or another, sends it. A process takes one notice at a time under the store's write lock
and owns it for a lease that covers the channels' worst-case send of one notice, their own retries included
(:func:`notice_lease`, from each channel's ``send_budget``): two processes never send the same one while the
first may still be sending it, and one taken by a process that died is taken again once its lease ran out. A
process marks a notice only while it still holds the lease (its token in ``claimed_by``); one whose lease was
taken over leaves the notice to the new owner and logs it. A sweep with nothing due only reads: the write lock is
taken when a notice is due. The security team's plain lines of the drift sweep (kind ``drift`` without a card,
:func:`batched`) due for one person are taken with the first under the same lease and sent as one message
(:func:`combined`); each row is still marked on its own with that message's outcome.

A notice no channel could deliver is tried again with growing delays; after ``MAX_ATTEMPTS`` it is marked
undeliverable and recorded (``notice.undeliverable``), and the security team is told. A notice no channel has an
address for (the person never opened a chat with the bot) is tried the same way (they may meanwhile) and ends
``unreachable``, recorded and told the same way. With no channel configured at all (``accessbot sweep`` on the
console's defaults) a notice is marked ``unreachable`` at once, with nothing recorded: it is never sent.

A reminder, an escalation or an expiry warning whose request moved on before it was sent (the step decided, the
request withdrawn or ended, the grant extended or ended), or a reviewer's reminder or escalation whose items were
all decided (or whose campaign closed) before it was sent, or a review's sign-off request whose step was signed
(or whose campaign no longer waits for a sign-off) before it was sent, or an ask to approve an undo of a review
removal that another member of the security team approved before it was sent, or the safety brake's pause notice whose
pause was resumed, ended or replaced before it was sent, or a notice that a drift re-add is queued whose re-add
landed or was given up, whose finding was resolved or whose grant ended before it was sent, is not sent: it is
marked ``dropped`` with why (:func:`_stale`). Notices of what happened (an expiry, an end, a termination) are always
sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from uuid import uuid4

import structlog

from handlers.compliance.pause_stale import pause_moved_on
from handlers.compliance.readd import readd_moved_on
from handlers.compliance.views import DriftLines, PauseView, ReaddQueued
from handlers.context import SYSTEM, Deps
from handlers.ports import Notice
from handlers.records import ACTIVE, PENDING, OutboxNotice, req_id
from handlers.reviews.links import ReviewLink, ReviewReminder, ReviewSignoffAsk, ReviewUndoAsk
from handlers.reviews.stale import batch_moved_on, signoff_moved_on, undo_moved_on

log = structlog.get_logger("accessbot.outbox")

# How long a process owns a notice it took to send, when its notifier does not say how long one send may take
# at worst (a channel does: ``send_budget``); and what is added to that worst case (the store's reads and writes).
NOTICE_LEASE = timedelta(minutes=2)
LEASE_MARGIN = timedelta(minutes=1)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
# notices that ask for something (a decision, an extension) and are dropped once it no longer applies
STALE_KINDS = frozenset({"reminder", "escalation", "expiring"})
MAX_ATTEMPTS = 6  # sent, or undeliverable, within about an hour of the first attempt
# The security team's lines of the drift sweep (what it settled by itself, the findings past its cards): those due
# for one person when a delivery runs go out as one message (:func:`combined`), each row still marked on its own.
BATCHED_KINDS = frozenset({"drift"})
BATCH_ROWS = 500  # rows taken into one message at most; the rest go in the next
BATCH_LINES = 25  # lines one message lists; the rest are counted and pointed at `report drift`
BATCH_CHARS = 6000  # nor more text than this in its lines
LINE_CHARS = 500  # one line cut to this


# views kept only for _stale to judge by: the notice is sent as text
TEXT_VIEWS = (ReviewReminder, ReviewSignoffAsk, ReviewUndoAsk, ReaddQueued)


# What a channel answers for a notice it has no way to deliver: it has no address for the person (no DM channel,
# no personal chat with the bot); and what the notifier answers when no channel is configured at all.
NO_ADDRESS = "no address for the recipient"
NO_CHANNEL = "no channel configured"


@runtime_checkable
class Sender(Protocol):
    """A notifier that says how each notice went (the channels do; a plain ``Notifier`` is taken at its word)."""

    async def send(self, notices: list[Notice]) -> list[str | None]:
        """Deliver now; for each notice None when it was sent, ``NO_ADDRESS`` when the channel has no way to reach
        the person, else what went wrong."""
        ...


def retry_delay(attempts: int) -> timedelta:
    return min(LONGEST_RETRY, FIRST_RETRY * (2 ** max(0, attempts - 1)))


def notice_lease(notifier: Any) -> timedelta:
    """How long a process owns a notice it took: the notifier's worst-case send of one notice (``send_budget``,
    computed by each channel from its retry settings), or ``NOTICE_LEASE`` when it does not say, plus
    ``LEASE_MARGIN``."""
    budget = getattr(notifier, "send_budget", None)
    return (budget if isinstance(budget, timedelta) else NOTICE_LEASE) + LEASE_MARGIN


async def deliver_pending(deps: Deps) -> int:
    """Send every pending notice that is due, one at a time, and mark each sent, to be retried, or undeliverable.
    How many were sent."""
    notifier = deps.notifier
    lease = notice_lease(notifier)
    token = uuid4().hex
    sent = 0
    while True:
        now = deps.now()
        async with deps.store.read() as repo:  # the write lock is taken only when something is due
            if not await repo.notices_due(now):
                return sent
        async with deps.store.write() as repo:
            notice = await repo.claim_notice(now, now + lease, token)
            if notice is None:
                return sent
            taken = [notice]
            if batched(notice):  # the same person's other lines of the drift sweep, leased with it
                taken += await repo.claim_alike(notice, now, now + lease, token, BATCH_ROWS - 1)
            live = []
            for row in taken:
                why = await _stale(repo, row, now)
                if why is not None:  # the request moved on: its old text would mislead
                    row.status, row.next_attempt_at, row.last_error = "dropped", None, why
                    await repo.save_notice(row, now)
                else:
                    live.append(row)
        if not live:
            continue
        if len(live) == 1:
            one = live[0]  # (the first taken may have been dropped as stale)
            # kept for _stale: sent as text
            view = None if isinstance(one.view, TEXT_VIEWS) else one.view
            notices = [Notice(one.recipient, one.kind, one.text, one.request_id, view)]
        else:
            notices = [combined(live)]
        if isinstance(notifier, Sender):
            outcomes = await notifier.send(notices)
        else:
            await notifier.notify(notices)
            outcomes = [None]
        sent += await _record(deps, live, outcomes * len(live))  # one message: its outcome is every row's


def batched(notice: OutboxNotice) -> bool:
    """Whether a notice goes out in one message with the same person's others of its kind: the security team's
    plain lines of the drift sweep, a queued re-add's among them (a card, or any other notice, is sent on its
    own)."""
    return notice.kind in BATCHED_KINDS and (notice.view is None or isinstance(notice.view, ReaddQueued))


def combined(rows: list[OutboxNotice]) -> Notice:
    """One message for several notices to one person (:func:`batched`): a heading, a line each (at most
    ``BATCH_LINES`` of them, ``BATCH_CHARS`` in all, each one line: line breaks inside a notice's text are folded),
    and how many more there are and where to see them. The text says it all; its view (``DriftLines``) lets each
    channel render the lines within its own limits after its own escaping."""
    lines: list[str] = []
    size = 0
    for row in rows:
        text = one_line(row.text.removeprefix("Drift: "))
        line = text if len(text) <= LINE_CHARS else text[:LINE_CHARS - 1] + "…"
        if len(lines) >= BATCH_LINES or (lines and size + len(line) + 2 > BATCH_CHARS):
            break
        lines.append(line)
        size += len(line) + 3
    view = DriftLines(len(rows), tuple(lines))
    more = view.more_line(len(lines))
    text = "\n".join([view.heading, *(f"• {line}" for line in lines), *([more] if more else [])])
    return Notice(rows[0].recipient, rows[0].kind, text, None, view)


def one_line(text: str) -> str:
    """``text`` as one line: each line break inside (``str.splitlines``' own: CR, LF, VT, FF, the Unicode line
    and paragraph separators, …) and the blanks around it folded into one space."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


async def _stale(repo: Any, notice: OutboxNotice, now: datetime) -> str | None:
    """Why a reminder, an escalation or an expiry warning no longer holds, so that it is not sent (None: it does).
    A reminder or an escalation holds while its request still waits on the step and round it was sent for (the
    request's ``reminded_step`` / ``escalated_step``); an expiry warning while the grant is active and expires when
    it said (``warned_expiry``). A reviewer's reminder, or an escalation of their batch, holds while the campaign
    is open for decisions and one of the items it was sent for is undecided (handlers/reviews/stale.py). Notices
    of what happened (an expiry, an end, a termination, a campaign's opening) always hold. A review's sign-off
    request holds while its campaign waits for that step's signatures and the recipient has not signed; an ask to
    approve an undo of a review removal while an undo of that item waits for approval; the safety brake's pause
    notice while the pause it announces is in force and not resumed; a notice that a drift re-add is queued while
    the re-add is pending, its finding open and the grant active (handlers/compliance/readd.py)."""
    if isinstance(notice.view, ReviewSignoffAsk):
        return await signoff_moved_on(repo, notice.view, notice.recipient)
    if isinstance(notice.view, ReviewUndoAsk):
        return await undo_moved_on(repo, notice.view)
    if isinstance(notice.view, ReaddQueued):
        return await readd_moved_on(repo, notice.view, now)
    if notice.kind == "brake" and isinstance(notice.view, PauseView):
        return await pause_moved_on(repo, notice.view)
    if notice.kind in STALE_KINDS and isinstance(notice.view, (ReviewLink, ReviewReminder)):
        return await batch_moved_on(repo, notice.view, now)
    if notice.kind not in STALE_KINDS or notice.request_id is None or notice.view is not None:
        return None
    record = await repo.get_request(notice.request_id)
    if record is None:
        return f"{req_id(notice.request_id)} is not on record"
    if notice.kind == "expiring":
        if record.state != ACTIVE:
            return f"{record.ref} is no longer active ({record.state})"
        if record.warned_expiry is None or record.warned_expiry != record.expires_at:
            return f"{record.ref} no longer expires when the warning said"
        return None
    if not (record.state == PENDING or (record.state == ACTIVE and record.extension_pending)):
        return f"{record.ref} no longer waits on an approval ({record.state})"
    marker = record.round * 100 + record.step
    if (record.reminded_step if notice.kind == "reminder" else record.escalated_step) != marker:
        return f"{record.ref} no longer waits on the step the {notice.kind} was for"
    return None


async def _record(deps: Deps, taken: list[OutboxNotice], outcomes: list[str | None]) -> int:
    now = deps.now()
    failed: list[OutboxNotice] = []
    mine = 0
    async with deps.store.write() as repo:
        for notice, error in zip(taken, outcomes, strict=True):
            _outcome(notice, error, now)
            if not await repo.save_notice(notice, now):
                log.warning("notice lease taken over by another process; its outcome is left to that one",
                            notice=notice.id, recipient=notice.recipient, kind=notice.kind,
                            outcome="sent" if error is None else error[:200])
                continue
            mine += notice.status == "sent"
            if notice.status == "undeliverable" or (notice.status == "unreachable" and error != NO_CHANNEL):
                await repo.append("notice.undeliverable", actor=SYSTEM, ts=now,
                                  request_id=req_id(notice.request_id) if notice.request_id else None, data={
                                      "recipient": notice.recipient, "kind": notice.kind, "text": notice.text,
                                      "attempts": notice.attempts, "error": notice.last_error})
                if notice.kind != "failure":  # telling the team of an undeliverable failure notice would not end
                    failed.append(notice)
        await repo.queue_notices([Notice(m, "failure", text, request_id) for text, request_id in _failed(failed)
                                  for m in sorted(deps.policy.security_members())], now)
    return mine


def _failed(rows: list[OutboxNotice]) -> list[tuple[str, int | None]]:
    """What the security team is told of the notices of one send that ended undeliverable: a notice sent on its
    own, as it was; those sent in one message (:func:`combined`), in one notice."""
    if len(rows) <= 1:
        return [(f"A {n.kind} notice to {n.recipient} could not be delivered after {n.attempts} attempts "
                 f"({n.last_error}): {n.text}", n.request_id) for n in rows]
    first = rows[0]
    return [(f"{len(rows)} {first.kind} notices to {first.recipient}, sent as one message, could not be delivered "
             f"after {first.attempts} attempts ({first.last_error}); each is recorded (notice.undeliverable):\n"
             + combined(rows).text, None)]


def _outcome(notice: OutboxNotice, error: str | None, now: datetime) -> None:
    notice.attempts += 1
    if error is None:
        notice.status, notice.next_attempt_at, notice.last_error = "sent", None, None
    elif error == NO_CHANNEL:  # nothing could ever send it: kept as unreachable, not tried again
        notice.status, notice.next_attempt_at, notice.last_error = "unreachable", None, error
    elif notice.attempts >= MAX_ATTEMPTS:
        final = "unreachable" if error == NO_ADDRESS else "undeliverable"
        notice.status, notice.next_attempt_at, notice.last_error = final, None, error[:500]
    else:
        notice.last_error = error[:500]
        notice.next_attempt_at = now + retry_delay(notice.attempts)
