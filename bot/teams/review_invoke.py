"""Review card invokes (SPEC §7): verb ``review`` saves a page's choices, ``refresh`` with a
``review_id`` shows the reviewer the live state of their batch.

The card's data names only *which* campaign and page (and, for "keep/remove all", which items the card
showed: a stale card never decides an item added to its page since); *who* decides is the authenticated sender,
and every choice goes through the same decision handler as ``keep``/``remove`` in chat, which
refuses (and records) an item that is not the sender's to decide. Opening the card (its refresh)
runs the live check and records ``review.opened`` the first time.
"""

from __future__ import annotations

from typing import Any

from bot.bootstrap import App
from cards import adaptive
from cards import reviews_adaptive as cards
from handlers.ports import Person
from handlers.reviews.decide import ReviewChoices, ReviewDecide
from handlers.reviews.views import ReviewBatchView, batch_view

MAX_COMMENT = 4000


def names_review(data: dict[str, Any]) -> bool:
    return "review_id" in data and "request_id" not in data


def _comment(data: dict[str, Any]) -> str | None:
    value = data.get(adaptive.COMMENT_INPUT)
    text = str(value).strip()[:MAX_COMMENT] if isinstance(value, str | int) else ""
    return text or None


class ReviewInvokes:
    def __init__(self, app: App, refresh_ids: Any) -> None:
        self.app = app
        self.refresh_ids = refresh_ids  # async (email) -> list[str]: the Teams user ids a card refreshes for

    async def _view(self, who: str, n: int) -> ReviewBatchView | None:
        return await batch_view(self.app.deps, who, n, "teams")

    async def _card(self, who: str, view: ReviewBatchView, page: int, **kw: Any) -> dict[str, Any]:
        return cards.review_card(view, page=page, refresh_user_ids=await self.refresh_ids(who), **kw)

    async def handle(self, person: Person, verb: str, data: dict[str, Any]) -> dict[str, Any]:
        who = person.email.lower()
        n = cards.parse_review_id(data.get("review_id"))
        if n is None:
            return adaptive.text_card("This card does not name an access review.", attention=True)
        page = cards.parse_page(data.get("page"))
        if verb == adaptive.VERB_REFRESH:
            view = await self._view(who, n)
            if view is None:
                return adaptive.text_card(f"You have nothing to review in RV-{n}.", attention=True)
            return await self._card(who, view, page)
        return await self._save(person, n, page, data)

    async def _save(self, person: Person, n: int, page: int, data: dict[str, Any]) -> dict[str, Any]:
        who = person.email.lower()
        chosen, problems = cards.submitted(data)
        comment = _comment(data)
        bulk = data.get("bulk")
        if bulk is not None and bulk not in cards.DECISIONS:
            problems.append(f"{str(bulk)[:20]!r} is neither keep nor remove")
        if problems:  # nothing is decided from a form that says something else than keep or remove
            view = await self._view(who, n)
            text = "Not saved: " + "; ".join(problems[:5]) + "."
            if view is None:
                return adaptive.text_card(text, attention=True)
            return await self._card(who, view, page, note=text, attention=True, comment=comment)
        states = cards.shown_states(data)  # what the card showed: None on a card of before it said so
        cmd: ReviewChoices | ReviewDecide = ReviewChoices(n, tuple(sorted(chosen.items())), comment, shown=states,
                                                          form=True)
        if bulk in cards.DECISIONS:
            view = await self._view(who, n)
            if view is None:  # not a reviewer: the handler refuses and records it, as `keep RV-n …` in chat
                cmd = ReviewDecide(n, str(bulk), (), comment)
            else:
                shown = cards.shown_items(data)  # a card that does not list them does not say what it showed
                gone = {i.number for i in view.items if i.gone}
                chosen = {k: str(bulk) for k in shown or () if k not in gone}  # only what the card showed, never
                cmd = ReviewChoices(n, tuple(sorted(chosen.items())), comment,  # an item added to its page since
                                    shown=states if shown is not None else None, bulk=True, form=True)
        elif not chosen:
            view = await self._view(who, n)
            if view is None:
                return adaptive.text_card(f"You have nothing to review in RV-{n}.", attention=True)
            return await self._card(who, view, page, note="Choose keep or remove for an item, then save.",
                                    comment=comment)
        reply = await self.app.service.handle(person, cmd, channel="teams")
        view = await self._view(who, n)
        if view is None:  # not theirs: say only what they were told
            return adaptive.text_card(reply.text, attention=not reply.ok)
        if reply.rule == "out-of-date":  # the batch as it is now, nothing of the old card carried over
            return await self._card(who, view, page, note=reply.text, attention=True, comment=comment)
        yours = _yours(chosen, states, view, bulk in cards.DECISIONS)
        if reply.rule == "reason":
            return await self._card(who, view, page, note=reply.text, attention=True, choices=yours,
                                    comment=comment, ask_reason=True)
        if not reply.ok:
            return await self._card(who, view, page, note=reply.text, attention=True, choices=yours,
                                    comment=comment)
        return await self._card(who, view, page, note=reply.text)


def _yours(chosen: dict[int, str], states: tuple[tuple[int, str], ...] | None, view: ReviewBatchView,
           bulk: bool) -> dict[int, str]:
    """The choices a card shown again (after a refusal) keeps pre-selected: the submitter's own, those that differ
    from what their card showed (for a bulk: on the items not decided otherwise since). An untouched choice is
    never carried over: the new card shows the decisions as they are, and would take it for the submitter's."""
    if states is None:
        return {}
    was = dict(states)
    if bulk:
        now = {i.number: i.decision or "" for i in view.items}
        return {n: d for n, d in chosen.items() if now.get(n, "") == was.get(n, "")}
    return {n: d for n, d in chosen.items() if d != was.get(n, "")}
