"""Who is talking: the authenticated activity's sender, resolved through the identity provider.

Only ``from.aadObjectId`` (looked up in the identity source) or, failing that, the sender's
email / UPN from the Teams roster (``TeamsInfo.get_member``) identify a person. Message text
and card data never do.
"""

from __future__ import annotations

from typing import Any

import structlog
from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo

from bot.bootstrap import App
from handlers.ports import Person

log = structlog.get_logger("accessbot.teams")

CHANNEL = "teams"
UNKNOWN_USER = ("I could not find you in the company directory, so I cannot act for you. "
                "Ask your administrator to link your Teams account (aad_object_id) or your email.")


async def identify(app: App, context: TurnContext) -> Person | None:
    sender = context.activity.from_property
    if sender is None or not sender.id:
        return None
    oid = getattr(sender, "aad_object_id", None)
    if oid:
        person = await app.deps.directory.find_by_aad_object_id(oid)
        if person is not None:
            return person
    try:
        member = await TeamsInfo.get_member(context, sender.id)
    except Exception as exc:  # roster not reachable, or the member is not in it
        log.info("roster look-up failed", error=str(exc)[:200])
        return None
    if oid and getattr(member, "aad_object_id", None) and member.aad_object_id != oid:
        return None  # the roster disagrees with the token-bearing activity: trust neither
    email = (getattr(member, "email", None) or getattr(member, "user_principal_name", None) or "").strip()
    if not email or "@" not in email:
        return None
    return await app.service.identify(email.lower())


def conversation_reference(context: TurnContext) -> dict[str, Any]:
    ref = TurnContext.get_conversation_reference(context.activity)
    data: dict[str, Any] = ref.serialize()
    data.pop("activityId", None)
    return data


def is_personal(context: TurnContext) -> bool:
    conv = context.activity.conversation
    return bool(conv) and (getattr(conv, "conversation_type", None) or "personal") == "personal"


async def remember(app: App, context: TurnContext, person: Person) -> None:
    """Store the personal conversation reference (restart-proof) so the bot can write first later."""
    if not is_personal(context):
        return
    reference = conversation_reference(context)
    async with app.store.read() as repo:
        known = await repo.address(CHANNEL, person.email.lower())
    if known == reference:
        return
    async with app.store.write() as repo:
        await repo.save_address(CHANNEL, person.email.lower(), reference, app.deps.now())
