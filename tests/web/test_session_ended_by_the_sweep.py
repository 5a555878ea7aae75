"""Each sweep ends the dashboard sessions of people no longer active, whoever they are: the leaver sweep records
``user.terminated`` only for people with an open request or a managed membership, so for approvers, managers,
the security team and auditors (the people the dashboard is for), and for a rehired person's second departure,
a copied cookie that waited out the disable came back when the account was enabled again."""

from __future__ import annotations


async def test_a_copied_cookie_of_a_manager_without_memberships_survives_disable_and_reenable(web_harness) -> None:
    h = web_harness
    who = "mark.mgr@example.com"  # an approver: no grant, no managed membership
    cookie = await h.sign_in(who)
    assert (await h.get("/dashboard", cookie=cookie)).status == 200

    h.files.set_active(who, False)  # disabled for the incident; the thief holding the cookie waits
    await h.app.service.sweep(drift=False)
    h.clock.advance(minutes=10)
    await h.app.service.sweep(drift=False)
    h.clock.advance(minutes=10)
    h.files.set_active(who, True)  # reset and enabled again

    page = await h.get("/dashboard", cookie=cookie)
    terminated = await h.events("user.terminated")
    assert page.status == 401, (
        f"{who} was disabled and two leaver sweeps ran, yet the old cookie works again after the re-enable: HTTP "
        f"{page.status}; user.terminated events: {terminated}")


async def test_a_second_departure_of_a_rehired_person_does_not_end_a_session_of_the_second_stint(web_harness) -> None:
    """bob leaves (recorded), is re-enabled and signs in; his memberships went at the first departure, so no
    sweep looks at him again: his second departure is never recorded and the session of his second stint
    outlives it (leavers.py says a new departure 'is judged, and recorded, afresh')."""
    h = web_harness
    h.files.add_to_group("sg-prod-db-read", "bob@example.com")
    h.files.set_active("bob@example.com", False)
    await h.app.service.sweep(drift=False)
    assert len(await h.events("user.terminated")) == 1
    h.clock.advance(days=30)
    h.files.set_active("bob@example.com", True)  # rehired
    await h.app.service.sweep(drift=False)
    h.clock.advance(minutes=10)
    cookie = await h.sign_in("bob@example.com")  # the session of the second stint, copied
    assert (await h.get("/dashboard", cookie=cookie)).status == 200

    h.files.set_active("bob@example.com", False)  # leaves again; the thief waits
    await h.app.service.sweep(drift=False)
    h.clock.advance(minutes=10)
    h.files.set_active("bob@example.com", True)

    page = await h.get("/dashboard", cookie=cookie)
    assert page.status == 401, (
        f"bob's second departure was never recorded (user.terminated: {len(await h.events('user.terminated'))}) "
        f"and the cookie of his second stint works again: HTTP {page.status}")
