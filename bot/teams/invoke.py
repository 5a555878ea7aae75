"""``adaptiveCard/action`` invokes: a verb and its data in, the updated card out.

The card's data only ever names *which* request; *who* acts is the authenticated sender. A
forged ``request_id`` therefore acts as the sender on that id, and the handler refuses when they
are not an approver of its open step. A second click or a stale card gets the current state.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from bot.bootstrap import App
from bot.notify import CLOSED, closing_notes
from bot.teams.compliance import VERBS as COMPLIANCE_VERBS
from bot.teams.compliance import compliance_invoke
from bot.teams.identity import CHANNEL as TEAMS
from bot.teams.review_invoke import ReviewInvokes, names_review
from cards import adaptive
from cards.reviews_adaptive import VERB_REVIEW
from handlers.context import one_lookup_per_person
from handlers.grammar import Approve, Deny, Extend, RequestAccess, Status, decision_at
from handlers.ports import Person
from handlers.service import PROVIDER_UNAVAILABLE
from handlers.text import is_digits
from handlers.views import Reply, RequestView

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_FIELD = 4000
CARDS_KEPT = 256  # the click answers kept by what they show (see InvokeHandler._render)
NOT_SEEN = "unknown-request"  # the rule of a request that does not exist or that the sender may not see


@dataclass(frozen=True)
class InvokeResponse:
    """The Universal Actions answer (HTTP status and body); ``tracks`` names a request whose status the card shows."""

    card: dict[str, Any]
    tracks: int | None = None
    status: int = 200
    body: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", {"statusCode": 200, "type": CARD_TYPE, "value": self.card})


def card_response(card: dict[str, Any], *, tracks: int | None = None) -> InvokeResponse:
    return InvokeResponse(card, tracks)


def _field(data: dict[str, Any], key: str) -> str | None:
    """A card input's text (a number as Teams may send it), None when empty or no text: an object, a list or a
    boolean is a tampered payload, never taken as a reason or a comment in Python's spelling of it."""
    value = data.get(key)
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()[:MAX_FIELD]
    return text or None


def request_number(data: dict[str, Any]) -> int | None:
    raw = data.get("request_id")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 < raw < 10**9 else None
    if isinstance(raw, str):
        text = raw.strip().upper().removeprefix("REQ-")
        return int(text) if is_digits(text) and len(text) < 10 and int(text) > 0 else None
    return None


async def _visible_view(app: App, person: Person, n: int) -> RequestView | None:
    """The request as this person may see it (None when they may not)."""
    reply = await app.service.handle(person, Status(n, events=False))
    return reply.request if reply.ok else None


def click_scope(verb: str) -> AbstractContextManager[None]:
    """A refresh only reads: one look-up per person (and one read of the directory's overlay) serves the
    whole click, the sender's identification included. A click that writes identifies its sender in a scope of
    the identification alone (bot/teams/identity.py) and keeps a scope per command."""
    return one_lookup_per_person() if verb == adaptive.VERB_REFRESH else nullcontext()


class InvokeHandler:
    def __init__(self, app: App, refresh_ids: Any, user_ids: Any) -> None:
        self.app = app
        self.refresh_ids = refresh_ids  # async (RequestView) -> list[str]
        self.reviews = ReviewInvokes(app, user_ids)
        # A click's card is a pure function of the request's view (a frozen value, compared whole), whether the one
        # who clicked is its requester and whether they may decide its open step (all a card shows of who clicked),
        # the refresh ids and the note: the same answer is built once while those stay the same, as when a
        # channel's approvers refresh one card together or click it again after its decision. Kept cards are never
        # modified (the answer is written as it is); the oldest goes first.
        self._cards: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.built = 0  # click answers built rather than taken from those kept (tests)

    async def handle(self, person: Person, verb: str, data: dict[str, Any]) -> InvokeResponse:
        who = person.email.lower()
        if verb == VERB_REVIEW or (verb == adaptive.VERB_REFRESH and names_review(data)):
            return card_response(await self.reviews.handle(person, verb, data))
        if verb == adaptive.VERB_REQUEST:
            return await self._request(person, data)
        if verb in COMPLIANCE_VERBS:  # drift remove / accept, resume removals (SPEC §3.6)
            return card_response(await compliance_invoke(self.app, person, verb, data))
        n = request_number(data)
        if n is None:
            return card_response(adaptive.text_card("This card does not name a request.", attention=True))
        if verb == adaptive.VERB_APPROVE:
            reply = await self.app.service.handle(person, Approve(n, _field(data, adaptive.COMMENT_INPUT),
                                                                  at=decision_at(data)))
            return await self._after(person, n, reply)
        if verb == adaptive.VERB_DENY:
            reason = _field(data, adaptive.COMMENT_INPUT)
            reply = await self.app.service.handle(person, Deny(n, reason, at=decision_at(data)))
            if reply.rule == "reason" and reply.kind == "form":  # no reason given (one over its limit is refused)
                view = await _visible_view(self.app, person, n)
                if view is None:
                    return card_response(adaptive.text_card(reply.text, attention=True))
                card = adaptive.approval_card(view, viewer=who, refresh_user_ids=await self.refresh_ids(view),
                                              note="To deny, say why in the comment box, then press Deny again.",
                                              ask_reason=True)
                return card_response(card)
            return await self._after(person, n, reply)
        if verb == adaptive.VERB_EXTEND:
            duration = _field(data, adaptive.EXTEND_INPUT)
            reply = await self.app.service.handle(person, Extend(n, duration, _field(data, adaptive.COMMENT_INPUT)))
            view = reply.request or (None if reply.rule == NOT_SEEN else await _visible_view(self.app, person, n))
            if view is None:
                return card_response(adaptive.text_card(reply.text, attention=not reply.ok))
            if reply.ok:
                return card_response(adaptive.status_card(view, note=reply.text))
            return card_response(adaptive.expiring_card(view, note=reply.text))
        if verb == adaptive.VERB_REFRESH:
            reply = await self.app.service.handle(person, Status(n, events=False))
            if not reply.ok or reply.request is None:  # not theirs to see, or the provider did not answer
                text = reply.text if reply.rule == PROVIDER_UNAVAILABLE else "You may not see this request."
                return card_response(adaptive.text_card(text, attention=True))
            view = reply.request
            note = None if who == view.requester.lower() or adaptive.can_decide(view, who) \
                else await self._closing_note(view, who)
            return card_response(await self._render(view, who, note=note))
        return card_response(adaptive.text_card(f"Unknown action {verb[:40]!r}.", attention=True))

    async def _closing_note(self, view: RequestView, who: str) -> str | None:
        """What the ``outcome`` notice that closed ``who``'s step of this round said on their cards (bot/notify.py
        ``closing_notes``): a card the client refreshes itself keeps saying why, as the outbox's edit did. The
        request's notes are read once for every refresh asking at the same time (handlers/shared_reads.py): a
        card refreshing for a whole team reads them a few times, not once a person."""
        async def read() -> dict[str, str]:
            async with self.app.store.read() as repo:
                return closing_notes(await repo.messages(TEAMS, view.number, CLOSED), view.round)

        notes = await self.app.deps.shared_reads.get(("closing-notes", view.number, view.round), read)
        return notes.get(who)

    async def _after(self, person: Person, n: int, reply: Reply) -> InvokeResponse:
        who = person.email.lower()
        view = reply.request if reply.request is not None or reply.rule == NOT_SEEN \
            else await _visible_view(self.app, person, n)
        if view is None:  # not theirs to see: say only what they were told
            return card_response(adaptive.text_card(reply.text, attention=not reply.ok))
        return card_response(await self._render(view, who, note=reply.text))

    async def _render(self, view: RequestView, who: str, note: str | None = None) -> dict[str, Any]:
        own = who == view.requester.lower()
        ids = () if own else tuple(await self.refresh_ids(view))
        key = (view, own, adaptive.can_decide(view, who), ids, note)
        card = self._cards.get(key)
        if card is None:
            card = adaptive.status_card(view, note=note) if own \
                else adaptive.approval_card(view, viewer=who, refresh_user_ids=ids, note=note)
            self.built += 1
            if len(self._cards) >= CARDS_KEPT:
                del self._cards[next(iter(self._cards))]
            self._cards[key] = card
        return card

    async def _request(self, person: Person, data: dict[str, Any]) -> InvokeResponse:
        justification = _field(data, "justification")
        cmd = RequestAccess(profile=(_field(data, "profile") or "").lower() or None, duration=_field(data, "duration"),
                            reason=justification, ticket=_field(data, "ticket"),
                            exception=data.get("exception") is True)
        reply = await self.app.service.handle(person, cmd, forms=True)
        if reply.form is not None:
            return card_response(adaptive.form_card(reply.form))
        if reply.request is not None:
            return card_response(adaptive.status_card(reply.request, note=reply.text), tracks=reply.request.number)
        return card_response(adaptive.text_card(reply.text, attention=not reply.ok))
