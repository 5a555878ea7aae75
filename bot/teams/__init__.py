"""Microsoft Teams: ``POST /api/messages`` on the shared aiohttp application, and proactive messages.

Built on the Microsoft 365 Agents SDK (the maintained successor of the Bot Framework SDK: the same
protocol and the same Azure Bot registration). ``mount`` builds the SDK's ``CloudAdapter`` with
this bot's client factory (:mod:`bot.teams.clients`), and the route does, in order:

1. :class:`~bot.teams.gate.Gate` ``door``: without ``MicrosoftAppId`` nothing is accepted, unless
   ``ACCESSBOT_TEAMS_EMULATOR=1`` asks for the local emulator mode (this machine only);
2. the SDK's token validation (:mod:`bot.teams.auth`): every failure is a 401, nothing recorded;
3. ``Gate.admit``: only the served tenants (403 otherwise, before anything is recorded or
   remembered), and in emulator mode only a ``serviceUrl`` on this machine;
4. :func:`first_time`: an activity Teams re-sends (the same activity id in the same conversation, as
   it does when the bot answered slower than about 15 seconds) is not handled again (:func:`repeated`),
   unless its first turn failed before recording anything (:func:`unsee`);
5. the SDK's turn (``CloudAdapter.process_activity``) into :class:`~bot.teams.bot.AccessBot`; a card click,
   whose whole answer is the HTTP response, runs the SDK's invoke dispatch without the adapter's pipeline when
   there is no middleware, no turn-error handler and no telemetry provider, on the SDK release it was reviewed
   against (:mod:`bot.teams.card_turn`).

A :class:`TeamsNotifier` is added to the fan-out notifier for the messages the bot writes first.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from microsoft_agents.activity import Activity
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import ClaimsIdentity
from microsoft_agents.hosting.core.authorization import Connections

from bot.bootstrap import App
from bot.notify import FanoutNotifier
from bot.teams.auth import InboundAuth, Unauthorized, build_authentication
from bot.teams.bot import AccessBot, invoke_json
from bot.teams.card_turn import card_turn, direct
from bot.teams.clients import ClientFactory, opener
from bot.teams.gate import EMULATOR, OFF, SECURED, Gate, Refusal
from bot.teams.invoke import request_number
from bot.teams.notifier import TeamsNotifier
from bot.teams.review_invoke import names_review
from cards import adaptive
from handlers.origin import counting_appends

log = structlog.get_logger("accessbot.teams")

ROUTE = "/api/messages"
MAX_BODY = 256 * 1024
CARD_ACTION = "adaptiveCard/action"
SEEN_KEY_MAX = 200  # the width of ``seen_events.key``
RECENT_CLICKS = 10_000  # Approve/Deny activity ids one process remembers
ALREADY_DONE = "Already done: Teams sent this action again, and it was not carried out twice."


@dataclass
class TeamsChannel:
    adapter: CloudAdapter
    bot: AccessBot
    notifier: TeamsNotifier
    inbound: InboundAuth
    clients: ClientFactory
    gate: Gate
    app_id: str
    # Approve/Deny clicks seen by this process (see :func:`first_time`), oldest first
    recent: OrderedDict[str, None] = field(default_factory=OrderedDict)


TEAMS_KEY = web.AppKey("accessbot_teams", TeamsChannel)


def build_channel(app: App, connections: Connections | None = None) -> TeamsChannel:
    """The channel from the settings; ``connections`` replaces the SDK connection manager built from them."""
    gate = Gate.from_settings(app.settings)
    _, inbound, built = build_authentication(app.settings)
    clients = ClientFactory(connections or built, may_call=gate.may_call)
    adapter = CloudAdapter(channel_service_client_factory=clients)
    adapter.on_turn_error = None  # errors surface to our route (logged, answered 500)
    notifier = TeamsNotifier(app, opener(clients, app.settings.app_id))
    return TeamsChannel(adapter=adapter, bot=AccessBot(app, notifier), notifier=notifier, inbound=inbound,
                        clients=clients, gate=gate, app_id=app.settings.app_id)


def _refuse(refusal: Refusal) -> web.Response:
    return web.json_response({"error": refusal.error}, status=refusal.status)


def _text(value: Any) -> bool:
    """Text UTF-8 can carry: no lone surrogate."""
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value is not None


def _card_action(activity: Activity) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """An ``adaptiveCard/action`` invoke's value, action and verb, when they are what Teams sends."""
    if activity.type != "invoke" or activity.name != CARD_ACTION or not isinstance(activity.value, dict):
        return None
    action = activity.value.get("action")
    if not isinstance(action, dict) or not isinstance(action.get("verb"), str):
        return None
    return activity.value, action, action["verb"]


def seen_key(activity: Activity) -> str | None:
    """The key under which an activity is remembered as handled, or None for one that is handled every time.

    Every activity with an id is remembered, except invokes other than card actions (the bot carries none
    of them out) and card refreshes (they only read: Teams sends one, each with its own id, whenever the
    card is shown, and a repeat is answered as the first was). A key wider than the store's column is
    replaced by its SHA-256, never cut: two activities of one long conversation id stay apart.
    """
    if not activity.id or not activity.conversation or not activity.conversation.id:
        return None
    if activity.type == "invoke":
        action = _card_action(activity)
        if action is None or action[2] == adaptive.VERB_REFRESH:
            return None
    key = f"teams:act:{activity.conversation.id}:{activity.id}"
    if len(key) > SEEN_KEY_MAX or not _text(key):
        key = "teams:act:sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key


async def first_time(channel: TeamsChannel, activity: Activity) -> bool:
    """True unless the activity was handled before (same activity id in the same conversation).

    An Approve or Deny click is remembered by this process alone (the last :data:`RECENT_CLICKS`): a decision
    is never taken twice whatever reaches the service (a step decided is decided), so the store's write per
    click (which queued every click of a burst behind the others) buys nothing there; a re-send this
    process saw is answered with the card as it stands, one another worker took is answered by the service.
    """
    key = seen_key(activity)
    if key is None:
        return True
    action = _card_action(activity)
    if action is not None and action[2] in (adaptive.VERB_APPROVE, adaptive.VERB_DENY):
        if key in channel.recent:
            return False
        channel.recent[key] = None
        while len(channel.recent) > RECENT_CLICKS:
            channel.recent.popitem(last=False)
        return True
    app = channel.bot.app
    return await app.store.first_seen(key, app.deps.now())


async def unsee(channel: TeamsChannel, activity: Activity) -> None:
    """Forget that an activity came, after a turn that failed before it recorded anything: the Bot Connector
    re-sends an activity answered with an error, and that re-send is then handled as the first delivery was
    meant to be (a message that met a database or connector failure is not lost). A turn that recorded an
    event stays remembered: its re-send is a repeat (:func:`repeated`), so nothing is carried out twice."""
    key = seen_key(activity)
    if key is None:
        return
    if key in channel.recent:
        channel.recent.pop(key, None)
        return
    try:
        async with channel.bot.app.store.write() as repo:
            await repo.unsee(key)
    except Exception:  # the store that failed the turn may fail this too: the re-send is then ignored
        log.warning("a failed activity stays marked as handled", key=key, exc_info=True)


def repeated(activity: Activity) -> Activity | web.Response:
    """The answer to an activity Teams re-sent, none of which is carried out again.

    A message or an update: an empty 200, nothing said or recorded. A card action naming a request or
    an access review: handled as that card's refresh (returned, for the turn), so the card shows the
    current state and the sender sees what their first click did. Any other card action: a Universal
    Actions message saying so, which leaves the card as it is.
    """
    log.info("repeated activity ignored", type=activity.type, name=activity.name)
    action = _card_action(activity)
    if action is None:
        return web.Response(status=200)
    value, act, _ = action
    data = act.get("data")
    if isinstance(data, dict) and (request_number(data) is not None or names_review(data)):
        refresh = activity.model_copy()
        refresh.value = {**value, "action": {**act, "verb": adaptive.VERB_REFRESH}}
        return refresh
    return web.json_response({"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                              "value": ALREADY_DONE})


def make_handler(channel: TeamsChannel) -> Any:
    async def messages(request: web.Request) -> web.StreamResponse:
        refusal = channel.gate.door(request.remote, request.headers)
        if refusal is not None:
            return _refuse(refusal)
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.json_response({"error": "expected application/json"}, status=415)
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return web.json_response({"error": "activity too large"}, status=413)
        try:
            body = json.loads(raw)
            activity = Activity.model_validate(body) if isinstance(body, dict) else None
        except Exception:
            activity = None
        if activity is None or not activity.type or not activity.conversation or not activity.conversation.id \
                or activity.recipient is None or not _text(activity.channel_id):
            # the Bot Connector always names the conversation, the bot and the channel (in text: the SDK's own
            # type for channelId takes half an emoji, which its conversation reference then refuses)
            return web.json_response({"error": "not an activity"}, status=400)
        identity = ClaimsIdentity()  # emulator mode: anonymous
        if channel.gate.mode == SECURED:
            try:
                identity = await channel.inbound.authenticate(request.headers.get("Authorization"), body)
            except Unauthorized:
                return web.json_response({"error": "unauthorized"}, status=401)
        refusal = channel.gate.admit(body)
        if refusal is not None:  # before the turn: nothing is recorded, no reference is remembered
            log.info("activity refused", status=refusal.status, reason=refusal.error, type=activity.type)
            return _refuse(refusal)
        first = await first_time(channel, activity)
        if not first:
            answer = repeated(activity)
            if isinstance(answer, web.Response):
                return answer
            activity = answer
        with counting_appends() as appended:
            try:
                # a card click: the SDK's dispatch, no pipeline
                if direct(channel.adapter, channel.bot, identity, activity):
                    response = await card_turn(channel.adapter, channel.bot, identity, activity)
                else:
                    response = await channel.adapter.process_activity(identity, activity, channel.bot.on_turn)
            except Exception:
                log.exception("activity failed", type=activity.type, name=activity.name)
                if first and not appended[0]:
                    await unsee(channel, activity)
                return web.json_response({"error": "the bot could not handle this activity"}, status=500)
        if response is not None:
            try:
                payload = invoke_json(response.body)
            except Exception:  # an answer no JSON can carry: say so, as for any failed activity
                log.exception("invoke answer not written", type=activity.type, name=activity.name)
                return web.json_response({"error": "the bot could not write its answer"}, status=500)
            return web.Response(body=payload, status=response.status or 501, content_type="application/json",
                                charset="utf-8")
        return web.Response(status=200)

    return messages


def mount(web_app: web.Application, app: App, notifier: FanoutNotifier, *,
          connections: Connections | None = None) -> bool:
    """Add ``POST /api/messages`` and the Teams notifier; False (the route refusing all) when Teams is off."""
    gate = Gate.from_settings(app.settings)
    if gate.mode == OFF:
        async def off(request: web.Request) -> web.Response:
            refusal = gate.door(request.remote, request.headers)
            assert refusal is not None
            return _refuse(refusal)

        web_app.router.add_post(ROUTE, off)
        return False
    channel = build_channel(app, connections)
    web_app[TEAMS_KEY] = channel
    web_app.router.add_post(ROUTE, make_handler(channel))
    notifier.add(channel.notifier)

    async def drain(_: web.Application) -> None:
        await channel.notifier.idle()
        await channel.clients.close()

    web_app.on_cleanup.append(drain)
    if gate.mode == EMULATOR:
        log.warning("Teams endpoint in local emulator mode (ACCESSBOT_TEAMS_EMULATOR=1): activities are not "
                    "authenticated and are taken from this machine only; never put this behind a proxy")
    return True
