"""Signing in to the dashboard by a one-time link from chat (SPEC §8), over real HTTP."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from store.dashboard import dashboard_sessions, dashboard_tokens


async def test_no_session_gets_401_and_the_sign_in_page(web_harness) -> None:
    for path in ("/dashboard", "/dashboard/requests", "/dashboard/requests/REQ-1", "/dashboard/people",
                 "/dashboard/reviews", "/dashboard/posture", "/dashboard/evidence", "/dashboard/evidence/pack"):
        page = await web_harness.get(path)
        assert page.status == 401, path
        assert "Say <code>dashboard</code>" in page.text
    page = await web_harness.get("/dashboard", cookie="accessbot_session=" + "x" * 43)
    assert page.status == 401


async def test_link_signs_in_once_sets_a_strict_http_only_cookie_and_is_recorded(web_any_db) -> None:
    h = web_any_db
    reply = await h.say("bob@example.com", "dashboard")
    assert reply.ok and f"{h.url}/dashboard/link/" in reply.text and "5 minutes" in reply.text
    link = reply.data["url"]
    secret = link.rsplit("/", 1)[1]
    async with h.app.store.engine.connect() as conn:  # only the SHA-256 of the secret is stored
        rows = (await conn.execute(select(dashboard_tokens))).all()
    assert [r.token_hash for r in rows] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert rows[0].email == "bob@example.com" and secret not in str(rows[0])

    confirm = await h.get(link[len(h.url):])  # a preview that fetches the link does not use it up
    assert confirm.status == 200 and "bob@example.com" in confirm.text and "<form method=\"post\"" in confirm.text
    assert confirm.headers["Referrer-Policy"] == "no-referrer"

    signed = await h.post(link[len(h.url):])
    assert signed.status == 303 and signed.headers["Location"] == "/dashboard"
    raw = signed.headers["Set-Cookie"]
    assert "HttpOnly" in raw and "SameSite=Strict" in raw and "Path=/" in raw and "Secure" not in raw
    morsel = signed.cookies["accessbot_session"]
    cookie = f"accessbot_session={morsel.value}"
    async with h.app.store.engine.connect() as conn:
        sessions = (await conn.execute(select(dashboard_sessions))).all()
    assert [s.session_hash for s in sessions] == [hashlib.sha256(morsel.value.encode()).hexdigest()]

    page = await h.get("/dashboard", cookie=cookie)
    assert page.status == 200 and "Bob Ortiz" in page.text
    signed_in = await h.events("dashboard.signed_in")
    assert [(e["actor"], e["data"]["channel"]) for e in signed_in] == [("bob@example.com", "link")]

    again = await h.post(link[len(h.url):])
    assert again.status == 403 and "used already" in again.text and "Set-Cookie" not in again.headers
    assert (await h.get(link[len(h.url):])).status == 403
    assert len(await h.events("dashboard.signed_in")) == 1


async def test_an_expired_or_forged_link_is_refused(web_harness) -> None:
    h = web_harness
    link = await h.link("bob@example.com")
    h.clock.advance(minutes=5, seconds=1)
    page = await h.post(link[len(h.url):])
    assert page.status == 403 and "expired" in page.text and "Set-Cookie" not in page.headers
    forged = await h.post("/dashboard/link/" + "A" * 43)
    assert forged.status == 403 and "not valid" in forged.text
    assert await h.events("dashboard.signed_in") == []


async def test_a_cross_site_post_cannot_use_a_link(web_harness) -> None:
    h = web_harness
    link = await h.link("bob@example.com")
    page = await h.post(link[len(h.url):], Origin="https://evil.example")
    assert page.status == 403 and "Set-Cookie" not in page.headers
    page = await h.post(link[len(h.url):], **{"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert page.status == 403 and "Set-Cookie" not in page.headers
    assert (await h.post(link[len(h.url):])).status == 303  # still unused: the real owner can use it


async def test_sessions_expire_and_sign_out_ends_them(web_harness) -> None:
    h = web_harness
    cookie = await h.sign_in("bob@example.com")
    assert (await h.get("/dashboard", cookie=cookie)).status == 200
    out = await h.post("/dashboard/signout", cookie=cookie)
    assert out.status == 303 and out.headers["Location"] == "/dashboard/signin"
    assert "accessbot_session=" in out.headers["Set-Cookie"]
    assert (await h.get("/dashboard", cookie=cookie)).status == 401
    assert [e["actor"] for e in await h.events("dashboard.signed_out")] == ["bob@example.com"]

    cookie = await h.sign_in("bob@example.com")
    h.clock.advance(hours=8, seconds=1)
    assert (await h.get("/dashboard", cookie=cookie)).status == 401


async def test_a_leaver_is_signed_out_at_once_and_gets_no_link(web_harness) -> None:
    h = web_harness
    cookie = await h.sign_in("bob@example.com")
    link = await h.link("bob@example.com")
    h.files.set_active("bob@example.com", False)
    assert (await h.get("/dashboard", cookie=cookie)).status == 401
    assert (await h.post(link[len(h.url):])).status == 403
    reply = await h.say("bob@example.com", "dashboard")
    assert not reply.ok and "/dashboard/link/" not in reply.text


async def test_pages_carry_a_strict_content_security_policy(web_harness) -> None:
    h = web_harness
    cookie = await h.sign_in("sam.sec@example.com")
    page = await h.get("/dashboard", cookie=cookie)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff" and page.headers["Cache-Control"] == "no-store"
    assert "<script" not in page.text


async def test_security_only_pages_answer_403_to_anyone_else(web_harness) -> None:
    h = web_harness
    await h.say("bob@example.com", "request analytics-read for 1d")
    alice = await h.say("alice@example.com", "request staging-admin for 1h")
    assert alice.request is not None
    cookie = await h.sign_in("bob@example.com")
    for path in ("/dashboard/posture", "/dashboard/evidence", "/dashboard/evidence/pack?from=2026-01-01&to=2026-12-31",
                 "/dashboard/people/alice@example.com"):
        assert (await h.get(path, cookie=cookie)).status == 403, path
    # another person's request and one that does not exist: the same answer
    other = await h.get(f"/dashboard/requests/{alice.request.id}", cookie=cookie)
    missing = await h.get("/dashboard/requests/REQ-999", cookie=cookie)
    assert other.status == missing.status == 403
    assert other.text.replace(alice.request.id, "X") == missing.text.replace("REQ-999", "X")
    own = await h.get("/dashboard/requests/REQ-1", cookie=cookie)
    assert own.status == 200 and "analytics-read" in own.text


async def test_https_public_url_makes_the_cookie_secure(sqlite_url, tmp_path) -> None:
    from tests.web.conftest import serve_dashboard

    async with serve_dashboard(sqlite_url, tmp_path, public_url="https://access.example.com") as h:
        reply = await h.say("bob@example.com", "dashboard")
        assert reply.data["url"].startswith("https://access.example.com/dashboard/link/")
        path = reply.data["url"][len("https://access.example.com"):]
        page = await h.post(path, Origin="https://access.example.com")
        raw = page.headers["Set-Cookie"]
        assert page.status == 303 and raw.startswith("__Host-accessbot_session=") and "Secure" in raw
        assert "max-age=31536000" in page.headers["Strict-Transport-Security"]


async def test_expired_links_and_sessions_are_purged(web_harness) -> None:
    h = web_harness
    await h.link("bob@example.com")
    h.clock.advance(days=2)
    await h.link("bob@example.com")
    async with h.app.store.engine.connect() as conn:
        assert len((await conn.execute(select(dashboard_tokens))).all()) == 1


async def test_a_used_link_sends_its_own_signed_in_person_on_to_the_dashboard(web_harness) -> None:
    """The button pressed again, or the link reopened, in the browser it signed in: on to the dashboard (303),
    with no new session and nothing recorded. Anyone else's session, an ended one, or none: refused as before."""
    h = web_harness
    link = (await h.link("bob@example.com"))[len(h.url):]
    signed = await h.post(link)
    bob = f"accessbot_session={signed.cookies['accessbot_session'].value}"
    for again in (await h.post(link, cookie=bob), await h.get(link, cookie=bob)):
        assert again.status == 303 and again.headers["Location"] == "/dashboard", again.text
        assert "Set-Cookie" not in again.headers
    late = (await h.link("bob@example.com"))[len(h.url):]
    h.clock.advance(minutes=6)
    for expired in (await h.get(late, cookie=bob), await h.post(late, cookie=bob)):
        assert expired.status == 303 and expired.headers["Location"] == "/dashboard"
    assert len(await h.events("dashboard.signed_in")) == 1

    carol = await h.sign_in("carol@example.com")
    for other in (await h.get(link, cookie=carol), await h.post(link, cookie=carol)):
        assert other.status == 403 and "used already" in other.text
    assert (await h.post("/dashboard/link/" + "A" * 43, cookie=bob)).status == 403  # no link at all
    assert (await h.post("/dashboard/signout", cookie=bob)).status == 303
    for ended in (await h.get(link, cookie=bob), await h.post(link, cookie=bob), await h.get(link)):
        assert ended.status == 403 and "used already" in ended.text
