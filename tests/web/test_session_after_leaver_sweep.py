"""A dashboard session ends for good when the leaver sweep found its person inactive after the sign-in, even
if the cookie was never presented while the account was disabled: the thief holding a copied cookie waits out
the disable/reset window, and the account enabled again must not bring it back (docs/dashboard.md)."""

from __future__ import annotations


async def test_a_session_of_a_person_the_leaver_sweep_saw_inactive_is_not_revived(web_any_db) -> None:
    h = web_any_db
    cookie = await h.sign_in("bob@example.com")  # the copied cookie
    assert (await h.get("/dashboard", cookie=cookie)).status == 200

    h.files.add_to_group("sg-prod-db-read", "bob@example.com")  # a standing membership: bob is a leaver to find
    h.files.set_active("bob@example.com", False)  # disabled; the thief waits
    await h.app.service.sweep(drift=False)
    terminated = await h.events("user.terminated")
    assert terminated and "bob@example.com" in str(terminated), terminated  # the bot saw bob leave
    h.clock.advance(minutes=10)
    h.files.set_active("bob@example.com", True)  # reset and enabled again

    page = await h.get("/dashboard", cookie=cookie)
    ended = await h.events("dashboard.signed_out")
    assert page.status == 401, (
        f"the session of a person the bot recorded as terminated signs in again after reactivation: HTTP "
        f"{page.status}; dashboard.signed_out events: {ended}")
