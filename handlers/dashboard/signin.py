"""Signing in to the dashboard (SPEC §8): one-time links, sessions, and OpenID Connect flows.

Secrets (link tokens, session ids, an OpenID Connect ``state``) are random, handed to the browser
once, and stored only as their SHA-256: a copy of the database signs nobody in. A link is single
use, valid five minutes and bound to the person who asked for it; redeeming it starts a session
for that person, recorded as ``dashboard.signed_in``. Every page checks the session and that its
person is still active at the identity source; a person found inactive ends the session for good.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from handlers.context import Deps
from handlers.dashboard.ports import DashboardSource, SessionRecord, SignInToken
from handlers.ports import ProviderError

LINK_TTL = timedelta(minutes=5)
FLOW_TTL = timedelta(minutes=10)
OPEN_FLOWS = 10_000  # OpenID Connect flows kept at once (a couple of KB each); the oldest go first
SESSION_TTL = timedelta(hours=8)
LINK = "link"
OIDC = "oidc"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def plausible(secret: str) -> bool:
    """Cheap shape check before touching the store: what ``new_secret`` makes, nothing else."""
    return 20 <= len(secret) <= 100 and all(c.isalnum() or c in "-_" for c in secret)


@dataclass(frozen=True)
class Viewer:
    """A signed-in person, as the identity source and the policy see them now."""

    email: str
    name: str
    security: bool


@dataclass(frozen=True)
class SignIn:
    ok: bool
    reason: str = ""  # why not: unknown | used | expired | inactive
    email: str | None = None
    session: str | None = None  # the session secret for the cookie
    expires_in: int = 0  # seconds


async def issue_link(deps: Deps, source: DashboardSource, email: str) -> str:
    """A new one-time link secret for ``email`` (the person who asked)."""
    secret = new_secret()
    now = deps.now()
    async with source.signin() as tx:
        await tx.purge(now - timedelta(days=1))
        await tx.add_token(SignInToken(token_hash=digest(secret), kind=LINK, email=email.lower(), created_at=now,
                                       expires_at=now + LINK_TTL))
    return secret


async def peek_link(deps: Deps, source: DashboardSource, secret: str) -> SignIn:
    """Whether a link could be redeemed now (for the confirmation page), without using it."""
    if not plausible(secret):
        return SignIn(False, "unknown")
    async with source.signin() as tx:
        token = await tx.get_token(digest(secret))
    return _judge(deps, token, LINK) or SignIn(True, email=token.email if token else None)


async def link_person(source: DashboardSource, secret: str) -> str | None:
    """Whom a link was made for, used or expired alike (None for a secret that is no link)."""
    if not plausible(secret):
        return None
    async with source.signin() as tx:
        token = await tx.get_token(digest(secret))
    return token.email if token is not None and token.kind == LINK else None


def _judge(deps: Deps, token: SignInToken | None, kind: str) -> SignIn | None:
    if token is None or token.kind != kind:
        return SignIn(False, "unknown")
    if token.used_at is not None:
        return SignIn(False, "used")
    if token.expires_at <= deps.now():
        return SignIn(False, "expired")
    return None


async def _start_session(deps: Deps, tx: Any, email: str, via: str, data: dict[str, Any]) -> SignIn:
    person = await deps.person(email)
    if person is None or not person.active:
        return SignIn(False, "inactive", email=email)
    now = deps.now()
    session = new_secret()
    await tx.add_session(SessionRecord(session_hash=digest(session), email=email, via=via, created_at=now,
                                       expires_at=now + SESSION_TTL))
    await tx.append("dashboard.signed_in", actor=email, ts=now, data={"channel": via, **data})
    return SignIn(True, email=email, session=session, expires_in=int(SESSION_TTL.total_seconds()))


async def redeem_link(deps: Deps, source: DashboardSource, secret: str) -> SignIn:
    """Use a link: once, within its five minutes, for the person it was issued to."""
    if not plausible(secret):
        return SignIn(False, "unknown")
    async with source.signin() as tx:
        token = await tx.get_token(digest(secret))
        refused = _judge(deps, token, LINK)
        if refused is not None:
            return refused
        assert token is not None and token.email is not None
        if not await tx.use_token(token.token_hash, deps.now()):
            return SignIn(False, "used")
        return await _start_session(deps, tx, token.email, LINK, {})


async def store_flow(deps: Deps, source: DashboardSource, state: str, flow: dict[str, Any], *,
                     keep: int = OPEN_FLOWS) -> None:
    """Keep an OpenID Connect flow (state, nonce, PKCE verifier) until the browser comes back, at most
    :data:`FLOW_TTL`. Anyone may start one, signed in or not, so the store holds at most ``keep`` open flows:
    the expired ones go, and then the oldest beyond ``keep - 1``, before this one is added. A flood of starts
    thus costs a bounded number of rows, and a real person's sign-in fails only when ``keep`` others start
    between their start and their return (they start again); refusing new starts instead would let a slow
    trickle of them shut everyone out for ten minutes at a time."""
    now = deps.now()
    async with source.flows() as tx:  # not behind the chain's lock: anyone may start one
        await tx.purge(now - timedelta(days=1))
        await tx.trim_flows(now, max(0, keep - 1))
        await tx.add_token(SignInToken(token_hash=digest(state), kind=OIDC, email=None, created_at=now,
                                       expires_at=now + FLOW_TTL, data=flow))


async def take_flow(deps: Deps, source: DashboardSource, state: str) -> dict[str, Any] | None:
    """The flow started with this ``state``, once; None when unknown, used or expired."""
    if not state or len(state) > 200:
        return None
    async with source.signin() as tx:
        token = await tx.get_token(digest(state))
        if _judge(deps, token, OIDC) is not None or token is None:
            return None
        if not await tx.use_token(token.token_hash, deps.now()):
            return None
        return token.data


async def sign_in_verified(deps: Deps, source: DashboardSource, email: str, via: str,
                           data: dict[str, Any]) -> SignIn:
    """A session for a person the identity platform vouched for (the id_token is already verified)."""
    async with source.signin() as tx:
        return await _start_session(deps, tx, email.lower(), via, data)


async def viewer_for(deps: Deps, source: DashboardSource, secret: str | None) -> Viewer | None:
    """The signed-in person behind a session cookie, or None (no, unknown, ended or expired session,
    or a person no longer active). A person found inactive (or gone from the identity source) ends the
    session for good, recorded as ``dashboard.signed_out`` {reason: ``inactive``}: enabling the account
    again later does not bring a copied cookie back to life."""
    if not secret or not plausible(secret):
        return None
    record = await source.session(digest(secret))
    if record is None or record.ended_at is not None or record.expires_at <= deps.now():
        return None
    person = await deps.person(record.email)
    # inactive now, or found inactive by the leaver sweep since the sign-in (and enabled again: a copied cookie
    # must not outlive the disable the incident response relied on)
    if person is None or not person.active or await source.terminated_since(record.email, record.created_at):
        await _end_for_good(deps, source, record.session_hash, "inactive")
        return None
    return Viewer(email=record.email, name=person.name or record.email, security=deps.is_security(record.email))


async def _end_for_good(deps: Deps, source: DashboardSource, session_hash: str, reason: str | None) -> None:
    """End a session (once: a session already ended stays as it was) and record ``dashboard.signed_out``,
    with ``reason`` when the person did not sign out themselves."""
    now = deps.now()
    async with source.signin() as tx:
        record = await tx.get_session(session_hash)
        if record is None or record.ended_at is not None:
            return
        await tx.end_session(record.session_hash, now)
        data = {"channel": record.via} | ({"reason": reason} if reason else {})
        await tx.append("dashboard.signed_out", actor=record.email, ts=now, data=data)


async def end_inactive_sessions(deps: Deps, source: DashboardSource) -> int:
    """End for good every live session whose person is no longer active (or no longer found) at the identity
    source; each sweep runs it, so a cookie nobody showed while the account was disabled does not come back when
    it is enabled again. A person the source cannot answer for is left as they are (checked next time).
    Returns how many sessions ended."""
    ended = 0
    live = await source.live_sessions(deps.now())
    for email in sorted({email for _, email in live}):
        try:
            person = await deps.person(email)
        except ProviderError:
            continue
        if person is None or not person.active:
            for session_hash, _ in [x for x in live if x[1] == email]:
                await _end_for_good(deps, source, session_hash, "inactive")
                ended += 1
    return ended


async def sign_out(deps: Deps, source: DashboardSource, secret: str | None) -> None:
    if not secret or not plausible(secret):
        return
    await _end_for_good(deps, source, digest(secret), None)
