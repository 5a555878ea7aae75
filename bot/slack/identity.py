"""Who is acting: the Slack user id of the signed payload, resolved through the identity provider.

Only the ``user`` of a request whose signature Bolt verified identifies a person: first the
directory's ``slack_id``, then the Slack profile's email (``users.info``) looked up at the
identity provider. Button values, private metadata and message text never say who acts.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import App
from handlers.context import one_lookup_per_person
from handlers.ports import Person

log = structlog.get_logger("accessbot.slack")

CHANNEL = "slack"
UNKNOWN_USER = ("I could not find you in the company directory, so I cannot act for you. "
                "Ask your administrator to link your Slack account (slack_id) or check the email on your "
                "Slack profile.")
UNAVAILABLE = ("I cannot look people up right now (the identity provider or the directory file cannot answer), "
               "so nothing was done. Try again shortly; the security team sees the cause in the bot's log.")


def acting_user(body: dict[str, Any]) -> str | None:
    """The Slack user id of the signed payload (slash command, interaction or event)."""
    user = body.get("user")
    if isinstance(user, dict):
        uid = user.get("id")
    elif isinstance(user, str):
        uid = user
    else:
        uid = body.get("user_id") or (body.get("event") or {}).get("user")
    return uid if isinstance(uid, str) and uid else None


async def identify(app: App, client: AsyncWebClient, user_id: str | None) -> Person | None:
    """The person acting, looked up in a scope of the identification alone, closed before the command opens its own
    (:func:`handlers.context.one_lookup_per_person`): there the embedded directory's overlay is read once for all
    the look-ups asking at the same time (store/overlay.py), not once a request."""
    if not user_id:
        return None
    with one_lookup_per_person():
        return await _identify(app, client, user_id)


async def _identify(app: App, client: AsyncWebClient, user_id: str) -> Person | None:
    person = await app.deps.directory.find_by_slack_id(user_id)
    if person is not None:
        return person
    try:
        info = await client.users_info(user=user_id)
    except SlackApiError as exc:
        log.info("users.info failed", user=user_id, error=str(exc.response.get("error")))
        return None
    user = info.get("user") or {}
    if user.get("deleted") or user.get("is_bot"):
        return None
    email = str((user.get("profile") or {}).get("email") or "").strip().lower()
    if not email or "@" not in email:
        return None
    person = await app.service.identify(email)
    if person is None:
        return None
    # the email a Slack profile shows proves nothing by itself (a Slack Connect user of another organisation,
    # a second account): it names the person only when it is that person's own account in this workspace
    if person.slack_id and person.slack_id != user_id:
        log.warning("slack account is not the one linked to the person", user=user_id, email=email)
        return None
    if not person.slack_id and await own_account(app, client, email) != user_id:
        log.warning("slack account is not the workspace's account for that email", user=user_id, email=email)
        return None
    return person


async def own_account(app: App, client: AsyncWebClient, email: str) -> str | None:
    """The Slack user id this workspace gives ``email`` (``users.lookupByEmail``), remembered: the address book
    the notifier keeps, or one look-up. None when Slack does not say."""
    known: dict[str, str] = app.state.setdefault("slack_accounts", {})
    if email in known:
        return known[email]
    async with app.store.read() as repo:
        address = await repo.address(CHANNEL, email)
    uid = (address or {}).get("user")
    if not uid:
        try:
            found = await client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            log.info("users.lookupByEmail failed", email=email, error=str(exc.response.get("error")))
            return None
        uid = (found.get("user") or {}).get("id")
    if isinstance(uid, str) and uid:
        if len(known) >= 10_000:
            known.clear()
        known[email] = uid
        return uid
    return None


class AddressBook:
    """Each person's Slack user id and DM channel, in the store (restart-proof), written only when changed."""

    def __init__(self, app: App, *, size: int = 10_000) -> None:
        self.app = app
        self.size = size
        self._saved: dict[str, dict[str, Any]] = {}

    async def get(self, email: str) -> dict[str, Any] | None:
        email = email.lower()
        if email in self._saved:
            return self._saved[email]
        async with self.app.store.read() as repo:
            return await repo.address(CHANNEL, email)

    async def save(self, email: str, address: dict[str, Any]) -> None:
        email = email.lower()
        if self._saved.get(email) == address:
            return
        async with self.app.store.read() as repo:
            known = await repo.address(CHANNEL, email)
        if known != address:
            async with self.app.store.write() as repo:
                await repo.save_address(CHANNEL, email, address, self.app.deps.now())
        if len(self._saved) >= self.size:
            self._saved.clear()
        self._saved[email] = address
