"""Behind https the cookie that binds a Microsoft sign-in to the browser that started it is ``__Host-`` prefixed,
like the session cookie: a sibling host (``blog.example.com`` beside ``access.example.com``) can set a cookie for
the whole domain, and could otherwise plant its own sign-in's state in a victim's browser, then send the victim
to the callback with its own code, signing the victim in as the attacker."""

from __future__ import annotations

import ssl

from tests.standins.login import LoginStandIn
from tests.standins.tls import make_tls
from tests.web.conftest import serve_dashboard

PUBLIC = "https://access.example.com"
ALICE_OID = "7d1e2a40-0a1b-4c2d-9e3f-a1b2c3d4e5f6"


async def test_the_flow_cookie_cannot_be_planted_by_a_sibling_host(sqlite_url, tmp_path, monkeypatch) -> None:
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    context = ssl.create_default_context(cafile=tls.ca_file)
    login = LoginStandIn(tls)
    login.start()
    try:
        async with serve_dashboard(sqlite_url, tmp_path, identity="directory", public_url=PUBLIC,
                                   entra_tenant_id=login.tenant, entra_client_id=login.client_id,
                                   entra_client_secret=login.client_secret, graph_url=login.graph_url,
                                   authority_url=login.url) as h:
            login.redirect_uris.add(f"{PUBLIC}/dashboard/login/entra/callback")
            login.user_oid, login.user_name = ALICE_OID, "alice@example.com"

            async def start() -> tuple[str, str]:
                begun = await h.get("/dashboard/login/entra")
                assert begun.status == 303, begun.text
                raw = begun.headers["Set-Cookie"]
                assert raw.startswith("__Host-accessbot_oidc="), raw
                assert "Secure" in raw and "Path=/;" in raw + ";" and "Domain" not in raw
                state = begun.cookies["__Host-accessbot_oidc"].value
                async with h.http.get(begun.headers["Location"], ssl=context, allow_redirects=False) as resp:
                    back = resp.headers["Location"]
                assert back.startswith(f"{PUBLIC}/dashboard/login/entra/callback?")
                return back[len(PUBLIC):], state

            # the attacker's own sign-in, its state planted under the name a sibling host can set
            callback, state = await start()
            planted = await h.get(callback, cookie=f"accessbot_oidc={state}")
            assert planted.status == 403 and "not started in this browser" in planted.text
            assert await h.events("dashboard.signed_in") == []

            callback, state = await start()  # the browser that started it signs in
            done = await h.get(callback, cookie=f"__Host-accessbot_oidc={state}")
            assert done.status == 200, done.text
            assert "__Host-accessbot_session" in done.cookies
            assert [e["actor"] for e in await h.events("dashboard.signed_in")] == ["alice@example.com"]
    finally:
        login.stop()
