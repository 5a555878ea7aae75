"""Slack listeners of access reviews: the ``review_open`` button (DM and App Home) opens the reviewer's
batch as a modal (the live check runs and ``review.opened`` is recorded, channel ``slack``), its paging
buttons update it, and submitting it records the page's choices through the same decision as
``/access`` (``keep RV-n …`` / ``remove RV-n … because …``), checked whole and recorded together."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError

from bot.slack.app import view_metadata
from bot.slack.identity import UNKNOWN_USER, acting_user
from cards import reviews_slack as cards
from cards import slack as blocks
from cards.reviews_adaptive import shown_states
from handlers.origin import acting_via
from handlers.reviews.commands import ReviewShow
from handlers.reviews.decide import ReviewChoices
from handlers.reviews.views import batch_view, open_batches

if TYPE_CHECKING:
    from bot.slack.app import Listeners

log = structlog.get_logger("accessbot.slack")


def _first_action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    return actions[0] if isinstance(actions[0], dict) else {}


class ReviewListeners:
    def __init__(self, listeners: Listeners) -> None:
        self.l = listeners

    def register(self) -> None:
        bolt = self.l.bolt
        bolt.action(cards.ACTION_REVIEW_OPEN)(self.on_open)
        bolt.action(cards.ACTION_REVIEW_PAGE)(self.on_page)
        bolt.view(cards.REVIEW_MODAL)(self.on_submit)

    async def home_blocks(self, email: str) -> list[dict[str, Any]]:
        return cards.home_blocks(await open_batches(self.l.app.deps, email.lower()))

    async def _modal(self, body: dict[str, Any], n: int, page: int) -> dict[str, Any]:
        person = await self.l.person(body)
        if person is None:
            return blocks.result_modal("Access review", UNKNOWN_USER)
        with acting_via("slack", acting_user(body)):  # review.opened names the Slack account that opened it
            view = await batch_view(self.l.app.deps, person.email.lower(), n, "slack")
        if view is None:  # as `review RV-n` in words: someone who may not look is refused, and it is recorded
            with acting_via("slack", acting_user(body)):
                reply = await self.l.app.service.handle(person, ReviewShow(n), channel="slack")
            text = reply.text if not reply.ok else f"You have nothing to review in RV-{n}."
            return blocks.result_modal("Access review", text[:2900])
        return cards.review_modal(view, page)

    async def on_open(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        await self.l.run(self._open(body, request), urgent=True)

    async def _open(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        if not await self.l.first_time(request, body):
            return
        n = cards.parse_review_value(_first_action(body).get("value"))
        if n is None:
            return
        await self.l.open_modal(body, await self._modal(body, n, 0))

    async def on_page(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        await self.l.run(self._page(body, request), urgent=True)

    async def _page(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        if not await self.l.first_time(request, body):
            return
        parsed = cards.parse_page_value(_first_action(body).get("value"))
        view_id = (body.get("view") or {}).get("id")
        if parsed is None or not view_id:
            return
        try:
            await self.l.client.views_update(view_id=view_id, view=await self._modal(body, *parsed))
        except SlackApiError as exc:
            log.info("views.update failed", error=exc.response.get("error"))

    async def on_submit(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await self.l._answer_modal(ack, self._submit(body, request), self.l._late(body))

    async def _submit(self, body: dict[str, Any], request: AsyncBoltRequest) -> dict[str, Any] | None:
        if not await self.l.first_time(request, body):
            return None
        person = await self.l.person(body)
        view = body.get("view") if isinstance(body.get("view"), dict) else {}
        n = cards.parse_review_value(view_metadata(view).get("review_id"))
        if person is None or n is None:
            return {"response_action": "update", "view": blocks.result_modal("Not saved", "This form names no "
                                                                             "review you may decide.")}
        state = view.get("state") if isinstance(view.get("state"), dict) else {}
        try:
            chosen, comment = cards.choices(state.get("values") if isinstance(state.get("values"), dict) else {})
        except ValueError as problem:  # nothing of the page is recorded
            return {"response_action": "update", "view": blocks.result_modal("Not saved", f"{problem}.")}
        pairs = tuple(sorted((k, decision) for decision, numbers in chosen.items() for k in numbers))
        if not pairs:
            return None
        shown = shown_states(view_metadata(view), cards.PAGE_SIZE)  # what the modal showed, as a Teams card's
        # the page's choices checked whole and recorded together, as a Teams card's, by the signed sender
        with acting_via("slack", acting_user(body)):
            reply = await self.l.app.service.handle(person, ReviewChoices(n, pairs, comment, shown=shown, form=True),
                                                    channel="slack")
        if reply.rule == "reason":
            return {"response_action": "errors", "errors": {cards.COMMENT_BLOCK: reply.text[:150]}}
        if not reply.ok:
            return {"response_action": "update", "view": blocks.result_modal("Not saved", reply.text)}
        self.l.notifier.spawn(self.l.notifier.post(person.email, blocks.text_message(reply.text)))
        return None
