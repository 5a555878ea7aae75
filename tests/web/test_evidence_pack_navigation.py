"""The evidence pack export is a GET with a side effect: only a navigation of the dashboard's own may trigger it.

Each fetch of ``/dashboard/evidence/pack`` builds a pack and appends ``evidence.exported`` to the audit chain
in the security team member's name. The session cookie is ``SameSite=Strict``, which keeps it off cross-site
requests but *not* off same-site subresource requests: an ``<img src=".../dashboard/evidence/pack?...">`` on
any sibling host of the organisation's site (a wiki, a status page, a compromised intranet app) rides the
cookie. Without a look at ``Sec-Fetch-Site`` / ``Sec-Fetch-Dest`` such a page would make a security team
member's browser record exports they never made, of any period (and spend the server's time building them);
the response itself stays unreadable (Cross-Origin-Resource-Policy), the record in the chain stays for good.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

SUBRESOURCES = {
    # <img src="https://accessbot.example.com/dashboard/evidence/pack?..."> on a page of a sibling host
    "same-site image": {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
    # a link on a sibling host's page, clicked: a navigation, but not from the dashboard
    "same-site navigation": {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"},
    # an <iframe> or <img> of the dashboard's own origin: a subresource all the same
    "same-origin frame": {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"},
    "same-origin image": {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
}


@pytest.mark.parametrize("headers", SUBRESOURCES.values(), ids=SUBRESOURCES.keys())
async def test_a_same_site_subresource_cannot_export_a_pack_in_a_security_members_name(
        web_harness, headers: dict[str, str]) -> None:
    """A request the browser marks as a subresource, or as coming from another origin, is refused (403) and
    records no ``evidence.exported``."""
    h = web_harness
    cookie = await h.sign_in("sam.sec@example.com")
    async with h.http.get(f"{h.url}/dashboard/evidence/pack?from=2000-01-01&to=2099-12-31",
                          headers={"Cookie": cookie, **headers}, allow_redirects=False) as resp:
        status = resp.status
        body = await resp.text()
        cache = resp.headers.get("Cache-Control")
    exported = await h.events("evidence.exported")
    assert status == 403 and exported == [], (
        f"HTTP {status}; recorded: {[(e['actor'], e['data']['from'], e['data']['to']) for e in exported]}")
    assert "Download button" in body and cache == "no-store"


@pytest.mark.parametrize("site", ["same-origin", "none"])
async def test_the_download_button_and_a_typed_address_still_export_the_pack(web_harness, site: str) -> None:
    """What a browser sends for the evidence page's Download button (same-origin) or an address typed or
    bookmarked (none), a top-level navigation, gets the pack and records the export."""
    h = web_harness
    cookie = await h.sign_in("sam.sec@example.com")
    days = sorted({h.clock.now().date(), datetime.now(UTC).date()})
    period = f"from={days[0] - timedelta(days=1)}&to={days[-1] + timedelta(days=1)}"
    headers = {"Cookie": cookie, "Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document",
               "Sec-Fetch-User": "?1"}
    async with h.http.get(f"{h.url}/dashboard/evidence/pack?{period}", headers=headers,
                          allow_redirects=False) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"] == "application/zip"
        await resp.read()
    assert [e["actor"] for e in await h.events("evidence.exported")] == ["sam.sec@example.com"]
