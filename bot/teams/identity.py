"""Who is talking: the authenticated activity's sender, resolved through the identity provider.

Only ``from.aadObjectId`` (looked up in the identity source) identifies a person; the activity
comes from a served tenant (:mod:`bot.teams.gate`). When the identity source is not Entra (the
embedded directory, Okta), a sender whose object id it does not know may also be found by the
email / UPN of their Teams roster entry (the Bot Connector's conversation member). With Entra, a
roster email alone never identifies anyone: the object id is the identity. Message text and card
data never do.
"""

from __future__ import annotations

import copy
from typing import Any

import structlog
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.core.connector import ConnectorClientBase

from bot.bootstrap import App
from handlers.context import one_lookup_per_person
from handlers.ports import Person

log = structlog.get_logger("accessbot.teams")

CHANNEL = "teams"
UNKNOWN_USER = ("I could not find you in the company directory, so I cannot act for you. "
                "Ask your administrator to link your Teams account (aad_object_id) or your email.")
UNAVAILABLE = ("I cannot look people up right now (the identity provider or the directory file cannot answer), "
               "so nothing was done. Try again shortly; the security team sees the cause in the bot's log.")


async def roster_member(context: TurnContext, user_id: str) -> Any:
    """The sender's Teams roster entry (in a team: the team's roster), from the turn's connector client."""
    channel_data = context.activity.channel_data if isinstance(context.activity.channel_data, dict) else {}
    team = channel_data.get("team") if isinstance(channel_data.get("team"), dict) else {}
    conversation = team.get("id") or (context.activity.conversation.id if context.activity.conversation else None)
    client = context.services.get(ConnectorClientBase)
    if not conversation or client is None:
        raise LookupError("no conversation to look the member up in")
    return await client.get_conversation_member(conversation, user_id)


async def identify(app: App, context: TurnContext) -> Person | None:
    """The sender, looked up in a scope (:func:`handlers.context.one_lookup_per_person`): a card refresh's own, or one
    of the identification alone, closed before the command opens its own (a decision looks people up afresh under
    its lock). In a scope the embedded directory's overlay is read once for all the look-ups asking at the same
    time (store/overlay.py): a burst of clicks on one card identifies its senders with a few reads, not one each."""
    with one_lookup_per_person():
        return await _identify(app, context)


async def _identify(app: App, context: TurnContext) -> Person | None:
    sender = context.activity.from_property
    if sender is None or not sender.id:
        return None
    oid = sender.aad_object_id
    if oid:
        person = await app.deps.directory.find_by_aad_object_id(oid)
        if person is not None:
            return person
    if app.settings.identity_source == "entra":
        return None  # Entra knows everyone by object id: an unknown one is nobody, whatever the roster says
    try:
        member = await roster_member(context, sender.id)
    except Exception as exc:  # roster not reachable, or the member is not in it
        log.info("roster look-up failed", error=str(exc)[:200])
        return None
    member_oid = getattr(member, "aad_object_id", None) or (getattr(member, "model_extra", None) or {}).get("objectId")
    if oid and member_oid and member_oid != oid:
        return None  # the roster disagrees with the token-bearing activity: trust neither
    email = (getattr(member, "email", None) or getattr(member, "user_principal_name", None) or "").strip()
    if not email or "@" not in email:
        return None
    person = await app.service.identify(email.lower())
    linked = (person.aad_object_id or "").strip().lower() if person is not None else ""
    if linked and linked != (oid or "").strip().lower():
        # the directory links this person to another Teams account: a roster address proves nothing by itself
        log.warning("teams account is not the one linked to the person", email=email.lower())
        return None
    return person


def conversation_reference(context: TurnContext) -> dict[str, Any]:
    data: dict[str, Any] = context.activity.get_conversation_reference().model_dump(
        by_alias=True, exclude_none=True, mode="json")
    data.pop("activityId", None)
    return data


class References:
    """:func:`conversation_reference`, made once for as long as what it is made of stays the same.

    A card click builds the SDK's reference model and dumps it in JSON mode to learn what it learnt from the
    last activity of the same conversation: a tenth of a click's cost on the Teams route. A reference is made of
    the sender, the bot's account, the conversation, the channel, the locale, the service URL and the request
    id; when each of these equals (pydantic's field-by-field equality) the one the last reference of the
    conversation was made of, that reference is the same, and is returned as it was made. The dictionary
    returned is shared: read it, or copy it before changing it.

    Equality is exact only for the typed fields (text, booleans): values of no declared type (an account's
    fields beyond the SDK's, a conversation's ``properties``) compare equal across types (``1 == 1.0 ==
    True``) and would keep a reference that no longer says what the activity says. An activity carrying any
    is given a reference made afresh (Teams sends none).
    """

    def __init__(self, *, size: int = 10_000) -> None:
        self.size = size
        self._made: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def of(self, context: TurnContext) -> dict[str, Any]:
        activity = context.activity
        conversation = activity.conversation
        if _untyped(activity.from_property) or _untyped(activity.recipient) \
                or (conversation is not None and conversation.properties is not None):
            return conversation_reference(context)
        channel = activity.channel_id
        made_of = (activity.from_property, activity.recipient, conversation, str(channel) if channel else None,
                   getattr(channel, "sub_channel", None), activity.locale, activity.service_url,
                   activity.request_id)
        key = conversation.id if conversation is not None and conversation.id else ""
        found = self._made.get(key)
        if found is not None and found[0] == made_of:
            return found[1]
        reference = conversation_reference(context)
        if len(self._made) >= self.size:
            self._made.clear()
        self._made[key] = (made_of, reference)
        return reference


def _untyped(account: Any) -> bool:
    """An account carrying fields the SDK does not declare (kept as sent, of any type)."""
    return bool(getattr(account, "model_extra", None))


def is_personal(context: TurnContext) -> bool:
    """A personal (1:1) chat: not a channel, not a group chat. Teams names the type; a conversation that marks
    itself a group (``isGroup``) is never personal, whatever its type says or leaves out."""
    conv = context.activity.conversation
    if not conv or getattr(conv, "is_group", False):
        return False
    return (conv.conversation_type or "personal") == "personal"


class AddressBook:
    """Saves conversation references in the store (the record), skipping writes this process already made.

    The memo only avoids re-reading and re-writing an unchanged reference on every activity; the
    database stays the one place references are read from when the bot writes first.
    """

    def __init__(self, app: App, *, size: int = 10_000) -> None:
        self.app = app
        self.size = size
        self._saved: dict[str, dict[str, Any]] = {}

    async def save(self, key: str, reference: dict[str, Any]) -> None:
        if self._saved.get(key) == reference:  # dict equality: nested, and blind to key order
            return
        async with self.app.store.read() as repo:
            known = await repo.address(CHANNEL, key)
        if known != reference:
            async with self.app.store.write() as repo:
                await repo.save_address(CHANNEL, key, reference, self.app.deps.now())
        if len(self._saved) >= self.size:
            self._saved.clear()
        self._saved[key] = copy.deepcopy(reference)  # the caller's dictionary may change after this
