"""Every dashboard page over HTTP, on a store that lived through a whole story; the figures on the
pages are the store's own, and nobody sees a request they may not ``status``."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from html import unescape

from handlers.records import ACTIVE, PENDING
from tests.reviews.test_start import REVIEW, staff
from tests.web.scenario import live_through


def figure(html: str, tile: str) -> str:
    m = re.search(rf'id="{tile}"><span class="figure">([^<]+)</span>', html)
    assert m, tile
    return m.group(1)


def request_ids(html: str) -> list[str]:
    return re.findall(r'data-request="(REQ-\d+)"', html)


async def test_overview_figures_are_the_stores(web_any_db) -> None:
    h = web_any_db
    story = await live_through(h)
    cookie = await h.sign_in("sam.sec@example.com")
    page = await h.overview(cookie)
    assert page.status == 200, page.text
    now = h.clock.now()
    async with h.app.store.read() as repo:
        active = await repo.find_requests(states=(ACTIVE,))
        pending = await repo.find_requests(states=(PENDING,))
        drift = await repo.open_drift()
    standard = [r for r in active if r.kind == "standard"]
    exceptions = [r for r in active if r.kind == "exception"]
    assert figure(page.text, "tile-pending") == str(len(pending)) == "2"
    assert figure(page.text, "tile-active") == str(len(standard)) == "1"
    assert figure(page.text, "tile-exceptions") == str(len(exceptions)) == "1"
    soon = sum(1 for r in standard if r.expires_at and r.expires_at <= now + timedelta(hours=24))
    week = sum(1 for r in exceptions if r.expires_at and r.expires_at <= now + timedelta(days=7))
    assert f"{soon} expire within 24 h" in page.text and f"{week} within 7 d" in page.text
    assert figure(page.text, "tile-drift") == str(len(drift)) == "1"
    assert figure(page.text, "tile-brake") == "running"
    assert figure(page.text, "tile-failures") == "0"
    events = await h.events()
    assert f"Verified: {len(events)} events, unbroken." in page.text
    assert events[-1]["hash"] in page.text
    # the open requests, by REQ id, and whom they wait on
    assert request_ids(page.text) == sorted([story.pending_alice, story.pending_frank], key=lambda s: int(s[4:]))
    assert "mark.mgr@example.com" in page.text and "dana.dba@example.com" in page.text


async def test_a_requester_sees_only_their_own_and_an_approver_what_waits_on_them(web_harness) -> None:
    h = web_harness
    story = await live_through(h)
    frank = await h.sign_in("frank@example.com")
    page = await h.get("/dashboard", cookie=frank)
    assert request_ids(page.text) == [story.pending_frank] and 'id="tile-active"' not in page.text
    listed = await h.get("/dashboard/requests", cookie=frank)
    assert request_ids(listed.text) == [story.pending_frank]
    for other in (story.pending_alice, story.exception, story.db_read):
        assert (await h.get(f"/dashboard/requests/{other}", cookie=frank)).status == 403

    mark = await h.sign_in("mark.mgr@example.com")  # alice's and bob's manager: decided two, one waits on him
    page = await h.get("/dashboard", cookie=mark)
    assert request_ids(page.text) == [story.pending_alice, story.pending_alice]  # waiting on me, and open
    listed = await h.get("/dashboard/requests", cookie=mark)
    assert sorted(request_ids(listed.text)) == sorted([story.db_read, story.denied, story.pending_alice])
    for rid in request_ids(listed.text):  # every id shown is one mark may `status`
        assert (await h.say("mark.mgr@example.com", f"status {rid}")).ok
    assert not (await h.say("mark.mgr@example.com", f"status {story.exception}")).ok
    assert (await h.get(f"/dashboard/requests/{story.exception}", cookie=mark)).status == 403


async def test_requests_filters_and_the_timeline_from_the_chain(web_harness) -> None:
    h = web_harness
    story = await live_through(h)
    cookie = await h.sign_in("sam.sec@example.com")
    everything = await h.get("/dashboard/requests", cookie=cookie)
    async with h.app.store.read() as repo:
        total = len(await repo.find_requests())
    assert f"{total} requests" in everything.text and len(request_ids(everything.text)) == total
    by_profile = await h.get("/dashboard/requests?profile=prod-db-read", cookie=cookie)
    assert sorted(request_ids(by_profile.text)) == sorted([story.db_read, story.exception])
    by_state = await h.get("/dashboard/requests?state=revoked", cookie=cookie)
    assert request_ids(by_state.text) == [story.analytics_bob]
    by_person = await h.get("/dashboard/requests?person=alice@example.com&state=pending", cookie=cookie)
    assert request_ids(by_person.text) == [story.pending_alice]
    day = h.clock.now().date()
    in_period = await h.get(f"/dashboard/requests?from={day}&to={day}", cookie=cookie)
    assert len(request_ids(in_period.text)) == total
    before = await h.get(f"/dashboard/requests?to={day - timedelta(days=1)}", cookie=cookie)
    assert request_ids(before.text) == []
    bad = await h.get("/dashboard/requests?profile=nope&from=yesterday&state=<b>", cookie=cookie)
    assert bad.status == 200 and "no profile &#39;nope&#39;" in bad.text and "<b>" not in bad.text

    detail = await h.get(f"/dashboard/requests/{story.db_read}", cookie=cookie)
    assert detail.status == 200
    events = [e for e in await h.events() if e["request_id"] == story.db_read]
    shown = [int(s) for s in re.findall(r'<li data-seq="(\d+)">', detail.text)]
    assert shown == [e["seq"] for e in events]
    text = unescape(detail.text)
    for e in events:
        assert e["type"] in text and e["actor"] in text and e["hash"][:16] in text
    assert "policy 2026.11" in text and "INC-4411 replica lag" in text and "grant.expired" in text


async def test_person_page_shows_attributes_memberships_and_trail(web_harness) -> None:
    h = web_harness
    story = await live_through(h)
    cookie = await h.sign_in("sam.sec@example.com")
    carol = await h.get("/dashboard/people/carol@example.com", cookie=cookie)
    assert carol.status == 200
    text = unescape(carol.text)
    assert "Contractor" in text and "mark.mgr@example.com" in text
    assert f"exception {story.exception}" in text and "ineligible: employment_type=Contractor" in text
    dev = unescape((await h.get("/dashboard/people/dev.dba@example.com", cookie=cookie)).text)
    assert "directory/sg-prod-k8s-admin" in dev and ">drift<" in dev and "drift.detected" in dev
    bob = unescape((await h.get("/dashboard/people/bob@example.com", cookie=cookie)).text)
    assert "no (a leaver)" in bob and "user.terminated" in bob and story.analytics_bob in bob
    found = await h.get("/dashboard/people?email=carol@example.com", cookie=cookie)
    assert found.status == 303 and found.headers["Location"] == "/dashboard/people/carol@example.com"
    frank = await h.sign_in("frank@example.com")
    own = await h.get("/dashboard/people", cookie=frank)
    assert own.status == 303 and own.headers["Location"] == "/dashboard/people/frank@example.com"
    assert (await h.get("/dashboard/people/frank@example.com", cookie=frank)).status == 200


async def test_posture_and_reviews(web_harness) -> None:
    h = web_harness
    await live_through(h)
    cookie = await h.sign_in("sam.sec@example.com")
    page = await h.get("/dashboard/posture", cookie=cookie)
    assert page.status == 200
    assert re.search(r'id="cov-granted">1<', page.text) and re.search(r'id="cov-exceptions">1<', page.text)
    assert re.search(r'id="cov-drift">1<', page.text)
    quarter = f"{h.clock.now().year}-Q{(h.clock.now().month - 1) // 3 + 1}"
    async with h.app.store.read() as repo:
        records = await repo.find_requests()
    row = re.search(rf'<tr data-quarter="{quarter}"><td>{quarter}</td><td>(\d+)</td><td>(\d+)</td>', page.text)
    assert row and int(row.group(1)) == len(records)
    assert int(row.group(2)) == sum(1 for r in records if r.kind == "exception")
    assert page.text.count("<svg") >= 3
    reviews = await h.get("/dashboard/reviews", cookie=cookie)
    assert reviews.status == 200 and 'id="no-reviews"' in reviews.text


async def test_reviews_light_up_from_review_events(web_harness) -> None:
    h = web_harness
    now = h.clock.now()
    async with h.app.store.write() as repo:  # the events SPEC §7 fixes, as the review engine records them
        await repo.append("review.started", actor="system", ts=now, data={
            "review_id": "RV-1", "review": "quarterly-privileged", "items": 3, "snapshot_sha256": "0" * 64})
        await repo.append("review.opened", actor="mark.mgr@example.com", ts=now,
                          data={"review_id": "RV-1", "reviewer": "mark.mgr@example.com", "channel": "teams"})
        for item, decision in (("1", "keep"), ("2", "remove"), ("2", "keep")):
            await repo.append("review.decided", actor="mark.mgr@example.com", ts=now, data={
                "review_id": "RV-1", "item": item, "decision": decision, "comment": "", "recommendation": ""})
        await repo.append("review.escalated", actor="system", ts=now, data={
            "review_id": "RV-1", "reviewer": "dana.dba@example.com", "to": "pat.lead@example.com", "items": [3]})
    cookie = await h.sign_in("sam.sec@example.com")
    page = unescape((await h.get("/dashboard/reviews", cookie=cookie)).text)
    assert "RV-1 quarterly-privileged" in page and "2 of 3 items decided" in page
    assert "Removal rate 0%" in page and "overdue" in page and "Engineering" in page
    mark = await h.sign_in("mark.mgr@example.com")
    own = unescape((await h.get("/dashboard/reviews", cookie=mark)).text)
    assert "RV-1" in own and "dana.dba@example.com" not in own
    frank = await h.sign_in("frank@example.com")
    assert 'id="no-reviews"' in (await h.get("/dashboard/reviews", cookie=frank)).text


def campaign_figures(page: str, review_id: str) -> tuple[str, str]:
    """(progress, removals) of one campaign on /dashboard/reviews, e.g. ("3 of 6", "1")."""
    section = page[page.index(f'data-review="{review_id}"'):]
    progress = re.search(r"(\d+ of \d+) items decided", section)
    removed = re.search(r"\((\d+) removed\)", section)
    assert progress and removed, section[:600]
    return progress.group(1), removed.group(1)


async def test_a_reviewer_sees_only_the_figures_of_the_items_they_decide_on(web_harness) -> None:
    """SPEC §8: approvers and reviewers see what they decide on. On /dashboard/reviews a reviewer outside
    the security team sees the progress and removals of their own batch, not the campaign's (which
    holds their colleagues' decisions); the security team sees the whole campaign."""
    h = web_harness
    staff(h.files)
    assert (await h.say("alice@example.com", "request prod-db-read for 30m because INC-7 page")).ok
    assert (await h.say("sam.sec@example.com", f"review start {REVIEW}")).ok
    async with h.app.store.read() as repo:
        items = {i.user: i for i in await repo.items(1)}
    assert items["sam.sec@example.com"].reviewer == "pat.lead@example.com"
    assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok  # mark's own two items
    number = items["sam.sec@example.com"].number
    assert (await h.say("pat.lead@example.com", f"remove RV-1 {number} because moved")).ok
    mark = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in("mark.mgr@example.com"))).text)
    assert campaign_figures(mark, "RV-1") == ("2 of 2", "0")  # not pat's removal, not the 6 items
    pat = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in("pat.lead@example.com"))).text)
    assert campaign_figures(pat, "RV-1") == ("1 of 2", "1")
    sam = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in("sam.sec@example.com"))).text)
    assert campaign_figures(sam, "RV-1") == ("3 of 6", "1")


async def test_evidence_pack_download_is_the_export_and_is_recorded(web_harness) -> None:
    h = web_harness
    await live_through(h)
    cookie = await h.sign_in("sam.sec@example.com")
    # the pack holds the events recorded in the period (their ts is the recording time), so the
    # period spans both the harness's clock and today
    days = sorted({h.clock.now().date(), datetime.now(UTC).date()})
    period = f"from={days[0] - timedelta(days=1)}&to={days[-1] + timedelta(days=1)}"
    async with h.http.get(f"{h.url}/dashboard/evidence/pack?{period}", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/zip"
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
        body = await resp.read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = set(zf.namelist())
        assert {"manifest.json", "requests.csv", "audit.jsonl", "report.html", "verify_pack.py"} <= names
        assert zf.read("requests.csv").decode().count("\n") == 1 + 7
    exported = await h.events("evidence.exported")
    assert [(e["actor"], e["data"]["channel"]) for e in exported] == [("sam.sec@example.com", "dashboard")]
    bad = await h.get("/dashboard/evidence/pack?from=2026-12-01&to=2026-11-01", cookie=cookie)
    assert bad.status == 400 and "before it starts" in bad.text
