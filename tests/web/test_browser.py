"""The dashboard in a real Chromium (Playwright driving the machine's browser; none is downloaded).

Every request the page makes is routed through the test: anything not addressed to the dashboard
fails the test. Screenshots of each page at 1280 px and 390 px wide are kept under
``artifacts/dashboard/`` (ignored by git) as test artefacts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from handlers.records import ACTIVE, PENDING
from tests.web.conftest import CHAIN_RUNNING
from tests.web.scenario import live_through

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "artifacts" / "dashboard"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--no-first-run"]
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install chromium)")
        pytest.skip("Chromium is not installed")
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = chromium()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Guard:
    """Routes every request of a browser context: the dashboard's own go through, anything else is
    refused and remembered."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.external: list[str] = []
        self.seen: list[str] = []

    async def route(self, route: Any) -> None:
        url = route.request.url
        self.seen.append(url)
        if url.startswith(self.origin + "/") or url == self.origin:
            await route.continue_()
        else:
            self.external.append(url)
            await route.abort()


async def new_context(browser: Any, origin: str, size: str = "desktop") -> tuple[Any, Guard]:
    context = await browser.new_context(viewport=WIDTHS[size], device_scale_factor=1)
    guard = Guard(origin)
    await context.route("**/*", guard.route)
    return context, guard


async def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 5000, out  # drawn, not blank
    return out


async def sign_in(h: Any, page: Any, email: str) -> None:
    link = await h.link(email)
    response = await page.goto(link)
    assert response.status == 200
    await page.click("#sign-in")
    await page.wait_for_url(f"{h.url}/dashboard")


async def chain_verified(page: Any, within: float = 30.0) -> str:
    """The overview's chain panel once the first whole check has finished (reloaded until then: the page
    says it is still verifying while the check runs in the background, longer on a busy machine)."""
    deadline = asyncio.get_running_loop().time() + within
    while CHAIN_RUNNING in (text := await page.inner_text("#chain")) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)
        await page.reload()
    return text


def tile(text: str) -> str:
    return text.split()[0]


async def test_every_page_in_chromium_with_the_stores_figures(web_harness, browser) -> None:
    h = web_harness
    story = await live_through(h)
    async with h.app.store.read() as repo:
        active = await repo.find_requests(states=(ACTIVE,))
        pending = await repo.find_requests(states=(PENDING,))
        drift = await repo.open_drift()
        everything = await repo.find_requests()
    for size in WIDTHS:
        context, guard = await new_context(browser, h.url, size)
        page = await context.new_page()
        blocked: list[str] = []
        page.on("console", lambda m, seen=blocked: seen.append(m.text) if "Content Security Policy" in m.text
                else None)
        await sign_in(h, page, "sam.sec@example.com")
        assert tile(await page.inner_text("#tile-pending .figure")) == str(len(pending))
        assert tile(await page.inner_text("#tile-active .figure")) == str(sum(r.kind == "standard" for r in active))
        assert tile(await page.inner_text("#tile-exceptions .figure")) == str(
            sum(r.kind == "exception" for r in active))
        assert tile(await page.inner_text("#tile-drift .figure")) == str(len(drift))
        assert "unbroken" in await chain_verified(page)
        await shoot(page, f"overview-{size}")

        await page.goto(f"{h.url}/dashboard/requests")
        assert f"{len(everything)} requests" in await page.inner_text("#count")
        await page.select_option("select[name=profile]", "prod-db-read")
        await page.click("form.filters button")
        await page.wait_for_url("**/dashboard/requests?**profile=prod-db-read**")
        rows = await page.locator("tr[data-request]").evaluate_all("rs => rs.map(r => r.dataset.request)")
        assert sorted(rows) == sorted([story.db_read, story.exception])
        await shoot(page, f"requests-{size}")

        await page.click(f"a[href='/dashboard/requests/{story.db_read}']")
        await page.wait_for_url(f"**/dashboard/requests/{story.db_read}")
        events = [e for e in await h.events() if e["request_id"] == story.db_read]
        assert await page.locator("ol.timeline li").count() == len(events)
        assert "grant.expired" in await page.inner_text("ol.timeline")
        await shoot(page, f"request-{size}")

        for path, name, expect in (
                ("/dashboard/people/carol@example.com", "person", f"exception {story.exception}"),
                ("/dashboard/reviews", "reviews", "No review campaign has started yet"),
                ("/dashboard/posture", "posture", "Quarter over quarter"),
                ("/dashboard/evidence", "evidence", "Evidence pack")):
            response = await page.goto(h.url + path)
            assert response.status == 200, path
            assert expect in await page.inner_text("main"), path
            if name == "posture":
                assert await page.locator("svg.chart").count() >= 3
            await shoot(page, f"{name}-{size}")
        if size == "phone":  # nothing wider than the phone's screen but tables that scroll on their own
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, width
        await context.close()
        assert guard.external == [], guard.external
        assert blocked == [], blocked
        assert all(u.startswith(h.url) for u in guard.seen)


async def test_refusals_in_the_browser(web_harness, browser) -> None:
    h = web_harness
    await live_through(h)
    context, guard = await new_context(browser, h.url)
    page = await context.new_page()
    response = await page.goto(f"{h.url}/dashboard")
    assert response.status == 401 and "Sign in" in await page.inner_text("h1")

    link = await h.link("frank@example.com")
    await page.goto(link)
    await page.click("#sign-in")
    await page.wait_for_url(f"{h.url}/dashboard")
    response = await page.goto(f"{h.url}/dashboard/posture")
    assert response.status == 403 and "You may not see" in await page.inner_text("main")
    response = await page.goto(f"{h.url}/dashboard/people/alice@example.com")
    assert response.status == 403
    await shoot(page, "forbidden-desktop")

    # the link reopened, or an expired one of frank's, while this browser is signed in as frank: on to the
    # dashboard (303), not refused
    again = await page.goto(link)
    assert again.status == 200 and page.url == f"{h.url}/dashboard" and again.request.redirected_from is not None
    assert again.request.redirected_from.url == link
    late = await h.link("frank@example.com")
    h.clock.advance(minutes=6)
    expired = await page.goto(late)
    assert expired.status == 200 and page.url == f"{h.url}/dashboard"
    # a link of someone else's that was used: refused, whoever this browser is signed in as
    alices = await h.link("alice@example.com")
    await h.post(alices[len(h.url):])
    used = await page.goto(alices)
    assert used.status == 403 and "used already" in await page.inner_text("main")

    await page.goto(f"{h.url}/dashboard")
    await page.click("form.who button")
    await page.wait_for_url(f"{h.url}/dashboard/signin")
    response = await page.goto(f"{h.url}/dashboard")
    assert response.status == 401
    # signed out: frank's own used and expired links are refused again
    used = await page.goto(link)
    assert used.status == 403 and "used already" in await page.inner_text("main")
    expired = await page.goto(late)
    assert expired.status == 403 and "expired" in await page.inner_text("main")
    await context.close()
    assert guard.external == []


async def test_the_sign_in_button_pressed_again_goes_on_to_the_dashboard(web_harness, browser) -> None:
    """The link's page open in two tabs: the first press signs in, the second (the link used by then) goes on to
    the dashboard in the session the first began, and nothing more is recorded."""
    h = web_harness
    context, guard = await new_context(browser, h.url)
    first, second = await context.new_page(), await context.new_page()
    link = await h.link("frank@example.com")
    for tab in (first, second):
        assert (await tab.goto(link)).status == 200
    await first.click("#sign-in")
    await first.wait_for_url(f"{h.url}/dashboard")
    async with second.expect_navigation() as landed:
        await second.click("#sign-in")
    response = await landed.value
    assert response.status == 200 and second.url == f"{h.url}/dashboard"
    assert "Frank Li" in await second.inner_text("body")
    assert len(await h.events("dashboard.signed_in")) == 1
    await context.close()
    assert guard.external == []


async def test_the_route_guard_catches_an_external_request(web_harness, browser) -> None:
    """The detector works: a page that asks for a remote image is caught by the guard."""
    context, guard = await new_context(browser, web_harness.url)
    page = await context.new_page()
    await page.set_content("<img src='http://assets.example.invalid/logo.png'>")
    await page.wait_for_timeout(200)
    await context.close()
    assert any("assets.example.invalid" in u for u in guard.external)
