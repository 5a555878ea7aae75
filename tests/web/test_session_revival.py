"""A dashboard session ends for good when its person turns inactive, not only while they are inactive.

docs/dashboard.md: sessions "end at once when the person turns inactive at the identity source".
The usual incident response is to disable an account (a stolen laptop, a leaked cookie), reset it, and
enable it again. A session that merely stopped answering while the account was disabled would come back to
life when the account is enabled again: the stolen cookie would sign the thief in once more.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from store.dashboard import dashboard_sessions


async def test_a_session_ended_by_the_person_turning_inactive_stays_ended_when_they_are_reactivated(
        web_any_db) -> None:
    """A copied cookie stays useless after the account is disabled and enabled again; the end is recorded once
    as ``dashboard.signed_out`` with reason ``inactive``."""
    h = web_any_db
    cookie = await h.sign_in("bob@example.com")  # the cookie an attacker copied
    assert (await h.get("/dashboard", cookie=cookie)).status == 200

    h.files.set_active("bob@example.com", False)  # the account is disabled: the session ends "at once"
    assert (await h.get("/dashboard", cookie=cookie)).status == 401
    assert (await h.get("/dashboard", cookie=cookie)).status == 401

    h.files.set_active("bob@example.com", True)  # reset and enabled again, ten minutes later
    h.clock.advance(minutes=10)
    page = await h.get("/dashboard", cookie=cookie)
    async with h.app.store.engine.connect() as conn:
        row = (await conn.execute(select(dashboard_sessions).where(
            dashboard_sessions.c.session_hash == hashlib.sha256(cookie.split("=", 1)[1].encode()).hexdigest()))).one()
    assert page.status == 401, (
        f"the old session signs in again after reactivation: HTTP {page.status}, ended_at={row.ended_at}")
    assert row.ended_at is not None
    ended = await h.events("dashboard.signed_out")
    assert [(e["actor"], e["data"]["channel"], e["data"]["reason"]) for e in ended] == [
        ("bob@example.com", "link", "inactive")]
    # a new sign-in works as before
    fresh = await h.sign_in("bob@example.com")
    assert (await h.get("/dashboard", cookie=fresh)).status == 200
