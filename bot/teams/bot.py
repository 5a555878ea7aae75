"""The Teams activity handler: a thin translation between activities and the channel-neutral service."""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

import pydantic_core
import structlog
from microsoft_agents.activity import Activity, ActivityTypes, AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue
from microsoft_agents.activity import InvokeResponse as SdkInvokeResponse
from microsoft_agents.hosting.core import ActivityHandler, TurnContext
from pydantic import BaseModel

from bot.bootstrap import App
from bot.teams.connector import Rebuild, card_activity, fitted, text_activity, with_retries
from bot.teams.identity import (
    CHANNEL,
    UNAVAILABLE,
    UNKNOWN_USER,
    AddressBook,
    References,
    conversation_reference,
    identify,
    is_personal,
)
from bot.teams.invoke import CARD_TYPE, InvokeHandler, InvokeResponse, card_response, click_scope
from bot.teams.notifier import BOT_ADDRESS, TeamsNotifier, review_rebuild
from cards import adaptive
from cards import reviews_adaptive as review_cards
from handlers.origin import acting_via
from handlers.ports import Person, ProviderError
from handlers.reviews.commands import ReviewShow, ReviewsList
from handlers.reviews.views import batch_view
from handlers.views import Reply


def activity_tenant(activity: Activity) -> str | None:
    """``channelData.tenant.id``, else ``conversation.tenantId``; None when neither is there as it should be (the
    gate admitted the activity on its tenants: a malformed ``channelData`` is no reason to fail its turn)."""
    channel_data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    tenant = channel_data.get("tenant")
    found = tenant.get("id") if isinstance(tenant, dict) else None
    if isinstance(found, str) and found:
        return found
    return activity.conversation.tenant_id if activity.conversation else None


def sender_object_id(context: TurnContext) -> str | None:
    """The sender's aadObjectId, which the audit record keeps beside the channel."""
    return getattr(context.activity.from_property, "aad_object_id", None)

log = structlog.get_logger("accessbot.teams")

REVIEW_WORDS = (ReviewShow, ReviewsList)  # a reviewer's batch and list: answered in the personal chat alone
SENT_PRIVATELY = "I sent your answer to you in our personal chat: it is meant for you alone."
ASK_PRIVATELY = ("That answer is meant for you alone, and I cannot write to you in a personal chat yet: open a chat "
                 "with me (accessbot) and ask there.")
WELCOME = ("Hello! I handle privileged access requests: ask with `request <profile> for <duration> because "
           "<reason>`, see `profiles`, or type `help`. Approvals reach you here as cards.")


class AccessBot(ActivityHandler):
    def __init__(self, app: App, notifier: TeamsNotifier) -> None:
        self.app = app
        self.notifier = notifier
        self.invokes = InvokeHandler(app, notifier.refresh_ids, notifier.user_ids)
        self.addresses = AddressBook(app)
        self.references = References()

    # -- helpers ----------------------------------------------------------------------------------
    async def _person(self, context: TurnContext) -> Person | None:
        person = await identify(self.app, context)
        if is_personal(context):  # one reference serves both: the bot's own address and the person's
            ref = self.references.of(context)  # shared: read only
            await self._remember_bot(context, ref)
            if person is not None:
                await self.addresses.save(person.email.lower(), ref)
                self.notifier.saw_user(person.email, ref)
        return person

    async def _remember_bot(self, context: TurnContext, ref: dict[str, Any]) -> None:
        """The service URL, channel, tenant and bot account, for conversations the bot starts itself
        (bot/teams/notifier.py ``_create_conversation`` needs no more). Nothing of the chat the activity came from
        (its conversation, sender or locale): the address is the same whoever talks to the bot, so it is written
        when it changes, not each time another person's activity follows someone else's."""
        address = {key: ref[key] for key in ("bot", "channelId", "serviceUrl") if key in ref}
        tenant = activity_tenant(context.activity)
        if tenant:
            address["tenant"] = tenant
        await self.addresses.save(BOT_ADDRESS, address)

    @staticmethod
    async def _send(context: TurnContext, activity: Activity, *, rebuild: Rebuild | None = None) -> Any:
        """Answer in the turn's conversation, within the bound kept on what is sent (``fitted``, measured on the
        activity addressed as the SDK sends it; ``TooLarge`` when nothing fits)."""
        if context.activity.type == ActivityTypes.conversation_update:
            # A conversation update is no message to reply to: post into the conversation as a message
            # of the bot's own, through the adapter the turn runs on.
            ref = context.activity.get_conversation_reference()
            ref.activity_id = None
            own = activity.apply_conversation_reference(ref)
            own.id = None  # as the adapter writes it
            own = fitted(own, rebuild=rebuild)
            sent = await with_retries(lambda: context.adapter.send_activities(context, [own]), what="post")
            return sent[0] if sent else None
        # the reply as the turn context writes it: addressed to the turn's conversation, an input hint, no id
        reply = TurnContext.apply_conversation_reference(activity.model_copy(),
                                                         context.activity.get_conversation_reference())
        reply.input_hint = reply.input_hint or "acceptingInput"
        reply.id = None
        reply = fitted(reply, rebuild=rebuild, reply=reply.reply_to_id is not None)  # the SDK replies to it then
        return await with_retries(lambda: context.send_activity(reply), what="reply")

    # -- messages ---------------------------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        try:
            person = await self._person(turn_context)
        except ProviderError as exc:  # who is asking cannot be known: nothing is done, and the person is told
            log.warning("identity look-up failed", error=str(exc)[:300])
            await self._send(turn_context, text_activity(UNAVAILABLE))
            return
        if person is None:
            await self._send(turn_context, text_activity(UNKNOWN_USER))
            return
        text = TurnContext.remove_recipient_mention(turn_context.activity) or turn_context.activity.text or ""
        cmd = self.app.service.parse(text)
        with acting_via("teams", sender_object_id(turn_context)):
            reply = await self.app.service.handle(person, cmd, forms=True, channel=CHANNEL)
        if reply.private and not is_personal(turn_context):
            await self._answer_privately(turn_context, person, reply)
            return
        if isinstance(cmd, REVIEW_WORDS) and not is_personal(turn_context):
            # a batch names people, their access, their last sign-in and the advice to remove it: for the
            # reviewer alone, as Slack answers it to the asker alone (the conversation hears where it went)
            activities = await self._review_cards(turn_context, person, cmd.campaign, send=False) \
                if isinstance(cmd, ReviewShow) and reply.ok else None
            await self._answer_privately(turn_context, person, reply, activities=activities or None)
            return
        if isinstance(cmd, ReviewShow) and reply.ok and await self._review_cards(turn_context, person, cmd.campaign):
            return
        card = adaptive.reply_card(reply, viewer=person.email)
        if card is None:
            await self._send(turn_context, text_activity(reply.text))
            return

        def smaller(budget: int) -> dict[str, Any]:
            return adaptive.reply_card(reply, viewer=person.email, budget=budget) or {}
        sent = await self._send(turn_context, card_activity(card, summary=reply.text.splitlines()[0]),
                                rebuild=smaller)
        view = reply.request
        if view is not None and view.requester == person.email.lower() and getattr(sent, "id", None) \
                and reply.ok and is_personal(turn_context):
            await self._track_status(turn_context, view.number, person.email, sent.id)

    async def _answer_privately(self, context: TurnContext, person: Person, reply: Reply, *,
                                activities: list[tuple[Activity, Rebuild | None]] | None = None) -> None:
        """A secret asked for in a channel or a group chat goes to the asker's personal chat (``activities``, else
        the reply's text); the conversation it was asked in hears only where it went (or where to ask), never
        the secret."""
        activity = context.activity
        tenant = activity_tenant(activity)
        bot = {"bot": activity.recipient.model_dump(by_alias=True, exclude_none=True, mode="json")
               if activity.recipient else None, "channelId": activity.channel_id,
               "serviceUrl": activity.service_url, "tenant": tenant}
        sender = activity.from_property
        member = {"id": sender.aad_object_id or sender.id, "aadObjectId": sender.aad_object_id or ""}
        sent = False
        for one, rebuild in activities or [(text_activity(reply.text), None)]:
            sent = await self.notifier.send_privately(person.email, one, bot=bot, member=member, rebuild=rebuild)
            if not sent:
                break
        await self._send(context, text_activity(SENT_PRIVATELY if sent else ASK_PRIVATELY))

    async def _review_cards(self, context: TurnContext, person: Person, campaign: int, *, send: bool = True
                            ) -> Any:
        """`review RV-n` from a reviewer: their batch as cards to decide on (the words opened it already). Sent
        here, True (False: not a reviewer's batch); with ``send=False`` the card activities, each with how its card
        is rebuilt smaller, are returned (None: the security team looking at a campaign, whose text lists every
        item)."""
        who = person.email.lower()
        view = await batch_view(self.app.deps, who, campaign, CHANNEL, opening=False)
        if view is None:
            return None if not send else False
        ids = await self.notifier.user_ids(who)
        activities = [(card_activity(review_cards.review_card(view, page=page, refresh_user_ids=ids),
                                     summary=f"{view.review_id}: {view.title}"), review_rebuild(view, page, ids))
                      for page in range(review_cards.pages(view))]
        if not send:
            return activities
        for activity, rebuild in activities:
            await self._send(context, activity, rebuild=rebuild)
        return True

    async def _track_status(self, context: TurnContext, request_id: int, email: str, activity_id: str) -> None:
        async with self.app.store.read() as repo:
            known = await repo.messages(CHANNEL, request_id, "status")
        if known:
            return
        async with self.app.store.write() as repo:
            await repo.add_message(CHANNEL, request_id, email.lower(), "status",
                                   {"activity_id": activity_id, "conversation": conversation_reference(context)},
                                   self.app.deps.now())

    # -- installs and conversation updates --------------------------------------------------------
    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._greet(turn_context)

    async def on_members_added_activity(self, members_added: list[Any], turn_context: TurnContext) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(m.id == bot_id for m in members_added or []):
            await self._greet(turn_context)

    async def _greet(self, context: TurnContext) -> None:
        if not is_personal(context):
            await self._send(context, text_activity("Hello! Talk to me in a personal chat to request or approve "
                                                    "access; I do not post requests in channels."))
            return
        try:
            person = await self._person(context)
        except ProviderError as exc:
            log.warning("identity look-up failed", error=str(exc)[:300])
            person = None
        await self._send(context, text_activity(WELCOME if person else UNKNOWN_USER))

    # -- card actions -----------------------------------------------------------------------------
    async def on_adaptive_card_invoke(self, turn_context: TurnContext,
                                      invoke_value: AdaptiveCardInvokeValue) -> AdaptiveCardInvokeResponse:
        """``adaptiveCard/action`` (Universal Actions): the SDK checked the value's shape; the answer is a card."""
        action = invoke_value.action
        verb = str(action.verb or "") if action else ""
        data = dict(action.data) if action and isinstance(action.data, dict) else {}
        with click_scope(verb):
            try:
                person = await self._person(turn_context)
            except ProviderError as exc:
                log.warning("identity look-up failed", error=str(exc)[:300])
                return self._answer(card_response(adaptive.text_card(UNAVAILABLE, attention=True)))
            if person is None:
                return self._answer(card_response(adaptive.text_card(UNKNOWN_USER, attention=True)))
            with acting_via("teams", sender_object_id(turn_context)):
                response = await self.invokes.handle(person, verb, data)
        activity = turn_context.activity
        if response.tracks and activity.reply_to_id and is_personal(turn_context):
            await self._track_status(turn_context, response.tracks, person.email, activity.reply_to_id)
        return self._answer(response)

    async def on_invoke_activity(self, turn_context: TurnContext) -> Any:
        """The SDK's invoke dispatch; its answer goes to the adapter directly.

        ``ActivityHandler.on_turn`` would send it through ``TurnContext.send_activity``, which deep-copies
        every outgoing activity: for an invoke answer that is the whole card, the largest cost the SDK
        adds to a card click. The adapter keeps the answer for the HTTP response either way.
        """
        response = await super().on_invoke_activity(turn_context)
        if response is not None:
            answer = Activity(type=ActivityTypes.invoke_response, value=self._answer_value(response))
            await turn_context.adapter.send_activities(turn_context, [answer])
        return None

    @staticmethod
    def _answer_value(response: SdkInvokeResponse) -> dict[str, Any]:
        """``response.model_dump(by_alias=True, exclude_none=True)`` without walking the body (a card).

        A body that is still a model (the SDK's answers to a malformed invoke keep theirs undumped) is
        written in its JSON form, as the SDK writes an answer it dumps itself.
        """
        body = AccessBot._wire(response.body) if isinstance(response.body, BaseModel) else response.body
        return {k: v for k, v in (("status", response.status), ("body", body)) if v is not None}

    @staticmethod
    def _wire(body: BaseModel) -> Any:
        """An answer model's JSON form: ``model_dump(mode="json", by_alias=True, exclude_none=True)``, written
        directly for a card answer (see ``_create_invoke_response``)."""
        if type(body) is AdaptiveCardInvokeResponse:
            wire = {"statusCode": body.status_code, "type": body.type, "value": body.value}
            return {k: v for k, v in wire.items() if v is not None}
        return body.model_dump(mode="json", by_alias=True, exclude_none=True)

    @staticmethod
    def _create_invoke_response(body: BaseModel | None = None) -> SdkInvokeResponse:
        """The SDK's invoke answer, without pydantic walking a card that is JSON already.

        ``ActivityHandler`` dumps the answer model in JSON mode, which walks every node of the card. The
        card is plain JSON built by :mod:`cards.adaptive` (checked against the official schema in the
        tests), so its wire form is written as is: the same dictionary ``model_dump(mode="json",
        by_alias=True, exclude_none=True)`` gives (``tests/teams/test_invoke_wire.py``). A value that is
        not plain JSON after all is written as the SDK would write it when the answer goes out
        (:func:`invoke_json`). Any other answer goes the SDK's way.
        """
        if body is not None and type(body) is AdaptiveCardInvokeResponse:
            return SdkInvokeResponse(status=int(HTTPStatus.OK), body=AccessBot._wire(body))
        return ActivityHandler._create_invoke_response(body)

    def _create_adaptive_card_invoke_error_response(self, status_code: HTTPStatus, code: str,
                                                    message: str) -> AdaptiveCardInvokeResponse:
        """The SDK's answer to a malformed ``adaptiveCard/action`` (no value, no action, not Action.Execute)
        carries an ``Exception`` as its value, which no JSON can: the Universal Actions error object instead."""
        return AdaptiveCardInvokeResponse(status_code=int(status_code), type="application/vnd.microsoft.error",
                                          value={"code": code, "message": message})

    @staticmethod
    def _answer(response: InvokeResponse) -> AdaptiveCardInvokeResponse:
        return AdaptiveCardInvokeResponse(status_code=response.status, type=CARD_TYPE, value=response.card)

    async def on_unrecognized_activity_type(self, turn_context: TurnContext) -> None:
        if turn_context.activity.type == ActivityTypes.invoke_response:
            return
        log.info("activity ignored", type=turn_context.activity.type)


def invoke_json(body: Any) -> bytes:
    """An invoke answer's body as JSON (UTF-8), as the SDK's JSON-mode dump would write it.

    A card is plain JSON (the common case); anything else (a datetime, a Decimal, a set, NaN) takes
    pydantic's JSON form, as ``model_dump(mode="json")`` gives it: ISO text, text, a list, null. Never NaN or
    Infinity, which are not JSON. Written by pydantic's own serialiser in one pass (``json.dumps`` cost four
    times as much for a card, on every click); text no UTF-8 can carry (a lone surrogate from a ``\\ud83d``
    escape in what a client sent) is written as JSON's ``\\u`` escape instead of failing the answer. A model
    inside the value is written as the SDK's dump writes it (its fields by alias, a None field left out), and a
    NaN or Infinity its own settings would write is null all the same.
    """
    try:
        written = pydantic_core.to_json(body, inf_nan_mode="null", by_alias=True, exclude_none=True)
    except pydantic_core.PydanticSerializationError:
        written = None
    if written is not None and b"NaN" not in written and b"Infinity" not in written:
        return written
    # a lone surrogate, or a model inside the value whose own settings write NaN or Infinity (pydantic's
    # ``inf_nan_mode`` does not reach into a model): its JSON-mode form, every NaN and Infinity made null
    # (a text merely holding "NaN" comes this way too, to the same value)
    plain = pydantic_core.to_jsonable_python(body, inf_nan_mode="null", by_alias=True, exclude_none=True)
    return json.dumps(_finite(plain), allow_nan=False).encode()


def _finite(value: Any) -> Any:
    """A JSON-mode value with every NaN and Infinity as None (JSON has neither)."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
