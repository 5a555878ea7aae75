"""The dashboard's review pages (SPEC §8, §7) over HTTP: who sees which campaign, figures against
the store, hostile query strings, and a campaign of thousands of items. The campaign of
tests/reviews/test_start.py: group:security reviews 1-2, mark 3 (alice) and 4 (bob), pat.lead 5 and 6."""

from __future__ import annotations

import re
from html import unescape

import pytest

from tests.reviews.test_start import REVIEW, staff
from tests.web.test_pages import campaign_figures

MARK, PAT, SAM, SASHA, FRANK = ("mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com",
                                "sasha.sec@example.com", "frank@example.com")


async def start(h) -> None:  # type: ignore[no-untyped-def]
    staff(h.files)
    assert (await h.say("alice@example.com", "request prod-db-read for 30m because INC-7 page")).ok
    assert (await h.say(SAM, f"review start {REVIEW}")).ok


async def test_a_reviewer_sees_their_campaign_before_they_open_it(web_harness) -> None:
    """SPEC §8: reviewers see what they decide on. Mark has two items to decide in RV-1 from the moment it
    starts, but until he opens the batch (or a reminder is recorded) /dashboard/reviews tells him 'No review
    campaign has started yet with you as a reviewer'. The reviewer who has not started is exactly the one the
    page should show the open work to."""
    h = web_harness
    await start(h)
    page = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in(MARK))).text)
    assert 'id="no-reviews"' not in page and 'data-review="RV-1"' in page, page[-800:]
    assert campaign_figures(page, "RV-1") == ("0 of 2", "0")


async def test_the_person_escalated_to_sees_the_campaign_before_deciding(web_harness) -> None:
    """After the escalation, the manager (pat.lead) decides mark's open items too; his page must show the
    campaign with those items counted, before he has decided anything."""
    from datetime import UTC, datetime

    h = web_harness
    await start(h)
    assert (await h.say(SAM, "keep RV-1 1 2")).ok
    assert (await h.say(PAT, "keep RV-1 5 6")).ok  # pat acts on his own batch: he is in the chain's reviewers
    h.clock.at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    report = await h.app.service.sweep()
    assert any("→ pat.lead@example.com" in line for line in report.reviews_escalated), report.lines()
    pat = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in(PAT))).text)
    async with h.app.store.read() as repo:
        items = await repo.items(1)
    # mark's open items handed over to pat: those still needing a decision (alice's 30-minute grant ended, and with
    # it the membership her item asked about: not escalated)
    (escalated,) = await h.events("review.escalated")
    pat_may = [i for i in items if i.reviewer == PAT or i.number in escalated["data"]["items"]]
    assert len(pat_may) < len([i for i in items if i.reviewer == PAT or (i.reviewer == MARK and i.state == "open")])
    progress, _ = campaign_figures(pat, "RV-1")
    assert progress == f"2 of {len(pat_may)}", (progress, [(i.number, i.state) for i in items])


async def test_kept_by_a_review_counts_memberships_not_decisions_of_every_campaign(web_harness) -> None:
    """/dashboard/posture 'Kept by a review' is 'memberships of managed groups backed by ... a review'. Two
    campaigns of the same scope that keep the same six memberships must not show twelve memberships."""
    h = web_harness
    files = h.files
    files.policy.write_text(files.policy.read_text().replace("    sign_off: [{any_of: security}]", ""))
    staff(files)
    for n in (1, 2):
        assert (await h.say(SAM, f"review start {REVIEW}")).ok
        assert (await h.say(SAM, f"keep RV-{n} all")).ok
        assert (await h.say(MARK, f"keep RV-{n} all")).ok
        assert (await h.say(PAT, f"keep RV-{n} all")).ok
        reply = await h.say(SAM, f"review close RV-{n}")
        assert reply.ok, reply.text
    closed = [e for e in await h.events("review.closed")]
    assert [e["data"]["kept"] for e in closed] == [5, 5], closed
    members = set()
    for group in ("sg-prod-db-read", "sg-prod-k8s-admin"):
        members |= {(group, m) for m in await h.app.deps.providers["directory"].list_members(group)}
    page = (await h.get("/dashboard/posture", cookie=await h.sign_in(SAM))).text
    shown = int(re.search(r'id="cov-reviewed">(\d+)<', page).group(1))
    assert shown <= len(members), (shown, sorted(members))


@pytest.mark.parametrize("query", ["to=9999-12-31", "from=9999-12-31&to=9999-12-31"])
async def test_a_far_future_date_filter_is_a_named_problem_not_a_500(web_harness, query: str) -> None:
    """/dashboard/requests?to=9999-12-31: the day after overflows datetime (OverflowError, not ValueError)."""
    h = web_harness
    page = await h.get(f"/dashboard/requests?{query}", cookie=await h.sign_in(SAM))
    assert page.status in (200, 400), (page.status, page.text[:300])


@pytest.mark.parametrize("query", ["page=-1", "page=٣", "page=" + "9" * 5000, "page=1e9", "state=<script>",
                                   "profile=%00", "person=" + "a" * 4000, "from=2026-13-01", "page=&page=2"])
async def test_held_hostile_query_strings(web_harness, query: str) -> None:
    h = web_harness
    cookie = await h.sign_in(SAM)
    for path in ("/dashboard/requests", "/dashboard/reviews"):
        page = await h.get(f"{path}?{query}", cookie=cookie)
        assert page.status == 200, (path, query, page.status, page.text[:300])
        assert "<script>" not in page.text


async def test_held_a_plain_employee_and_another_reviewer_see_no_foreign_batch(web_harness) -> None:
    h = web_harness
    await start(h)
    assert (await h.say(MARK, "keep RV-1 all")).ok
    assert (await h.say(PAT, "remove RV-1 5 because unused")).ok
    frank = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in(FRANK))).text)
    assert 'id="no-reviews"' in frank and "RV-1" not in frank
    pat = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in(PAT))).text)
    assert MARK not in pat and campaign_figures(pat, "RV-1") == ("1 of 2", "1")
    mark = unescape((await h.get("/dashboard/reviews", cookie=await h.sign_in(MARK))).text)
    assert PAT not in mark and campaign_figures(mark, "RV-1") == ("2 of 2", "0")


async def test_thousands_of_items_render_bounded(web_harness) -> None:
    """A campaign of 3,000 items (one reviewer): the reviews page of the security team and of the reviewer
    counts them all and stays bounded (it does not list every item)."""
    h = web_harness
    n = 3000

    def many(data: dict) -> None:
        data["users"] += [{"email": f"u{k:04d}@example.com", "name": f"User {k}", "manager": MARK,
                           "department": "Load"} for k in range(n)]
        data["groups"]["sg-prod-db-read"] = [f"u{k:04d}@example.com" for k in range(n)]
        data["groups"]["sg-prod-k8s-admin"] = []
    h.files.edit_directory(many)
    assert (await h.say(SAM, f"review start {REVIEW}")).ok
    reply = await h.say(MARK, "keep RV-1 all")
    assert reply.ok, reply.text
    for who in (SAM, MARK):
        cookie = await h.sign_in(who)
        page = await h.get("/dashboard/reviews", cookie=cookie)
        assert page.status == 200 and len(page.text) < 200_000
        assert campaign_figures(unescape(page.text), "RV-1") == (f"{n} of {n}", "0")


async def test_kept_by_a_review_leaves_out_a_membership_removed_since(web_harness) -> None:
    """A membership a closed review kept, removed afterwards (bob leaves: the termination sweep takes him out),
    is no longer counted as kept by a review."""
    h = web_harness
    files = h.files
    files.policy.write_text(files.policy.read_text().replace("    sign_off: [{any_of: security}]", ""))
    staff(files)
    assert (await h.say(SAM, f"review start {REVIEW}")).ok
    for who in (SAM, MARK, PAT):
        assert (await h.say(who, "keep RV-1 all")).ok
    assert (await h.say(SAM, "review close RV-1")).ok

    async def shown() -> int:
        page = (await h.get("/dashboard/posture", cookie=await h.sign_in(SAM))).text
        return int(re.search(r'id="cov-reviewed">(\d+)<', page).group(1))

    assert await shown() == 5

    def leave(data: dict) -> None:
        for user in data["users"]:
            if user["email"] == "bob@example.com":
                user["active"] = False
    files.edit_directory(leave)
    await h.app.service.sweep()
    removed = [e["data"] for e in await h.events("membership.removed")]
    assert [(d["group"], d["user"]) for d in removed] == [("sg-prod-db-read", "bob@example.com")], removed
    assert await shown() == 4


def test_a_page_in_other_digits_is_page_one() -> None:
    from handlers.dashboard.pages import Filter

    pages = ("٣", "3", " 7 ", "-2", "1e3", "9" * 5000)
    assert [Filter.parse({"page": p}, []).page for p in pages] == [1, 3, 7, 1, 1, 1]
    assert Filter.parse({"to": "9999-12-31"}, []).problems == ["to is a date like 2026-11-01, not '9999-12-31'"]
