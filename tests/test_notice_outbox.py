"""The unattended notices go through a stored outbox (handlers/outbox.py): written with the record that decides
them, sent afterwards, marked sent. A send cut off after the record was committed (the sweep cancelled at a
stop, the process gone) is made by a later sweep, once; two processes never both send one; a notice the
channel keeps refusing is tried a bounded number of times, then recorded as undeliverable."""

from __future__ import annotations

import asyncio
import io
from collections import Counter

from sqlalchemy import event, select

from bot.bootstrap import build_app
from bot.console import ConsoleNotifier
from bot.notify import FanoutNotifier
from bot.settings import Settings
from handlers.outbox import LONGEST_RETRY, MAX_ATTEMPTS, NO_CHANNEL, NOTICE_LEASE, deliver_pending, notice_lease
from handlers.ports import Notice
from handlers.sweeps import sweep
from store import schema as t
from tests.support import Harness, harness

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


class Channel:
    """A channel notifier as the outbox sees it (``send`` says how each notice went): the first ``cut`` sends
    never return (the sweep is cancelled while the channel holds them); recipients in ``refuse`` are refused."""

    def __init__(self, *, cut: int = 0, refuse: frozenset[str] = frozenset(), pause: float = 0.0) -> None:
        self.cut, self.refuse, self.pause = cut, refuse, pause
        self.sent: list[Notice] = []
        self.tries: Counter[str] = Counter()

    async def notify(self, notices: list[Notice]) -> None:
        self.sent.extend(notices)

    async def send(self, notices: list[Notice]) -> list[str | None]:
        if self.cut:
            self.cut -= 1
            raise asyncio.CancelledError  # what a sweep still sending at the end of the stop's grace gets
        await asyncio.sleep(self.pause)
        out: list[str | None] = []
        for n in notices:
            self.tries[n.recipient] += 1
            if n.recipient in self.refuse:
                out.append("SlackApiError: The request to the Slack API failed. (channel_not_found)")
            else:
                self.sent.append(n)
                out.append(None)
        return out

    def to(self, who: str, kind: str) -> list[Notice]:
        return [n for n in self.sent if n.recipient == who and n.kind == kind]


async def _outbox(h) -> list[dict]:  # type: ignore[no-untyped-def]
    async with h.app.store.read() as repo:
        rows = (await repo.conn.execute(select(t.notice_outbox).order_by(t.notice_outbox.c.id))).all()
    return [dict(r._mapping) for r in rows]


async def test_a_reminder_cut_off_after_its_record_is_sent_once_by_a_later_sweep(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")).ok
        h.clock.advance(hours=5)  # past remind_after: Mark, asked at step 1, is due a reminder
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        try:
            await sweep(h.app.deps)
            raise AssertionError("the send was not cut off")
        except asyncio.CancelledError:
            pass
        assert len(await h.events("approval.reminded")) == 1  # recorded, not sent
        [row] = await _outbox(h)
        assert (row["recipient"], row["kind"], row["status"], row["attempts"]) == (MARK, "reminder", "pending", 0)
        assert row["next_attempt_at"] == h.clock.now() + notice_lease(channel)  # taken by the process that was cut off

        await sweep(h.app.deps)  # another process, within that lease: the notice is not its to send
        assert channel.sent == [] and len(await h.events("approval.reminded")) == 1

        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)  # the lease ran out: the owner is gone
        await sweep(h.app.deps)
        assert [n.text for n in channel.to(MARK, "reminder")] == ["Reminder: REQ-1 waits for your decision."]
        [row] = await _outbox(h)
        assert (row["status"], row["attempts"], row["done_at"]) == ("sent", 1, h.clock.now())

        h.clock.advance(hours=1)
        await sweep(h.app.deps)
        assert len(channel.to(MARK, "reminder")) == 1 and len(await h.events("approval.reminded")) == 1


async def test_expiry_notices_are_written_with_the_expiry(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1h because INC-2")).ok
        assert (await h.request(1)).state == "active"
        h.clock.advance(minutes=40)  # inside the expiry warning
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        try:
            await sweep(h.app.deps)
            raise AssertionError("the send was not cut off")
        except asyncio.CancelledError:
            pass
        h.clock.advance(hours=1)  # past the expiry and the lease
        await sweep(h.app.deps)
        # the warning came too late to act on: dropped; the expiry itself is told
        assert [n.kind for n in channel.sent if n.recipient == BOB] == ["status"]
        assert (await h.request(1)).state == "expired"
        rows = await _outbox(h)
        assert [(r["kind"], r["status"]) for r in rows] == [("expiring", "dropped"), ("status", "sent")]
        assert rows[0]["last_error"] == "REQ-1 is no longer active (expired)"


async def _two_deliverers(h: Harness, database_url: str) -> tuple[Channel, Channel, list[int]]:
    """This process and a second one on the same database deliver what is due at the same time: each one's
    channel, and how many notices each counted as sent."""
    settings = Settings(database_url=database_url, policy=str(h.files.policy), directory=str(h.files.directory),
                        env={})
    first, second = Channel(pause=0.05), Channel(pause=0.05)
    async with build_app(settings, clock=h.clock, notifier=second) as other:  # a second process
        h.app.deps.notifier = first
        counts = await asyncio.gather(deliver_pending(h.app.deps), deliver_pending(other.deps))
    return first, second, list(counts)


async def test_two_deliverers_at_once_send_each_notice_once(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        async with h.app.store.write() as repo:
            await repo.queue_notices([Notice(f"p{i}@example.com", "reminder", f"n{i}", None) for i in range(30)],
                                     h.clock.now())
        first, second, counts = await _two_deliverers(h, database_url)
        sent = Counter(n.text for n in first.sent + second.sent)
        assert sent == Counter({f"n{i}": 1 for i in range(30)}) and sum(counts) == 30
        assert {r["status"] for r in await _outbox(h)} == {"sent"}


async def test_a_notice_refused_every_time_ends_undeliverable_and_is_reported(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")).ok
        h.clock.advance(hours=5)
        channel = Channel(refuse=frozenset({MARK}))
        h.app.deps.notifier = channel
        await sweep(h.app.deps)
        for _ in range(MAX_ATTEMPTS + 3):  # later sweeps, each after the longest wait between attempts
            h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
            await deliver_pending(h.app.deps)
        assert channel.tries[MARK] == MAX_ATTEMPTS and channel.to(MARK, "reminder") == []
        [gone] = await h.events("notice.undeliverable")
        assert gone["request_id"] == "REQ-1"
        assert gone["data"]["recipient"] == MARK and gone["data"]["kind"] == "reminder"
        assert gone["data"]["attempts"] == MAX_ATTEMPTS and "channel_not_found" in gone["data"]["error"]
        rows = await _outbox(h)
        assert [(r["recipient"], r["status"]) for r in rows if r["kind"] == "reminder"] == [(MARK, "undeliverable")]
        security = sorted(h.app.deps.policy.security_members())
        told = [n for n in channel.sent if n.kind == "failure"]
        assert sorted(n.recipient for n in told) == security and security
        assert all(f"reminder notice to {MARK} could not be delivered" in n.text for n in told)
        assert len(await h.events("approval.reminded")) == 1  # what was recorded stands


async def test_with_no_channel_configured_notices_end_unreachable_at_once_without_events(database_url,
                                                                                        tmp_path) -> None:
    """``accessbot sweep`` on the console's defaults (no Slack, no Teams): nothing can send a notice."""
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")).ok
        h.clock.advance(hours=5)
        h.app.deps.notifier = FanoutNotifier()
        await sweep(h.app.deps)
        [row] = await _outbox(h)
        assert (row["kind"], row["status"], row["last_error"]) == ("reminder", "unreachable", NO_CHANNEL)
        assert row["done_at"] == h.clock.now()
        for _ in range(3):  # not pending forever, nor an undeliverable event at every sweep
            h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
            await sweep(h.app.deps)
        assert [(r["status"], r["attempts"]) for r in await _outbox(h)] == [("unreachable", 1)]
        assert not await h.events("notice.undeliverable")


async def test_the_console_shows_notices_and_they_count_as_sent(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")).ok
        h.clock.advance(hours=5)
        out = io.StringIO()
        h.app.deps.notifier = ConsoleNotifier(out)  # ``accessbot chat``: what others are told is shown
        await sweep(h.app.deps)
        assert f"[to {MARK}] Reminder: REQ-1 waits for your decision." in out.getvalue()
        assert [r["status"] for r in await _outbox(h)] == ["sent"]


async def _cut_off_reminder(h) -> Channel:  # type: ignore[no-untyped-def]
    """Mark's reminder is recorded and its send cut off; the channel the next sweeps send through."""
    assert (await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")).ok
    h.clock.advance(hours=5)
    channel = Channel(cut=1)
    h.app.deps.notifier = channel
    try:
        await sweep(h.app.deps)
        raise AssertionError("the send was not cut off")
    except asyncio.CancelledError:
        pass
    return channel


async def test_a_reminder_for_a_step_decided_before_it_was_sent_is_dropped(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        channel = await _cut_off_reminder(h)
        assert (await h.say(MARK, "approve REQ-1 fine")).ok  # the step is decided meanwhile
        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        await deliver_pending(h.app.deps)
        assert channel.to(MARK, "reminder") == []
        [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
        assert (row["status"], row["attempts"], row["done_at"]) == ("dropped", 0, h.clock.now())
        assert row["last_error"] == "REQ-1 no longer waits on the step the reminder was for"
        assert len(await h.events("approval.reminded")) == 1  # what was recorded stands


async def test_a_reminder_for_a_withdrawn_request_is_dropped(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        channel = await _cut_off_reminder(h)
        assert (await h.say(BOB, "cancel REQ-1")).ok
        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        await deliver_pending(h.app.deps)
        assert channel.to(MARK, "reminder") == []
        [row] = [r for r in await _outbox(h) if r["kind"] == "reminder"]
        assert (row["status"], row["last_error"]) == ("dropped", "REQ-1 no longer waits on an approval (cancelled)")


async def test_a_reminder_still_due_is_sent(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        channel = await _cut_off_reminder(h)
        h.clock.advance(seconds=notice_lease(channel).total_seconds() + 1)
        await deliver_pending(h.app.deps)
        assert len(channel.to(MARK, "reminder")) == 1


async def test_a_delivery_with_nothing_due_takes_no_write_transaction(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        h.app.deps.notifier = channel = Channel()
        begun: list[str] = []

        def began(conn: object) -> None:
            begun.append("begin")

        event.listen(h.app.store.engine.sync_engine, "begin", began)
        try:
            assert await deliver_pending(h.app.deps) == 0  # an empty outbox: read, not locked
            assert begun == []
            async with h.app.store.write() as repo:
                await repo.queue_notices([Notice(MARK, "info", "later", None)], h.clock.now())
            begun.clear()
            h.clock.advance(minutes=1)
            async with h.app.store.write() as repo:  # taken by another process: not due, nothing to lock for
                assert await repo.claim_notice(h.clock.now(), h.clock.now() + NOTICE_LEASE, "other") is not None
            begun.clear()
            assert await deliver_pending(h.app.deps) == 0 and begun == [] and channel.sent == []
            h.clock.advance(seconds=NOTICE_LEASE.total_seconds() + 1)
            assert await deliver_pending(h.app.deps) == 1 and begun  # due: taken under the write lock
        finally:
            event.remove(h.app.store.engine.sync_engine, "begin", began)


# Stored views no version of the bot writes (a row edited by hand, a damaged database): each is sent as its text,
# and none keeps the notices after it from being delivered.
TAMPERED_VIEWS = (
    "[" * 100_000 + "]" * 100_000,  # nested deeper than the JSON reader goes
    '{"type": "review", "review_id": "RV-1", "title": "t", "items": Infinity, "due_at": "2026-12-01T00:00:00+00:00"}',
    '{"type": "review-reminder", "review_id": "RV-1", "reviewer": "r@example.com", "waiting": [1e400]}',
    '{"type": "review-reminder", "review_id": 5, "reviewer": "r@example.com", "waiting": [1]}',
    '{"type": "review-reminder", "review_id": "RV-\u00b2", "reviewer": "r@example.com", "waiting": [1]}',
    '{"type": "review-reminder", "review_id": "RV-99999999999999999999999", "reviewer": "r@example.com", '
    '"waiting": [1]}',
    '{"type": "review", "review_id": "RV-1", "title": ["t"], "items": 2, "due_at": "2026-12-01T00:00:00"}',
    '{"type": "drift", "id": 7, "provider": "entra", "group": "g", "user": "u@example.com", "member": "no", '
    '"first_seen": 3}',
    '{"type": "pause", "reason": "terminated", "count": "12", "limit": 5, "sample": ["a"]}',
)


async def test_a_stored_view_that_no_longer_parses_does_not_stop_the_other_notices(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        async with h.app.store.write() as repo:
            await repo.queue_notices([Notice(f"p{i}@example.com", "reminder", f"n{i}", None)
                                      for i in range(len(TAMPERED_VIEWS) + 1)], h.clock.now())
            for i, view in enumerate(TAMPERED_VIEWS, start=1):
                await repo.conn.execute(t.notice_outbox.update().where(t.notice_outbox.c.id == i).values(view=view))
        channel = Channel()
        h.app.deps.notifier = channel
        await sweep(h.app.deps)
        assert sorted(n.text for n in channel.sent) == sorted(f"n{i}" for i in range(len(TAMPERED_VIEWS) + 1))
        assert all(n.view is None for n in channel.sent)  # what was stored is not a view: the text is sent
        assert {r["status"] for r in await _outbox(h)} == {"sent"}


async def test_two_deliverers_at_once_send_each_persons_drift_lines_in_one_message(database_url, tmp_path) -> None:
    """The security team's drift lines due for one person are leased together: a second process delivering at the
    same time takes none of them, and sends the other people's."""
    people = [f"sec{i}@example.com" for i in range(3)]
    async with harness(database_url, tmp_path) as h:
        async with h.app.store.write() as repo:
            for i in range(10):  # as a sweep writes them: one settlement (one transaction) after another
                await repo.queue_notices([Notice(p, "drift", f"Drift: D-{i} settled for {p}", None) for p in people]
                                         + [Notice(BOB, "status", f"s{i}", None)], h.clock.now())
        first, second, counts = await _two_deliverers(h, database_url)
        messages = first.sent + second.sent
        assert sum(counts) == 40 and {r["status"] for r in await _outbox(h)} == {"sent"}
        assert Counter(n.text for n in messages if n.kind == "status") == Counter({f"s{i}": 1 for i in range(10)})
        for p in people:
            [one] = [n for n in messages if n.recipient == p]
            assert one.kind == "drift" and one.text.startswith("Drift sweep: 10 notices"), one.text
            assert [line for line in one.text.splitlines()[1:]] == [f"• D-{i} settled for {p}" for i in range(10)]


async def test_drift_lines_no_channel_delivers_are_each_recorded_and_told_once(database_url, tmp_path) -> None:
    sam, sasha = "sam.sec@example.com", "sasha.sec@example.com"
    async with harness(database_url, tmp_path) as h:
        async with h.app.store.write() as repo:
            await repo.queue_notices([Notice(sam, "drift", f"Drift: D-{i} settled", None) for i in range(5)],
                                     h.clock.now())
        channel = Channel(refuse=frozenset({sam}))
        h.app.deps.notifier = channel
        await deliver_pending(h.app.deps)
        for _ in range(MAX_ATTEMPTS + 3):
            h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
            await deliver_pending(h.app.deps)
        rows = [r for r in await _outbox(h) if r["kind"] == "drift"]
        assert [(r["status"], r["attempts"]) for r in rows] == [("undeliverable", MAX_ATTEMPTS)] * 5
        gone = await h.events("notice.undeliverable")
        assert sorted(e["data"]["text"] for e in gone if e["data"]["kind"] == "drift") == [
            f"Drift: D-{i} settled" for i in range(5)]  # each line is recorded
        [told] = channel.to(sasha, "failure")  # and the team told once, not once a line
        assert told.text.startswith(f"5 drift notices to {sam}, sent as one message, could not be delivered after "
                                    f"{MAX_ATTEMPTS} attempts"), told.text
        assert all(f"D-{i} settled" in told.text for i in range(5))
