"""What the posture page shows beside the removals brake, through the real server: the re-route brake's hold (a
real sweep over a directory whose managers changed, then ``resume reroutes`` and the sweep that passes them on),
with the line on a held request's page; and the notices the outbox gave up on (a Slack stand-in that refuses every
message, a person Slack has no account for), hostile recipient and error text shown as text, the notices' own text
never shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from handlers.dashboard.holds import GIVEN_UP_DAYS
from handlers.dashboard.pages import moment
from handlers.outbox import LONGEST_RETRY, MAX_ATTEMPTS, deliver_pending
from handlers.ports import Notice
from store import schema as t
from tests.standins.slack import SlackWebApi
from tests.support import EXAMPLES
from tests.web.conftest import serve_dashboard
from tests.web.test_browser import browser, new_context, sign_in  # noqa: F401 (the fixture)

ALICE, BOB, CAROL, FRANK = "alice@example.com", "bob@example.com", "carol@example.com", "frank@example.com"
MARK, PAT, SAM, SASHA = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com", "sasha.sec@example.com"
POLICY = (EXAMPLES / "policy.yaml").read_text() + "\nsafety: {max_reroutes: 2}\n"
HOSTILE_RECIPIENT = '<script>alert("r")</script>@example.com'
HOSTILE_ERROR = '<img src=x onerror=alert(1)>'
SECRET_TEXT = "NOTICE-BODY-NOT-FOR-THE-PAGE"


def panel(html: str, name: str) -> str:
    m = re.search(rf'<section class="card" id="{name}">(.*?)</section>', html, re.S)
    assert m, f"no {name} panel"
    return m.group(1)


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


async def _hold_three(h: Any) -> list[str]:
    """alice, bob and carol each wait on mark for staging-admin; the directory then names pat their manager: three
    re-routes, one above the limit, held by the sweep."""
    refs = []
    for who in (ALICE, BOB, CAROL):
        reply = await h.say(who, "request staging-admin for 1h")
        assert reply.ok, reply.text
        refs.append(reply.request.id)

    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in (ALICE, BOB, CAROL):
                u["manager"] = PAT

    h.files.edit_directory(change)
    report = await h.app.service.sweep()
    assert report.reroutes_held == refs, report.lines()
    return refs


async def test_the_reroute_hold_on_the_posture_page_and_the_held_requests_page(sqlite_url, tmp_path) -> None:
    async with serve_dashboard(sqlite_url, tmp_path, policy=POLICY) as h:
        sam = await h.sign_in(SAM)
        page = await h.get("/dashboard/posture", cookie=sam)
        assert "Running: no re-routes are held." in text_of(panel(page.text, "reroutes"))

        refs = await _hold_three(h)
        since = moment(h.clock.now())  # the sweep's time, as the brake keeps it
        page = await h.get("/dashboard/posture", cookie=sam)
        assert page.status == 200
        reroutes = panel(page.text, "reroutes")
        text = text_of(reroutes)
        assert f"Re-routes held since {since}: 3 manager steps stay with the managers they asked (limit 2" in text
        rows = re.findall(r'<tr data-request="([^"]+)"><td><a href="([^"]+)">', reroutes)
        assert rows == [(r, f"/dashboard/requests/{r}") for r in refs], rows
        assert f"{refs[0]} 1 {MARK} {PAT}" in text, text
        assert "resume reroutes" in text and "Released" not in text

        # the held request's page says why its step is still with mark, to whoever may see it
        mark = await h.sign_in(MARK)
        for cookie in (sam, mark, await h.sign_in(ALICE)):
            req = await h.get(f"/dashboard/requests/{refs[0]}", cookie=cookie)
            assert req.status == 200
            line = text_of(req.text)
            assert (f"This step stays with the manager it asked ({MARK}): the identity provider now names {PAT}, and "
                    "the safety brake on re-routes ( safety.max_reroutes ) holds the re-route until the security "
                    "team says resume reroutes .") in line, line
        # a request waiting on a step the brake does not hold has no such line
        other = await h.say(FRANK, "request analytics-read for 2d because quarter close")
        assert other.ok, other.text
        assert "reroute-held" not in (await h.get(f"/dashboard/requests/{other.request.id}", cookie=sam)).text
        # the posture page stays the security team's
        assert (await h.get("/dashboard/posture", cookie=mark)).status == 403

        # released: who and when, until the next sweep passes them on
        assert (await h.say(SASHA, "resume reroutes")).ok
        at = moment(h.clock.now())
        text = text_of(panel((await h.get("/dashboard/posture", cookie=sam)).text, "reroutes"))
        assert f"Released {at} by {SASHA}: passed on at the next sweep" in text, text
        line = text_of((await h.get(f"/dashboard/requests/{refs[1]}", cookie=sam)).text)
        assert f"holds the re-route; released by {SASHA} at {at}: passed on at the next sweep" in line, line

        report = await h.app.service.sweep()
        assert report.reroutes_held == [], report.lines()
        text = text_of(panel((await h.get("/dashboard/posture", cookie=sam)).text, "reroutes"))
        [released] = await h.events("approval.reroutes_released")
        assert "Running: no re-routes are held." in text, text
        assert f"Last released {moment(released['ts'])} by {SASHA} (3 re-routes)." in text, text
        assert "stays with the manager it asked" not in text_of(
            (await h.get(f"/dashboard/requests/{refs[1]}", cookie=sam)).text)

        # a notice no channel could ever send (none is configured here) was never given up on: not counted
        async with h.app.store.write() as repo:
            await repo.queue_notices([Notice(BOB, "expired", SECRET_TEXT, None)], h.clock.now())
        await deliver_pending(h.app.deps)
        async with h.app.store.read() as repo:
            statuses = [r.status for r in (await repo.conn.execute(select(t.notice_outbox))).all()]
        assert statuses and set(statuses) == {"unreachable"}, statuses
        given_up = text_of(panel((await h.get("/dashboard/posture", cookie=sam)).text, "given-up"))
        assert given_up.startswith(f"Notices not delivered 0 notices given up on in the last {GIVEN_UP_DAYS} days")


@pytest.fixture
def slack_api() -> Iterator[SlackWebApi]:
    stand_in = SlackWebApi().start()
    yield stand_in
    stand_in.stop()


async def _outbox(h: Any) -> list[dict[str, Any]]:
    async with h.app.store.read() as repo:
        rows = (await repo.conn.execute(select(t.notice_outbox).order_by(t.notice_outbox.c.id))).all()
    return [dict(r._mapping) for r in rows]


async def _until_settled(h: Any) -> None:
    for _ in range(3 * MAX_ATTEMPTS):
        h.clock.advance(seconds=LONGEST_RETRY.total_seconds() + 1)
        await deliver_pending(h.app.deps)
        if not [r for r in await _outbox(h) if r["status"] == "pending"]:
            return
    raise AssertionError("notices still pending")


async def test_notices_given_up_on_in_chromium_escaped_and_without_their_text(database_url, tmp_path: Path, slack_api,
                                                                             browser) -> None:  # noqa: F811
    async with serve_dashboard(database_url, tmp_path, slack_bot_token=SlackWebApi.TOKEN,
                               slack_signing_secret="s" * 32, slack_api_url=slack_api.url + "/api/") as h:
        reply = await h.say(BOB, "request prod-db-read for 1h because INC-1 hot path")
        assert reply.ok, reply.text
        ref = reply.request.id
        slack_api.refuse("chat.postMessage", HOSTILE_ERROR)  # Slack refuses every message from now on
        async with h.app.store.write() as repo:  # as a sweep writes them: one about the request, one to nobody
            await repo.queue_notices([Notice(MARK, "expired", f"{ref} {SECRET_TEXT}", reply.request.number),
                                      Notice(HOSTILE_RECIPIENT, "brake", SECRET_TEXT, None),
                                      # one about the request whose error is short: its text would fit the trail
                                      Notice(FRANK.replace("frank", "nobody"), "expired", f"{ref} {SECRET_TEXT}",
                                             reply.request.number)], h.clock.now())
        await _until_settled(h)
        gone = [r for r in await _outbox(h) if r["status"] in ("undeliverable", "unreachable")]
        assert {(r["recipient"], r["status"]) for r in gone} >= {(MARK, "undeliverable"),
                                                                  (HOSTILE_RECIPIENT, "unreachable")}, gone
        assert len(await h.events("notice.undeliverable")) == len(gone)  # each recorded, as the page counts them

        context, guard = await new_context(browser, h.url, "phone")
        page = await context.new_page()
        await sign_in(h, page, SAM)
        response = await page.goto(f"{h.url}/dashboard/posture")
        assert response.status == 200
        panel_ = page.locator("#given-up")
        assert (await page.inner_text("#given-up-count .figure")) == str(len(gone))
        shown = await panel_.inner_text()
        assert HOSTILE_RECIPIENT in shown and HOSTILE_ERROR in shown  # as text
        assert await panel_.locator("script, img").count() == 0  # nothing of it became markup
        assert SECRET_TEXT not in await page.inner_text("body")
        rows = await panel_.locator("tbody tr").count()
        assert rows == min(len(gone), 10)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls on its own
        await panel_.locator(f"a[href='/dashboard/requests/{ref}']").first.click()
        await page.wait_for_url(f"**/dashboard/requests/{ref}")
        assert ref in await page.inner_text("h1")
        raw = await (await page.goto(f"{h.url}/dashboard/posture")).text()
        assert "&lt;script&gt;alert(" in raw and "<script>alert(" not in raw and "<img src=x" not in raw
        await context.close()
        assert guard.external == []

        # the requester's own trail lists the notice.undeliverable of their request, not the notice's text (a
        # message to someone else)
        own = (await h.get(f"/dashboard/people/{BOB}", cookie=await h.sign_in(BOB))).text
        assert "notice.undeliverable" in own and SECRET_TEXT not in own

        # the count is of the last GIVEN_UP_DAYS days
        h.clock.advance(days=GIVEN_UP_DAYS, hours=1)
        later = text_of(panel((await h.get("/dashboard/posture", cookie=await h.sign_in(SAM))).text, "given-up"))
        assert later.startswith("Notices not delivered 0 notices given up on"), later
