"""The last anchor on the overview, read from ``ACCESSBOT_ANCHOR_FILE`` itself: when it was written, the head
it holds, and whether the file still matches the chain (the comparison ``audit verify --anchors`` makes)."""

from __future__ import annotations

import asyncio
import json
import re
from html import unescape
from pathlib import Path

from handlers.dashboard.pages import moment
from tests.tamper import tamper
from tests.test_anchors import rewrite_history
from tests.web.conftest import WebHarness, serve_dashboard

SAM = "sam.sec@example.com"


def panel(html: str) -> str:
    m = re.search(r'<section class="card" id="anchor">(.*?)</section>', html, re.S)
    assert m, "no anchor panel"
    inline = re.sub(r"</?(code|span|strong)[^>]*>", "", m.group(1))
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def field(html: str, name: str) -> str:
    m = re.search(rf'id="{name}">([^<]*)<', html)
    assert m, name
    return unescape(m.group(1))


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


async def overview(h: WebHarness, cookie: str) -> str:
    page = await h.overview(cookie)
    assert page.status == 200, page.text
    return page.text


async def test_without_an_anchor_file_the_panel_says_the_chain_is_not_anchored(web_harness) -> None:
    h = web_harness
    text = panel(await overview(h, await h.sign_in(SAM)))
    assert text.startswith("Last anchor No anchor file is set (ACCESSBOT_ANCHOR_FILE)")


async def test_the_last_anchor_matches_until_anchored_history_is_rewritten(database_url, tmp_path) -> None:
    anchor = tmp_path / "anchors" / "accessbot.anchors"
    async with serve_dashboard(database_url, tmp_path, env={"ACCESSBOT_ANCHOR_FILE": str(anchor)}) as h:
        sam = await h.sign_in(SAM)
        assert "No anchor yet" in panel(await overview(h, sam)) and not anchor.exists()

        assert (await h.say("bob@example.com", "request staging-admin for 1h because deploy")).ok
        await h.app.service.sweep(drift=False)  # the sweep anchors the head
        [written] = lines(anchor)
        events = await h.events()
        assert (written["seq"], written["hash"]) == (events[-1]["seq"], events[-1]["hash"])

        html = await overview(h, sam)
        text = panel(html)
        assert text.startswith("Last anchor The anchor file matches the chain."), text
        assert field(html, "anchor-seq") == str(written["seq"]) and field(html, "anchor-hash") == written["hash"]
        assert field(html, "anchor-time") == moment(written["anchored_at"])
        head = (await h.events())[-1]["seq"]  # the overview itself recorded nothing; sign-ins did
        assert field(html, "anchor-since") == str(head - written["seq"])
        assert f"File: {anchor}" in text

        # the database's owner rewrites bob's justification and recomputes every hash after it
        submitted = (await h.events("request.submitted"))[0]
        await asyncio.to_thread(rewrite_history, database_url, submitted["seq"],
                                {**submitted["data"], "justification": "approved change"})
        html = await overview(h, sam)
        assert "Verified:" in html  # the chain alone still verifies
        text = panel(html)
        assert "The anchor file DOES NOT MATCH the chain." in text
        assert f"REWRITTEN at seq {written['seq']}" in text and written["hash"] in text


async def test_a_chain_cut_short_after_the_anchor_and_a_damaged_file_are_named(sqlite_url, tmp_path) -> None:
    anchor = tmp_path / "a.anchors"
    async with serve_dashboard(sqlite_url, tmp_path, env={"ACCESSBOT_ANCHOR_FILE": str(anchor)}) as h:
        sam = await h.sign_in(SAM)
        assert (await h.say("bob@example.com", "request staging-admin for 1h because deploy")).ok
        await h.app.service.sweep(drift=False)
        [written] = lines(anchor)
        assert "matches the chain" in panel(await overview(h, sam))

        # a line that is no anchor: the next comparison of every anchor (hourly) names it
        with anchor.open("a") as f:
            f.write("garbage\n")
        h.clock.advance(hours=1, minutes=1)
        for _ in range(400):  # the hourly comparison runs in the background: up to 20 s on a busy machine
            text = panel(await overview(h, sam))
            if "DOES NOT MATCH" in text:
                break
            await asyncio.sleep(0.05)
        assert "line 2 is not JSON" in text, text

        # events removed after the anchor: the anchored seq is gone from the chain
        await asyncio.to_thread(tamper, sqlite_url, ("DELETE FROM audit_events WHERE seq >= :s",
                                                     {"s": written["seq"] - 1}))
        text = panel(await overview(h, sam))
        assert f"TRUNCATED: seq {written['seq']} was anchored" in text and "DOES NOT MATCH" in text


async def test_the_anchor_panel_is_for_the_security_team(sqlite_url, tmp_path) -> None:
    anchor = tmp_path / "a.anchors"
    async with serve_dashboard(sqlite_url, tmp_path, env={"ACCESSBOT_ANCHOR_FILE": str(anchor)}) as h:
        await h.app.service.sweep(drift=False)
        bob = await h.sign_in("bob@example.com")
        html = await overview(h, bob)
        assert 'id="anchor"' not in html and str(anchor) not in html
