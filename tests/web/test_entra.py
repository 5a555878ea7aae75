""""Sign in with Microsoft" (OpenID Connect, authorization code + PKCE through msal) against the
login stand-in over HTTPS: the authorization endpoint, the token endpoint, and the id_token's
signature and nonce checked by us."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.standins.login import LoginStandIn
from tests.standins.tls import make_tls
from tests.web.conftest import WebHarness, serve_dashboard

ALICE_OID = "7d1e2a40-0a1b-4c2d-9e3f-a1b2c3d4e5f6"  # aad_object_id in examples/directory.yaml


@pytest.fixture
async def entra(sqlite_url, tmp_path, monkeypatch) -> AsyncIterator[tuple[WebHarness, LoginStandIn, Any]]:
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    login = LoginStandIn(tls)
    login.start()
    try:
        async with serve_dashboard(sqlite_url, tmp_path, identity="directory", entra_tenant_id=login.tenant,
                                   entra_client_id=login.client_id, entra_client_secret=login.client_secret,
                                   graph_url=login.graph_url, authority_url=login.url) as h:
            login.redirect_uris.add(f"{h.url}/dashboard/login/entra/callback")
            login.user_oid, login.user_name = ALICE_OID, "alice@example.com"
            yield h, login, ssl.create_default_context(cafile=tls.ca_file)
    finally:
        login.stop()


async def start(h: WebHarness, context: ssl.SSLContext) -> tuple[str, str]:
    """Start a sign-in and let the stand-in sign the user in: (callback path with query, flow cookie)."""
    begun = await h.get("/dashboard/login/entra")
    assert begun.status == 303, begun.text
    flow = begun.cookies["accessbot_oidc"]
    assert "SameSite=Lax" in begun.headers["Set-Cookie"] and "HttpOnly" in begun.headers["Set-Cookie"]
    async with h.http.get(begun.headers["Location"], ssl=context, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        back = resp.headers["Location"]
    assert back.startswith(f"{h.url}/dashboard/login/entra/callback?")
    return back[len(h.url):], f"accessbot_oidc={flow.value}"


async def test_sign_in_with_microsoft(entra) -> None:
    h, login, context = entra
    assert "Sign in with Microsoft" in (await h.get("/dashboard/signin")).text
    callback, flow = await start(h, context)
    asked = login.authorize_seen[-1]
    assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
    done = await h.get(callback, cookie=flow)
    assert done.status == 200, done.text
    assert 'http-equiv="refresh"' in done.text  # a same-site navigation carries the Strict cookie on
    session = done.cookies["accessbot_session"]
    assert "SameSite=Strict" in done.headers["Set-Cookie"]
    redeemed = login.code_redemptions[-1]
    assert redeemed["code_verifier"] and redeemed["redirect_uri"].endswith("/dashboard/login/entra/callback")
    page = await h.get("/dashboard", cookie=f"accessbot_session={session.value}")
    assert page.status == 200 and "Alice Ng" in page.text
    signed = await h.events("dashboard.signed_in")
    assert [(e["actor"], e["data"]["channel"], e["data"]["oid"]) for e in signed] == [
        ("alice@example.com", "entra", ALICE_OID)]
    again = await h.get(callback, cookie=flow)  # the same callback once more: the flow is used up
    assert again.status == 403 and "accessbot_session" not in again.cookies


@pytest.mark.parametrize("fault", ["sign_with_other_key", "wrong_nonce", "wrong_audience"])
async def test_a_forged_or_replayed_id_token_signs_nobody_in(entra, fault) -> None:
    h, login, context = entra
    setattr(login, fault, True)
    callback, flow = await start(h, context)
    page = await h.get(callback, cookie=flow)
    assert page.status == 403 and "accessbot_session" not in page.cookies
    assert await h.events("dashboard.signed_in") == []


async def test_a_callback_this_browser_did_not_start_is_refused(entra) -> None:
    h, login, context = entra
    callback, _ = await start(h, context)  # the attacker's own sign-in, delivered to a victim without the cookie
    page = await h.get(callback)
    assert page.status == 403 and "not started in this browser" in page.text
    assert not login.code_redemptions  # refused before the code was redeemed
    page = await h.get(callback, cookie="accessbot_oidc=someone-elses-state")
    assert page.status == 403


async def test_an_account_no_person_is_linked_to_is_refused(entra) -> None:
    h, login, context = entra
    login.user_oid = "00000000-0000-0000-0000-000000000000"
    callback, flow = await start(h, context)
    page = await h.get(callback, cookie=flow)
    assert page.status == 403 and "not linked" in page.text
    assert await h.events("dashboard.signed_in") == []


async def test_without_entra_there_is_no_microsoft_sign_in(web_harness) -> None:
    page = await web_harness.get("/dashboard/signin")
    assert "Sign in with Microsoft" not in page.text
    assert (await web_harness.get("/dashboard/login/entra")).status == 404


async def test_a_crafted_callback_puts_no_words_of_its_own_on_the_page(entra) -> None:
    """The callback answers an ``error`` only for a sign-in this browser started, and names it only as the code it
    is: an address anyone can craft (``...callback?error=Your account is locked. Call 555-0100``) must not show
    the crafter's sentence on the dashboard's own page."""
    h, login, context = entra
    words = "Your account is locked. Call the help desk at 555-0100"
    page = await h.get(f"/dashboard/login/entra/callback?{urlencode({'error': words})}")
    assert page.status == 403 and "555-0100" not in page.text and "locked" not in page.text

    _, flow = await start(h, context)  # a real start; the crafter still cannot choose the words
    state = login.authorize_seen[-1]["state"]
    page = await h.get(f"/dashboard/login/entra/callback?{urlencode({'error': words, 'state': state})}", cookie=flow)
    assert page.status == 403 and "555-0100" not in page.text and "locked" not in page.text
    assert await h.events("dashboard.signed_in") == []


async def test_an_error_microsoft_returns_is_named_by_its_code(entra) -> None:
    h, login, context = entra
    _, flow = await start(h, context)
    state = login.authorize_seen[-1]["state"]
    query = urlencode({"error": "access_denied", "error_description": "AADSTS65004: User declined to consent.",
                       "state": state})
    page = await h.get(f"/dashboard/login/entra/callback?{query}", cookie=flow)
    assert page.status == 403 and "Microsoft sign-in refused: access_denied." in page.text
    assert not login.code_redemptions and "accessbot_session" not in page.cookies
