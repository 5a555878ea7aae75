"""Malformed input to the dashboard's routes gets a clear 4xx, and a server error still a dashboard page.

A NUL byte in the ``person`` filter of ``/dashboard/requests`` (any signed-in person) or in the email of
``/dashboard/people/<email>`` went to the database as is; PostgreSQL refuses text with NUL, and the page
answered a bare 500 without the dashboard's security headers. Control characters are now refused before any
query (400), and whatever else fails unexpectedly answers a plain 500 page that keeps those headers.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from handlers.dashboard.pages import Filter


def secured(page) -> bool:
    return (page.headers.get("Content-Security-Policy", "").startswith("default-src 'none'")
            and page.headers.get("Cache-Control") == "no-store"
            and page.headers.get("X-Content-Type-Options") == "nosniff")


async def test_a_nul_byte_in_the_person_filter_is_refused_not_a_server_error(web_any_db) -> None:
    """``?person=`` with a NUL answers 400 naming the problem (on either database), and the session goes on."""
    h = web_any_db
    await h.say("alice@example.com", "request analytics-read for 1d")
    cookie = await h.sign_in("alice@example.com")  # anyone signed in
    page = await h.get("/dashboard/requests?person=alice%00x", cookie=cookie)
    assert page.status == 400, f"HTTP {page.status} on a NUL in ?person= ({h.app.store.backend}): {page.text[:60]!r}"
    assert "control character" in page.text and secured(page)
    assert (await h.get("/dashboard", cookie=cookie)).status == 200


@pytest.mark.parametrize("address", ["alice%00@example.com", "alice%0A@example.com", "%7F"])
async def test_a_control_character_in_a_person_page_address_is_refused_not_a_server_error(
        web_any_db, address: str) -> None:
    """``/dashboard/people/<email>`` and ``/dashboard/people?email=`` with a control character answer 400."""
    h = web_any_db
    cookie = await h.sign_in("sam.sec@example.com")
    page = await h.get(f"/dashboard/people/{address}", cookie=cookie)
    assert page.status == 400, f"HTTP {page.status} on {address} ({h.app.store.backend}): {page.text[:60]!r}"
    assert "control characters" in page.text and secured(page)
    search = await h.get(f"/dashboard/people?email={address}", cookie=cookie)
    assert search.status == 400 and secured(search)


def test_the_filter_names_a_control_character_and_leaves_the_person_out() -> None:
    """``Filter.parse`` never passes a control character on, and marks the filter malformed."""
    flt = Filter.parse({"person": "bob\x00@example.com", "state": "active"}, [])
    assert flt.person is None and flt.malformed and flt.state == "active"
    assert flt.problems == ["the person has a control character"]
    assert not Filter.parse({"person": "bob@example.com"}, []).malformed


async def test_an_unexpected_failure_answers_a_500_page_with_the_security_headers_and_is_logged(
        web_any_db) -> None:
    """A failure no route expects (here the requests table is gone) is logged and answered with the dashboard's
    plain 500 page, with its Content-Security-Policy, no-store and nosniff, and nothing of the exception."""
    h = web_any_db
    cookie = await h.sign_in("sam.sec@example.com")
    async with h.app.store.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE requests RENAME TO requests_gone"))
    try:
        with capture_logs() as logs:
            page = await h.get("/dashboard/requests", cookie=cookie)
    finally:
        async with h.app.store.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE requests_gone RENAME TO requests"))
    assert page.status == 500 and secured(page), (page.status, dict(page.headers))
    assert "Something went wrong" in page.text
    assert not any(leak in page.text for leak in ("Traceback", "requests_gone", "no such table", "does not exist"))
    assert any(e["event"] == "dashboard request failed" and e["log_level"] == "error" for e in logs), logs
