"""Proactive messages: approvers when their step opens, requesters on every change, security on failures.

Conversation references and the approval cards already sent live in the database, so a restart
forgets nobody. After any change to a request, every approval card sent for it is rewritten
to the request's current state (the outcome, without buttons, once decided). Delivery runs in a
background task per batch so that a card click is answered without waiting on other people's
messages; batches about one request are delivered in order.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

import structlog
from microsoft_agents.activity import Activity, ChannelAccount, ConversationParameters
from microsoft_agents.hosting.core.connector import ConnectorClientBase

from bot.bootstrap import App
from bot.notify import CLOSED, Reach, closing_notes, send_by_request, sent_to, unreached
from bot.teams.clients import Opener
from bot.teams.connector import (
    Rebuild,
    addressed,
    card_activity,
    fitted,
    status_of,
    text_activity,
    with_retries,
    worst_call,
)
from bot.teams.identity import CHANNEL
from cards import adaptive, compliance_adaptive
from cards import reviews_adaptive as review_cards
from handlers.compliance.findings import parse_drift_ref
from handlers.compliance.views import DriftLines, DriftView, PauseView
from handlers.outbox import NO_ADDRESS
from handlers.ports import Notice
from handlers.present import request_view
from handlers.reviews.links import ReviewLink
from handlers.reviews.views import ReviewBatchView, batch_view
from handlers.views import RequestView

log = structlog.get_logger("accessbot.teams.notify")

BOT_ADDRESS = "#bot"  # where the service URL, tenant and bot account seen last are kept


USER_ID_TTL_S = 600.0  # how long a Teams user id found is used without reading it again
NO_USER_ID_TTL_S = 60.0  # and how long that someone has none
USER_ID_CACHE = 10_000  # ids kept at most (all are dropped when more would be)
# The connector calls one notice the outbox sends may make at most: a new personal chat, the message, and the
# edit of an earlier status card. The request's other approval cards are refreshed afterwards, not in the send.
NOTICE_CALLS = 3


class TeamsNotifier:
    def __init__(self, app: App, open_connector: Opener) -> None:
        self.app = app
        self.open_connector = open_connector  # service URL → the SDK's connector client (bot.teams.clients)
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._general = asyncio.Lock()
        self._user_ids: dict[str, tuple[float, str | None]] = {}  # email → (kept until, Teams user id or none)

    # -- the Notifier port ------------------------------------------------------------------------
    async def notify(self, notices: list[Notice]) -> None:
        if not notices:
            return
        task = asyncio.create_task(self._deliver(list(notices)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def send_budget(self) -> timedelta:
        """The longest :meth:`send` of one notice may take, the connector's retries included (the outbox's lease)."""
        return timedelta(seconds=NOTICE_CALLS * worst_call())

    async def send(self, notices: list[Notice]) -> list[str | None]:
        """Deliver now (the outbox, handlers/outbox.py): for each notice None when sent, else what went wrong.
        The request's other approval cards are refreshed afterwards, in the background."""
        return await send_by_request(notices, lambda rid: self._locks[rid] if rid is not None else self._general,
                                     self._deliver_batch, "teams")

    async def idle(self) -> None:
        """Wait until every delivery started so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- delivery ---------------------------------------------------------------------------------
    async def _deliver(self, notices: list[Notice]) -> None:
        by_request: dict[int | None, list[Notice]] = defaultdict(list)
        for n in notices:
            by_request[n.request_id].append(n)
        for request_id, batch in by_request.items():
            lock = self._locks[request_id] if request_id is not None else self._general
            try:
                async with lock:
                    await self._deliver_batch(request_id, batch)
            except Exception:
                log.exception("teams delivery failed", request_id=request_id)

    async def _deliver_batch(self, request_id: int | None, batch: list[Notice],
                             outcome: dict[int, str | None] | None = None) -> None:
        """``outcome`` given: how each notice of the batch went (by its place), None when it was sent."""
        view = await self.fresh_view(request_id) if request_id is not None else None
        sent_cards: set[str] = set()
        async with self._connectors() as connectors:
            for i, notice in enumerate(batch):
                try:
                    with Reach() as reach:
                        sent = await self._send_one(connectors, notice, view)
                    if sent:
                        sent_cards.add(notice.recipient.lower())
                    if outcome is not None:
                        outcome[i] = NO_ADDRESS if reach.missed else None
                except Exception as exc:
                    log.exception("teams notice not delivered", recipient=notice.recipient, kind=notice.kind)
                    if outcome is not None:
                        outcome[i] = f"{type(exc).__name__}: {exc}"
            if view is not None and request_id is not None:
                if outcome is None:
                    await self._update_cards(connectors, request_id, view, skip=sent_cards)
                else:  # the outbox's send: its lease covers the notices, not every card of the request
                    task = asyncio.create_task(self._refresh(request_id, sent_cards))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _refresh(self, request_id: int, skip: set[str]) -> None:
        try:
            async with self._locks[request_id]:
                view = await self.fresh_view(request_id)
                if view is not None:
                    async with self._connectors() as connectors:
                        await self._update_cards(connectors, request_id, view, skip=skip)
        except Exception:
            log.exception("approval cards not refreshed", request_id=request_id)

    async def fresh_view(self, request_id: int) -> RequestView | None:
        async with self.app.store.read() as repo:
            record = await repo.get_request(request_id)
        return await request_view(self.app.deps, record) if record else None

    async def teams_user_ids(self, emails: list[str]) -> dict[str, str]:
        """The Teams user ids of these people, for those who have talked to the bot.

        A person's Teams user id for this bot does not change, so what was read is kept for a while: an
        id found for ``USER_ID_TTL_S``, the lack of one for ``NO_USER_ID_TTL_S`` (someone who talks to
        the bot through this process is known at once, :meth:`saw_user`; through another, within that).
        A card refresh then reads nothing to say whose clients refresh it.
        """
        now = time.monotonic()
        found: dict[str, str] = {}
        missing = []
        for email in emails:
            hit = self._user_ids.get(email)
            if hit is None or hit[0] <= now:
                missing.append(email)
            elif hit[1] is not None:
                found[email] = hit[1]
        if missing:
            async with self.app.store.read() as repo:
                refs = await repo.addresses(CHANNEL, missing)
            if len(self._user_ids) + len(missing) > USER_ID_CACHE:
                self._user_ids.clear()
            for email in missing:
                uid = ((refs.get(email) or {}).get("user") or {}).get("id")
                self._user_ids[email] = (now + (USER_ID_TTL_S if uid else NO_USER_ID_TTL_S), uid)
                if uid:
                    found[email] = uid
        return found

    def saw_user(self, email: str, reference: dict[str, Any]) -> None:
        """A person's reference was just saved (they talked to the bot here): their id is known now."""
        if uid := (reference.get("user") or {}).get("id"):
            self._user_ids[email.lower()] = (time.monotonic() + USER_ID_TTL_S, uid)

    async def user_ids(self, email: str) -> list[str]:
        """The Teams user id of one person (a review card refreshes for its reviewer only)."""
        uid = (await self.teams_user_ids([email.lower()])).get(email.lower())
        return [uid] if uid else []

    async def refresh_ids(self, view: RequestView) -> list[str]:
        """Teams user ids of everyone in the chain (the refresh block runs for them)."""
        emails = list(dict.fromkeys(a for s in view.steps for a in (*s.approvers, *s.approved_by)))
        if not emails:
            return []
        found = await self.teams_user_ids(emails)
        return [found[e] for e in emails if e in found][: adaptive.MAX_REFRESH_USERS]

    async def _send_one(self, connectors: _Connectors, notice: Notice, view: RequestView | None) -> bool:
        """Send one notice; True when it sent a card that is kept up to date."""
        who = notice.recipient.lower()
        if isinstance(notice.view, ReviewLink):  # a reviewer's batch: its cards, one per page
            return await self._send_review(connectors, who, notice)
        if view is not None and notice.kind in ("approval", "reminder", "escalation") and (
                adaptive.can_decide(view, who) or notice.kind == "escalation"):
            ids = await self.refresh_ids(view)
            card = adaptive.approval_card(view, viewer=who, refresh_user_ids=ids, note=notice.text)
            posted = await self.post(connectors, who, card_activity(card, summary=notice.text),
                                     rebuild=lambda budget: adaptive.approval_card(
                                         view, viewer=who, refresh_user_ids=ids, note=notice.text, budget=budget))
            if posted:
                await self._remember_message(view.number, who, "approval", posted)
            return posted is not None
        if view is not None and notice.kind == "status" and who == view.requester.lower():
            async with self.app.store.read() as repo:
                earlier = await repo.messages(CHANNEL, view.number, "status")
            card = adaptive.status_card(view, note=notice.text)

            def status(budget: int) -> dict[str, Any]:
                return adaptive.status_card(view, note=notice.text, budget=budget)
            for _, _, address in earlier:
                await self.update(connectors, address, card, rebuild=status)
            if not earlier:
                posted = await self.post(connectors, who, card_activity(card, summary=notice.text), rebuild=status)
                if posted:
                    await self._remember_message(view.number, who, "status", posted)
                return False
        if view is not None and notice.kind == "outcome":
            # a step this person was asked to decide closed without them (withdrawn, ended by a sweep, decided by
            # someone else): their approval cards of the request are edited to say so within this send, before the
            # line, so a notice the outbox sends again (the process died after the commit) edits them again
            ids = await self.refresh_ids(view)
            card = adaptive.approval_card(view, viewer=who, refresh_user_ids=ids, note=notice.text)
            cards = await sent_to(self.app.store, CHANNEL, view.number, "approval", who)
            for address in cards:
                try:
                    await self.update(connectors, address, card, rebuild=lambda budget: adaptive.approval_card(
                        view, viewer=who, refresh_user_ids=ids, note=notice.text, budget=budget))
                except Exception as exc:  # a card the connector no longer has cannot be edited, now or later
                    if status_of(exc) not in (403, 404):
                        raise
                    log.info("approval card gone", recipient=who, request_id=view.number, status=status_of(exc))
            if cards:  # what later redraws of their cards say (closing_notes)
                await self._remember_message(view.number, who, CLOSED, {"note": notice.text, "round": view.round})
            await self.post(connectors, who, text_activity(notice.text))
            return True  # their cards are up to date: the refresh after the send leaves them
        if view is not None and notice.kind == "expiring":
            await self.post(connectors, who, card_activity(adaptive.expiring_card(view, note=notice.text),
                                                           summary=notice.text),
                            rebuild=lambda budget: adaptive.expiring_card(view, note=notice.text, budget=budget))
            return False
        if isinstance(notice.view, DriftView):  # the security team's finding: remove / accept with a reason
            finding, drift = parse_drift_ref(notice.view.id), notice.view
            card = compliance_adaptive.drift_card(drift)

            def drift_card(budget: int) -> dict[str, Any]:
                return compliance_adaptive.drift_card(drift, budget=budget)
            if drift.outcome is not None:  # what was done about it: this person's cards of it, edited
                await self._update_drift_cards(connectors, finding, who, card, rebuild=drift_card)
                return False
            posted = await self.post(connectors, who, card_activity(card, summary=notice.text), rebuild=drift_card)
            if posted and finding:
                await self._remember_message(finding, who, "drift", posted)
            return False
        if isinstance(notice.view, PauseView):  # the safety brake: resume with the count shown
            pause = notice.view
            card = compliance_adaptive.pause_card(pause)
            await self.post(connectors, who, card_activity(card, summary=notice.text),
                            rebuild=lambda budget: compliance_adaptive.pause_card(pause, budget=budget))
            return False
        if isinstance(notice.view, DriftLines):  # the drift sweep's lines for one person, in one card
            lines = notice.view
            card = compliance_adaptive.drift_lines_card(lines)
            await self.post(connectors, who, card_activity(card, summary=lines.heading),
                            rebuild=lambda budget: compliance_adaptive.drift_lines_card(lines, budget=budget))
            return False
        await self.post(connectors, who, text_activity(notice.text))
        return False

    async def _send_review(self, connectors: _Connectors, who: str, notice: Notice) -> bool:
        n = review_cards.parse_review_id(notice.view.review_id)
        view = await batch_view(self.app.deps, who, n, CHANNEL, opening=False) if n else None
        if view is None:
            await self.post(connectors, who, text_activity(notice.text))
            return False
        if await self.address_of(connectors, who) is None:
            unreached(who)
            return False
        ids = await self.user_ids(who)
        for page in range(review_cards.pages(view)):
            card = review_cards.review_card(view, page=page, refresh_user_ids=ids)
            await self.post(connectors, who, card_activity(card, summary=notice.text),
                            rebuild=review_rebuild(view, page, ids))
        return False

    async def _update_cards(self, connectors: _Connectors, request_id: int, view: RequestView,
                            skip: set[str]) -> None:
        async with self.app.store.read() as repo:
            rows = await repo.messages(CHANNEL, request_id)
        notes = closing_notes(rows, view.round)
        ids = await self.refresh_ids(view)
        for recipient, kind, address in rows:
            if kind != "approval" or recipient.lower() in skip:
                continue
            note = None if adaptive.can_decide(view, recipient) else notes.get(recipient.lower())
            card = adaptive.approval_card(view, viewer=recipient, refresh_user_ids=ids, note=note)
            try:
                await self.update(connectors, address, card, rebuild=_approval_rebuild(view, recipient, ids, note))
            except Exception:
                log.exception("approval card not updated", recipient=recipient, request_id=request_id)

    async def _update_drift_cards(self, connectors: _Connectors, finding: int | None, who: str,
                                  card: dict[str, Any], *, rebuild: Rebuild | None = None) -> None:
        """A finding's cards this person was sent (kept under the finding's number, kind ``drift``)."""
        for address in await sent_to(self.app.store, CHANNEL, finding, "drift", who):
            await self.update(connectors, address, card, rebuild=rebuild)

    async def _remember_message(self, request_id: int, recipient: str, kind: str, posted: dict[str, Any]) -> None:
        async with self.app.store.write() as repo:
            await repo.add_message(CHANNEL, request_id, recipient, kind, posted, self.app.deps.now())

    async def send_privately(self, email: str, activity: Activity, *, bot: dict[str, Any] | None = None,
                             member: dict[str, str] | None = None, rebuild: Rebuild | None = None) -> bool:
        """Post into this person's personal (1:1) chat with the bot, and nowhere else: a secret asked for in a
        channel or group chat. The chat is started when there is none yet (``bot``: the bot's address as the
        asking activity showed it; ``member``: the asker's ids from that activity). False when it cannot be
        reached, so the caller can say so instead of the secret."""
        try:
            async with self._connectors() as connectors:
                ref = await self.address_of(connectors, email, bot=bot, member=member)
                if ref is None or not personal(ref):
                    return False
                return await self.post(connectors, email, activity, ref=ref, rebuild=rebuild) is not None
        except Exception as exc:  # a bot not installed for the person answers 403 to creating the chat
            log.info("personal chat not reachable", recipient=email, error=str(exc)[:200])
            return False

    # -- connector calls --------------------------------------------------------------------------
    async def address_of(self, connectors: _Connectors, email: str, *, bot: dict[str, Any] | None = None,
                         member: dict[str, str] | None = None) -> dict[str, Any] | None:
        """The person's personal chat with the bot: the one stored, else a new one (through the bot's stored
        address, or ``bot``, and their object id at the identity source, or ``member``)."""
        async with self.app.store.read() as repo:
            ref = await repo.address(CHANNEL, email)
            stored_bot = await repo.address(CHANNEL, BOT_ADDRESS) if ref is None else None
        if ref is not None:
            return ref
        bot = stored_bot or bot
        person = await self.app.deps.person(email)
        oid = person.aad_object_id if person is not None else None
        user = {"id": oid, "aadObjectId": oid} if oid else dict(member or {})
        if bot is None or person is None or not user.get("id"):
            log.info("no Teams conversation for this person yet", recipient=email)
            return None
        return await self._create_conversation(connectors, email, user, bot)

    async def _create_conversation(self, connectors: _Connectors, email: str, user: dict[str, str],
                                   bot: dict[str, Any]) -> dict[str, Any]:
        conversation = bot.get("conversation") or {}
        tenant = bot.get("tenant") or conversation.get("tenantId") or conversation.get("tenantID")
        client = await connectors.get(bot["serviceUrl"])
        params = ConversationParameters(
            is_group=False, agent=ChannelAccount.model_validate(bot.get("bot") or {}),
            members=[ChannelAccount(id=user["id"], aad_object_id=user.get("aadObjectId"))], tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}} if tenant else None)
        made = await with_retries(lambda: client.conversations.create_conversation(params),
                                  what="create conversation")
        ref = {"bot": bot.get("bot"), "user": {k: v for k, v in user.items() if v}, "channelId": bot.get("channelId"),
               "serviceUrl": made.service_url or bot["serviceUrl"],
               "conversation": {"id": made.id, "conversationType": "personal", "tenantId": tenant}}
        async with self.app.store.write() as repo:
            await repo.save_address(CHANNEL, email, ref, self.app.deps.now())
        self.saw_user(email, ref)
        return ref

    async def post(self, connectors: _Connectors, email: str, activity: Activity, *,
                   ref: dict[str, Any] | None = None, rebuild: Rebuild | None = None) -> dict[str, Any] | None:
        """Send into the person's personal chat, within the bound kept on what is sent (:func:`fitted`: the summary
        or text cut, then the card rebuilt smaller with ``rebuild``; ``TooLarge`` when nothing fits)."""
        ref = ref or await self.address_of(connectors, email)
        if ref is None:
            unreached(email)
            return None
        activity = fitted(addressed(activity, ref), rebuild=rebuild)
        client = await connectors.get(ref["serviceUrl"])
        conv = ref["conversation"]["id"]
        result = await with_retries(lambda: client.conversations.send_to_conversation(conv, activity),
                                    what="send")
        return {"activity_id": getattr(result, "id", None), "conversation": ref}

    async def update(self, connectors: _Connectors, address: dict[str, Any], card: dict[str, Any], *,
                     rebuild: Rebuild | None = None) -> None:
        """Edit a card sent before, within the bound kept on what is sent (:func:`fitted`: the card rebuilt smaller
        with ``rebuild``; ``TooLarge`` when nothing fits, and the card is left as it was)."""
        ref, activity_id = address.get("conversation"), address.get("activity_id")
        if not ref or not activity_id:
            return
        activity = addressed(card_activity(card), ref)
        activity.id = activity_id
        activity = fitted(activity, rebuild=rebuild)
        client = await connectors.get(ref["serviceUrl"])
        conv = ref["conversation"]["id"]
        await with_retries(lambda: client.conversations.update_activity(conv, activity_id, activity),
                           what="update")

    def _connectors(self) -> _Connectors:
        return _Connectors(self.open_connector)


def _approval_rebuild(view: RequestView, viewer: str, ids: list[str], note: str | None = None) -> Rebuild:
    """An approver's card of a request, for a smaller budget."""
    return lambda budget: adaptive.approval_card(view, viewer=viewer, refresh_user_ids=ids, note=note, budget=budget)


def review_rebuild(view: ReviewBatchView, page: int, ids: list[str]) -> Rebuild:
    """A reviewer's card of one page, for a smaller budget."""
    return lambda budget: review_cards.review_card(view, page=page, refresh_user_ids=ids, budget=budget)


def personal(ref: dict[str, Any]) -> bool:
    """A stored reference that leads to a 1:1 chat (not a channel or a group chat)."""
    conversation = ref.get("conversation") or {}
    return conversation.get("conversationType", "personal") == "personal" and not conversation.get("isGroup")


class _Connectors:
    """Connector clients for one delivery (the factory keeps them across deliveries)."""

    def __init__(self, open_connector: Opener) -> None:
        self.open_connector = open_connector

    async def __aenter__(self) -> _Connectors:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get(self, service_url: str) -> ConnectorClientBase:
        return await self.open_connector(service_url)
