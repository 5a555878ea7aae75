"""The sweep ends the dashboard sessions of people the identity source says are gone or inactive; when the source
cannot answer at all (Okta down for everyone: every look-up throttled or failing), no session is ended and nothing
is recorded for it, and the sessions work again when the source answers. A page asked for meanwhile is answered
503 with Retry-After ("the identity source could not be reached"), not a 500, and does not end the session
either. SQLite and PostgreSQL."""

from __future__ import annotations

from tests.standins.okta import OktaStandIn
from tests.web.conftest import serve_dashboard

PEOPLE = {"bob@example.com": None, "mark.mgr@example.com": None, "sam.sec@example.com": None}


async def test_an_idp_that_answers_nobody_ends_no_session(database_url, tmp_path) -> None:
    with OktaStandIn() as okta:
        okta.add_group("oncall")  # the example policy's member_of group: a name Okta does not know stops the start
        for email in PEOPLE:
            okta.add_user(email, department="Engineering")
        async with serve_dashboard(database_url, tmp_path, identity="okta", okta_url=okta.url,
                                   okta_token=okta.token) as h:
            cookies = {email: await h.sign_in(email) for email in ("bob@example.com", "mark.mgr@example.com")}
            for cookie in cookies.values():
                assert (await h.get("/dashboard", cookie=cookie)).status == 200

            okta.fail_next(10_000, status=503, retry_after=0)  # down for everyone
            await h.app.service.sweep(drift=False)
            h.clock.advance(minutes=10)
            await h.app.service.sweep(drift=False)
            during = await h.get("/dashboard", cookie=cookies["bob@example.com"])
            assert during.status == 503, (during.status, during.text[:300])  # nobody can be vouched for meanwhile
            assert "identity source could not be reached" in during.text and during.headers["Retry-After"], during.text
            assert during.headers["X-Frame-Options"] == "DENY"  # the dashboard's headers, a failure too
            assert await h.events("dashboard.signed_out") == []

            okta.faults.clear()
            h.clock.advance(minutes=10)
            for email, cookie in cookies.items():
                page = await h.get("/dashboard", cookie=cookie)
                assert page.status == 200, (email, page.status, page.text[:300])
            assert await h.events("dashboard.signed_out") == []

            okta.users[okta.user_id("bob@example.com")]["status"] = "DEPROVISIONED"  # gone for real: ended
            await h.app.service.sweep(drift=False)
            assert [e["actor"] for e in await h.events("dashboard.signed_out")] == ["bob@example.com"]
            assert (await h.get("/dashboard", cookie=cookies["mark.mgr@example.com"])).status == 200
