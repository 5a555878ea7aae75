"""Slack DMs: approvers when their step opens, requesters on every change, security on failures.

The DM channel of each person and every approval / status message sent live in the database,
so a restart forgets nobody. After any change to a request, every approval message sent for it
is rewritten with ``chat.update`` to the request's current state (the outcome, without buttons,
once decided), and the requester's status message likewise. Delivery runs in a background task
per batch so that a click is acknowledged without waiting on other people's messages; batches
about one request are delivered in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import App
from bot.notify import CLOSED, Reach, closing_notes, send_by_request, sent_to, unreached
from bot.slack.identity import CHANNEL, AddressBook
from bot.slack.retries import worst_call
from cards import compliance_slack as compliance_cards
from cards import reviews_slack as review_cards
from cards import slack as blocks
from handlers.compliance.views import DriftLines, DriftView, PauseView
from handlers.outbox import NO_ADDRESS
from handlers.ports import Notice
from handlers.present import request_view
from handlers.reviews.links import ReviewLink
from handlers.views import RequestView

log = structlog.get_logger("accessbot.slack.notify")

DECIDING = ("approval", "reminder", "escalation")
# chat.update errors that say the message can never be edited (deleted, its channel gone or archived)
GONE = frozenset({"message_not_found", "cant_update_message", "channel_not_found", "is_archived", "edit_window_closed"})
# The Web API calls one notice the outbox sends may make at most: users.lookupByEmail, conversations.open, the
# edit of the requester's status message, and the message. The request's other messages are edited afterwards.
NOTICE_CALLS = 4  # (an outcome edits the person's approval message instead of the status message)


class SlackNotifier:
    def __init__(self, app: App, client: AsyncWebClient, addresses: AddressBook | None = None) -> None:
        self.app = app
        self.client = client
        self.addresses = addresses or AddressBook(app)
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._general = asyncio.Lock()

    # -- the Notifier port ------------------------------------------------------------------------
    async def notify(self, notices: list[Notice]) -> None:
        if notices:
            self.spawn(self._deliver(list(notices)))

    @property
    def send_budget(self) -> timedelta:
        """The longest :meth:`send` of one notice may take, the client's retries included (the outbox's lease)."""
        return timedelta(seconds=NOTICE_CALLS * worst_call(self.client))

    async def send(self, notices: list[Notice]) -> list[str | None]:
        """Deliver now (the outbox, handlers/outbox.py): for each notice None when sent, else what went wrong.
        The request's other messages are brought up to date afterwards, in the background."""
        return await send_by_request(notices, self.lock_for, self._deliver_batch, "slack")

    def spawn(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def started(self) -> frozenset[asyncio.Task[None]]:
        """The deliveries under way now (for :meth:`settle`)."""
        return frozenset(self._tasks)

    async def settle(self, before: frozenset[asyncio.Task[None]]) -> None:
        """Wait for the deliveries started since ``before`` (what one command set off), whatever their outcome."""
        new = [t for t in self._tasks if t not in before]
        if new:
            await asyncio.gather(*new, return_exceptions=True)

    async def idle(self) -> None:
        """Wait until every delivery started so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def lock_for(self, request_id: int | None) -> asyncio.Lock:
        return self._locks[request_id] if request_id is not None else self._general

    # -- delivery ---------------------------------------------------------------------------------
    async def _deliver(self, notices: list[Notice]) -> None:
        by_request: dict[int | None, list[Notice]] = defaultdict(list)
        for n in notices:
            by_request[n.request_id].append(n)
        for request_id, batch in by_request.items():
            try:
                async with self.lock_for(request_id):
                    await self._deliver_batch(request_id, batch)
            except Exception:
                log.exception("slack delivery failed", request_id=request_id)

    async def _deliver_batch(self, request_id: int | None, batch: list[Notice],
                             outcome: dict[int, str | None] | None = None) -> None:
        """``outcome`` given: how each notice of the batch went (by its place), None when it was sent."""
        view = await self.fresh_view(request_id) if request_id is not None else None
        sent: set[str] = set()
        status_done = False
        for i, notice in enumerate(batch):
            try:
                with Reach() as reach:
                    kind = await self._send_one(notice, view, status_done)
                if kind in ("approval", "closed"):  # their messages of the request are up to date
                    sent.add(notice.recipient.lower())
                elif kind == "status":
                    status_done = True
                if outcome is not None:
                    outcome[i] = NO_ADDRESS if reach.missed else None
            except Exception as exc:
                log.exception("slack notice not delivered", recipient=notice.recipient, kind=notice.kind)
                if outcome is not None:
                    outcome[i] = f"{type(exc).__name__}: {exc}"
        if view is not None and request_id is not None:
            if outcome is None:
                await self._refresh(request_id, view, sent, status_done)
            else:  # the outbox's send: its lease covers the notices, not every message of the request
                self.spawn(self._refresh_later(request_id, sent, status_done))

    async def _refresh(self, request_id: int, view: RequestView, skip: set[str], status_done: bool) -> None:
        await self.update_approvals(request_id, view, skip=skip)
        if not status_done:
            await self.update_status(view)

    async def _refresh_later(self, request_id: int, skip: set[str], status_done: bool) -> None:
        try:
            async with self.lock_for(request_id):
                view = await self.fresh_view(request_id)
                if view is not None:
                    await self._refresh(request_id, view, skip, status_done)
        except Exception:
            log.exception("slack messages not refreshed", request_id=request_id)

    async def fresh_view(self, request_id: int) -> RequestView | None:
        async with self.app.store.read() as repo:
            record = await repo.get_request(request_id)
        return await request_view(self.app.deps, record) if record else None

    async def _send_one(self, notice: Notice, view: RequestView | None, status_done: bool) -> str | None:
        who = notice.recipient.lower()
        if view is not None and notice.kind in DECIDING and (blocks.can_decide(view, who)
                                                             or notice.kind == "escalation"):
            posted = await self.post(who, blocks.approval_message(view, viewer=who, note=notice.text))
            if posted:
                await self.remember(view.number, who, "approval", posted)
            return "approval" if posted else None
        if view is not None and notice.kind == "status" and who == view.requester.lower():
            if not await self.update_status(view, note=notice.text):
                await self.post_status(view, note=notice.text)
            elif not status_done:  # an edited message does not notify: a DM line does
                await self.post(who, blocks.text_message(notice.text))
            return "status"
        if view is not None and notice.kind == "expiring":
            await self.post(who, blocks.expiring_message(view, note=notice.text))
            return None
        if view is not None and notice.kind == "outcome":
            # a step this person was asked to decide closed without them (withdrawn, ended by a sweep, decided by
            # someone else): their approval messages of the request are edited to say so within this send, before
            # the DM line, so a notice the outbox sends again (the process died after the commit) edits them again
            cards = await sent_to(self.app.store, CHANNEL, view.number, "approval", who)
            for address in cards:
                try:
                    await self.update(address, blocks.approval_message(view, viewer=who, note=notice.text))
                except SlackApiError as exc:  # a message Slack no longer has cannot be edited, now or later
                    if exc.response.get("error") not in GONE:
                        raise
                    log.info("approval message gone", recipient=who, request_id=view.number,
                             error=exc.response.get("error"))
            if cards:  # what later redraws of their messages say (closing_notes)
                await self.remember(view.number, who, CLOSED, {"note": notice.text, "round": view.round})
            await self.post(who, blocks.text_message(notice.text))
            return "closed"
        if isinstance(notice.view, ReviewLink):  # a reviewer's batch: the DM with its review_open button
            await self.post(who, review_cards.batch_message(notice.view, notice.text))
            return None
        if isinstance(notice.view, DriftView):  # the security team's finding: remove / accept buttons
            finding = compliance_cards.parse_finding_value(notice.view.id)
            if notice.view.outcome is not None:  # what was done about it: this person's cards of it, edited
                await self.update_drift_cards(finding, who, notice.view)
                return None
            posted = await self.post(who, compliance_cards.drift_message(notice.view, notice.text))
            if posted and finding:
                await self.remember(finding, who, "drift", posted)
            return None
        if isinstance(notice.view, PauseView):  # the safety brake: the resume button with the count
            await self.post(who, compliance_cards.pause_message(notice.view, notice.text))
            return None
        if isinstance(notice.view, DriftLines):  # the drift sweep's lines for one person, in one message
            await self.post(who, compliance_cards.drift_lines_message(notice.view, notice.text))
            return None
        await self.post(who, blocks.text_message(notice.text))
        return None

    async def post_status(self, view: RequestView, *, note: str | None = None) -> None:
        """The requester's status message, posted once per request and updated afterwards."""
        posted = await self.post(view.requester, blocks.status_message(view, note=note))
        if posted:
            await self.remember(view.number, view.requester.lower(), "status", posted)

    async def update_status(self, view: RequestView, *, note: str | None = None) -> bool:
        async with self.app.store.read() as repo:
            earlier = await repo.messages(CHANNEL, view.number, "status")
        for _, _, address in earlier:
            await self.update(address, blocks.status_message(view, note=note))
        return bool(earlier)

    async def update_drift_cards(self, finding: int | None, who: str, view: DriftView) -> None:
        """A finding's cards this person was sent (kept under the finding's number, kind ``drift``)."""
        for address in await sent_to(self.app.store, CHANNEL, finding, "drift", who):
            await self.update(address, compliance_cards.drift_message(view, view.outcome))

    async def update_approvals(self, request_id: int, view: RequestView, *,
                               skip: set[str] | frozenset[str] = frozenset()) -> None:
        async with self.app.store.read() as repo:
            rows = await repo.messages(CHANNEL, request_id)
        notes = closing_notes(rows, view.round)
        for recipient, kind, address in rows:
            if kind != "approval" or recipient.lower() in skip:
                continue
            note = None if blocks.can_decide(view, recipient) else notes.get(recipient.lower())
            try:
                await self.update(address, blocks.approval_message(view, viewer=recipient, note=note))
            except Exception:
                log.exception("approval message not updated", recipient=recipient, request_id=request_id)

    async def remember(self, request_id: int, recipient: str, kind: str, posted: dict[str, Any]) -> None:
        async with self.app.store.write() as repo:
            await repo.add_message(CHANNEL, request_id, recipient, kind, posted, self.app.deps.now())

    # -- Web API calls ----------------------------------------------------------------------------
    async def dm_channel(self, email: str) -> str | None:
        """The DM channel with this person, opened (and stored) the first time."""
        email = email.lower()
        known = await self.addresses.get(email) or {}
        if known.get("channel"):
            return str(known["channel"])
        uid = known.get("user")
        if not uid:
            person = await self.app.deps.person(email)
            uid = person.slack_id if person is not None else None
        if not uid:
            try:
                found = await self.client.users_lookupByEmail(email=email)
                uid = (found.get("user") or {}).get("id")
            except SlackApiError as exc:
                log.info("no Slack user for this person", recipient=email, error=exc.response.get("error"))
                return None
        opened = await self.client.conversations_open(users=uid)
        channel = (opened.get("channel") or {}).get("id")
        if not channel:
            return None
        await self.addresses.save(email, {"user": uid, "channel": channel})
        return str(channel)

    async def post(self, email: str, message: dict[str, Any]) -> dict[str, Any] | None:
        channel = await self.dm_channel(email)
        if channel is None:
            unreached(email)
            return None
        result = await self.client.chat_postMessage(channel=channel, text=message["text"], blocks=message["blocks"],
                                                    unfurl_links=False, unfurl_media=False)
        return {"channel": result.get("channel") or channel, "ts": result.get("ts")}

    async def update(self, address: dict[str, Any], message: dict[str, Any]) -> None:
        channel, ts = address.get("channel"), address.get("ts")
        if not channel or not ts:
            return
        await self.client.chat_update(channel=channel, ts=ts, text=message["text"], blocks=message["blocks"])
