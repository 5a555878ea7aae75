"""The safety brake on the dashboard: read from ``automation.paused`` / ``automation.resumed`` in the chain.

The events are appended through the repository exactly as the brake records them (plain audit events),
per reason: a pause, a pause whose held count changed, a second reason's pause, a security team member's
resume, and the system's resume once the count fell back under the limit.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from handlers.dashboard.brake import brake_state
from handlers.dashboard.pages import moment
from handlers.records import AuditEvent
from tests.web.test_pages import figure

SAM = "sam.sec@example.com"


async def record(h: Any, type_: str, actor: str, **data: Any) -> None:
    async with h.app.store.write() as repo:
        await repo.append(type_, actor=actor, ts=h.clock.now(), data=data)


def brake_text(html: str) -> str:
    m = re.search(r'<section class="card" id="brake">(.*?)</section>', html, re.S)
    assert m, "no brake panel"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", m.group(1))).split())


def pending(html: str) -> dict[str, str]:
    return dict(re.findall(r'<li data-reason="([^"]+)">.*?<span class="pending">(\d+)</span>', html))


async def test_the_posture_page_shows_each_pause_its_age_count_and_reason_until_resumed(web_any_db) -> None:
    h = web_any_db
    sam = await h.sign_in(SAM)
    page = await h.get("/dashboard/posture", cookie=sam)
    assert page.status == 200 and brake_text(page.text).startswith("Safety brake on bulk removals Running")
    assert figure((await h.get("/dashboard", cookie=sam)).text, "tile-brake") == "running"

    sample = [f"leaver{i:02d}@example.com from directory/sg-analytics-read" for i in range(10)]
    await record(h, "automation.paused", "system", reason="terminated", count=30, limit=25, sample=sample)
    first = moment((await h.events("automation.paused"))[0]["ts"])  # recorded at the wall clock's time
    await record(h, "automation.paused", "system", reason="terminated", count=32, limit=25, sample=sample)
    await record(h, "automation.paused", "system", reason="review", count=5, limit=4, sample=sample[:5])

    page = await h.get("/dashboard/posture", cookie=sam)
    text = brake_text(page.text)
    assert text.startswith(f"Safety brake on bulk removals Removals paused since {first}: 37 pending "
                           "(terminated, review)."), text
    assert pending(page.text) == {"terminated": "32", "review": "5"}
    assert f"terminated : paused since {first}, 32 pending (limit 25); for example leaver00@example.com" in text
    assert "resume removals" in text
    overview = await h.get("/dashboard", cookie=sam)
    assert figure(overview.text, "tile-brake") == "paused"
    assert f"since {first}: 37 pending (terminated, review)" in unescape(overview.text)

    await record(h, "automation.resumed", SAM, count=32, reason="terminated")
    resumed_at = moment((await h.events("automation.resumed"))[0]["ts"])
    page = await h.get("/dashboard/posture", cookie=sam)
    assert pending(page.text) == {"review": "5"}
    assert f"Last resumed {resumed_at} by {SAM} (terminated)." in brake_text(page.text)

    await record(h, "automation.resumed", "system", count=0, reason="review")
    page = await h.get("/dashboard/posture", cookie=sam)
    text = brake_text(page.text)
    assert "Running: no removals are paused." in text and pending(page.text) == {}
    assert "by system (review)" in text
    assert figure((await h.get("/dashboard", cookie=sam)).text, "tile-brake") == "running"


async def test_the_brake_is_for_the_security_team(web_harness) -> None:
    h = web_harness
    await record(h, "automation.paused", "system", reason="terminated", count=30, limit=25, sample=[])
    bob = await h.sign_in("bob@example.com")
    assert (await h.get("/dashboard/posture", cookie=bob)).status == 403
    page = await h.get("/dashboard", cookie=bob)
    assert page.status == 200 and 'id="tile-brake"' not in page.text and 'id="brake"' not in page.text


def _event(seq: int, type_: str, actor: str = "system", **data: Any) -> AuditEvent:
    return AuditEvent(seq=seq, ts=f"2026-11-30T10:{seq:02d}:00.000Z", type=type_, actor=actor, request_id=None,
                      profile=None, data=data, prev_hash="0" * 64, hash="1" * 64)


def test_the_fold_is_by_reason_and_by_seq_whatever_order_the_events_come_in() -> None:
    events = [
        _event(3, "automation.resumed", SAM, count=30, reason="terminated"),
        _event(1, "automation.paused", reason="terminated", count=30),
        _event(2, "automation.paused", reason="ineligible", count=7),
        _event(4, "automation.paused", reason="terminated", count=31),  # more than resumed: paused again
    ]
    brake = brake_state(events)
    assert [(p.reason, p.count, p.since) for p in brake.pauses] == [
        ("ineligible", 7, "2026-11-30T10:02:00.000Z"), ("terminated", 31, "2026-11-30T10:04:00.000Z")]
    assert brake.count == 38 and brake.since == "2026-11-30T10:02:00.000Z"
    assert brake.resumed is not None and brake.resumed.by == SAM
    # a resume naming no reason ends every pause
    assert not brake_state([*events, _event(5, "automation.resumed", SAM, count=38)]).paused
    assert not brake_state([]).paused
