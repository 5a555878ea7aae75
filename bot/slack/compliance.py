"""Slack listeners of the security team's compliance cards (SPEC §3.6): a drift finding's ``drift_remove``
and ``drift_accept`` buttons open a modal for the reason (and the duration), whose submission runs the
same words as ``/access`` (``drift remove D-n because …``, ``drift accept D-n for <d> because …``); a
paused brake's ``resume_removals`` button resumes that pause at the count the person saw.

Who acts is the signed payload's user; the button value and the modal's metadata only name the finding
or the pause, and the handler refuses (and records) whatever that user may not do. The message a modal
should update once the finding is resolved travels in the metadata with a MAC, so a forged metadata
cannot make the bot rewrite another of its messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import TYPE_CHECKING, Any

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.slack.identity import UNKNOWN_USER, acting_user
from cards import compliance_slack as cards
from cards import slack as blocks
from handlers.compliance.commands import DriftAccept, DriftRemove, ResumeRemovals
from handlers.compliance.views import VERB_DRIFT_ACCEPT, VERB_DRIFT_REMOVE, VERB_RESUME
from handlers.views import Reply

if TYPE_CHECKING:
    from bot.slack.app import Listeners

NO_FINDING = "This button does not name a drift finding."


def _first_action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    return actions[0] if isinstance(actions[0], dict) else {}


class ComplianceListeners:
    def __init__(self, listeners: Listeners) -> None:
        self.l = listeners

    def register(self) -> None:
        bolt = self.l.bolt
        bolt.action(VERB_DRIFT_REMOVE)(self.on_remove)
        bolt.action(VERB_DRIFT_ACCEPT)(self.on_accept)
        bolt.action(VERB_RESUME)(self.on_resume)
        bolt.view(cards.DRIFT_REMOVE_MODAL)(self.on_remove_submit)
        bolt.view(cards.DRIFT_ACCEPT_MODAL)(self.on_accept_submit)

    # -- the message a modal was opened from ------------------------------------------------------
    def _mac(self, finding: str, user: str, message: dict[str, Any]) -> str:
        text = json.dumps([finding, user, message.get("channel"), message.get("ts")])
        return hmac.new(self.l.signing_secret.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]

    def _origin(self, body: dict[str, Any], finding: str) -> dict[str, Any] | None:
        container = body.get("container") or {}
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            return None
        message = {"channel": channel, "ts": ts}
        return {**message, "mac": self._mac(finding, acting_user(body) or "", message)}

    def _trusted_origin(self, body: dict[str, Any], meta: dict[str, Any], finding: str) -> dict[str, Any] | None:
        message = meta.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("mac"), str):
            return None
        expected = self._mac(finding, acting_user(body) or "", message)
        return message if hmac.compare_digest(expected, message["mac"]) else None

    # -- buttons ----------------------------------------------------------------------------------
    async def on_remove(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await self._open(body, cards.drift_remove_modal)

    async def on_accept(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await self._open(body, cards.drift_accept_modal)

    async def _open(self, body: dict[str, Any], modal: Any) -> None:
        n = cards.parse_finding_value(_first_action(body).get("value"))
        if n is None:
            await self.l.run(self.l.respond(body, blocks.text_message(NO_FINDING)))
            return
        # the modal must open within the trigger's 3 s; who acts is checked on submission
        finding = f"D-{n}"
        await self.l.run(self.l.open_modal(body, modal(finding, self._origin(body, finding))), urgent=True)

    async def on_resume(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        await self.l.run(self._resume(body, request))

    async def _resume(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        if not await self.l.first_time(request, body):
            return
        person = await self.l.person(body)
        if person is None:
            await self.l.respond(body, blocks.text_message(UNKNOWN_USER))
            return
        seen = cards.parse_pause_value(_first_action(body).get("value"))
        if seen is None:
            await self.l.respond(body, blocks.text_message("This button does not name a pause."))
            return
        count, reason, pause = seen
        reply = await self.l.handle(body, person, ResumeRemovals(reason, count, pause))
        await self._answer(body, reply)

    async def _answer(self, body: dict[str, Any], reply: Reply, message: dict[str, Any] | None = None) -> None:
        """Done: the card the person clicked shows the outcome, without buttons. Refused: an answer aside."""
        container = body.get("container") or {}
        if message is None and container.get("type") == "message":
            message = {"channel": container.get("channel_id"), "ts": container.get("message_ts")}
        if reply.ok and message:
            await self.l.notifier.update(message, blocks.text_message(reply.text))
        else:
            await self.l.respond(body, blocks.text_message(reply.text))

    # -- modals -----------------------------------------------------------------------------------
    def _form(self, body: dict[str, Any]) -> tuple[int | None, dict[str, Any], dict[str, str | None]]:
        view = body.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        return cards.parse_finding_value(meta.get("finding")), meta, blocks.modal_values(view.get("state") or {})

    async def on_remove_submit(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await self.l._answer_modal(ack, self._remove_submit(body, request), self.l._late(body))

    async def _remove_submit(self, body: dict[str, Any], request: AsyncBoltRequest) -> dict[str, Any] | None:
        if not await self.l.first_time(request, body):
            return None
        person = await self.l.person(body)
        if person is None:
            return {"response_action": "errors", "errors": {cards.REASON_BLOCK: UNKNOWN_USER[:150]}}
        n, meta, values = self._form(body)
        if n is None:
            return {"response_action": "update", "view": blocks.result_modal("Not removed", NO_FINDING)}
        reply = await self.l.handle(body, person, DriftRemove(n, values.get(cards.REASON_BLOCK)))
        if reply.rule == "reason":
            return {"response_action": "errors", "errors": {cards.REASON_BLOCK: "Say why the member is removed."}}
        if not reply.ok:
            return {"response_action": "update", "view": blocks.result_modal("Not removed", reply.text)}
        self.l.notifier.spawn(self._answer(body, reply, self._trusted_origin(body, meta, f"D-{n}")))
        return None

    async def on_accept_submit(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await self.l._answer_modal(ack, self._accept_submit(body, request), self.l._late(body))

    async def _accept_submit(self, body: dict[str, Any], request: AsyncBoltRequest) -> dict[str, Any] | None:
        if not await self.l.first_time(request, body):
            return None
        person = await self.l.person(body)
        if person is None:
            return {"response_action": "errors", "errors": {cards.REASON_BLOCK: UNKNOWN_USER[:150]}}
        n, meta, values = self._form(body)
        if n is None:
            return {"response_action": "update", "view": blocks.result_modal("Not accepted", NO_FINDING)}
        duration, reason = values.get(cards.DURATION_BLOCK), values.get(cards.REASON_BLOCK)
        reply = await self.l.handle(body, person, DriftAccept(n, duration, reason))
        if reply.rule in ("duration", "duration>max", "reason"):  # said beside the box, the modal stays open
            field = cards.REASON_BLOCK if reply.rule == "reason" else cards.DURATION_BLOCK
            return {"response_action": "errors", "errors": {field: reply.text[:150]}}
        if not reply.ok:
            return {"response_action": "update", "view": blocks.result_modal("Not accepted", reply.text)}
        self.l.notifier.spawn(self._answer(body, reply, self._trusted_origin(body, meta, f"D-{n}")))
        return None
