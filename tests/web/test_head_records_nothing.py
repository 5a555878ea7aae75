"""HEAD is answered by aiohttp with the GET handler unless told otherwise. On an address whose GET builds or
records something that would build an evidence pack and record ``evidence.exported`` (or start a Microsoft
sign-in's flow) for an answer without a body, nothing downloaded. Those answer 405; read-only pages still
answer HEAD as GET would, without a body."""

from __future__ import annotations

import aiohttp
import pytest

from tests.web.test_entra import entra  # noqa: F401  (the fixture)

NAVIGATION = {"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


async def test_head_on_the_evidence_pack_builds_and_records_nothing(web_harness) -> None:
    h = web_harness
    cookie = await h.sign_in("sam.sec@example.com")
    answer: tuple[int, str | None, str | None] | None = None
    try:
        async with aiohttp.ClientSession() as fresh:  # a connection of its own: a body after HEAD would spoil it
            async with fresh.head(f"{h.url}/dashboard/evidence/pack?from=2000-01-01&to=2099-12-31",
                                  headers={"Cookie": cookie, **NAVIGATION}, allow_redirects=False) as resp:
                answer = resp.status, resp.headers.get("Allow"), resp.headers.get("Content-Security-Policy")
    except aiohttp.ClientError:
        pass
    exported = await h.events("evidence.exported")
    assert exported == [], f"HEAD recorded {len(exported)} export(s)"
    assert answer is not None and answer[:2] == (405, "GET") and answer[2], answer
    async with h.http.get(f"{h.url}/dashboard/evidence/pack?from=2000-01-01&to=2099-12-31",
                          headers={"Cookie": cookie, **NAVIGATION}, allow_redirects=False) as resp:
        assert resp.status == 200  # GET still exports
    assert len(await h.events("evidence.exported")) == 1


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/requests", "/dashboard/people/sam.sec@example.com",
                                  "/dashboard/evidence", "/dashboard/signin"])
async def test_head_on_read_only_pages_answers_as_get(web_harness, path: str) -> None:
    h = web_harness
    cookie = await h.sign_in("sam.sec@example.com")
    before = len(await h.events())
    async with h.http.head(h.url + path, headers={"Cookie": cookie}, allow_redirects=False) as resp:
        head = resp.status
    async with h.http.get(h.url + path, headers={"Cookie": cookie}, allow_redirects=False) as resp:
        get = resp.status
    assert head == get and head in (200, 303)
    assert len(await h.events()) == before


@pytest.mark.parametrize("path", ["/dashboard/login/entra", "/dashboard/login/entra/callback?code=x&state=y"])
async def test_head_starts_and_finishes_no_microsoft_sign_in(entra, path: str) -> None:  # noqa: F811
    h, login, _ = entra
    async with h.http.head(h.url + path, allow_redirects=False) as resp:
        assert resp.status == 405 and "Set-Cookie" not in resp.headers
    assert not login.authorize_seen and not login.code_redemptions
    assert (await h.get("/dashboard/login/entra")).status == 303  # GET still starts one
