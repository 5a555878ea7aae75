"""A reviewer's batch is read as their share of the campaign, and the groups it live-checks are listed once for
every reviewer asking at the same time: a campaign of thousands of items opened by hundreds of managers on a
Monday morning (bench/bench_review_10k.py) read every item for every reviewer, several times a look, and listed
the group at the provider once a reviewer. Counted, not timed: the statements SQLAlchemy's listener sees.

The campaign of tests/reviews/test_decisions.py: group:security (sam, sasha) reviews 1 and 2, mark 3 (alice) and
4 (bob), pat.lead 5 and 6."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.reviews.test_decisions import started
from tests.support import harness, held_table, statements, until

MARK, PAT, SAM = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"


async def test_a_reviewer_reads_their_share_and_decides_on_it(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice, bob = items["alice@example.com"].number, items["bob@example.com"].number
        with statements(h.app) as seen:
            shown = await h.say(MARK, "review RV-1")
            listed = await h.say(MARK, "reviews")
            decided = await h.say(MARK, f"keep RV-1 {alice}")
        assert f"{alice}." in shown.text and f"{bob}." in shown.text and "2 item(s) for you" in shown.text, shown.text
        assert "RV-1" in listed.text and "2 item(s) for you to review" in listed.text, listed.text
        assert decided.ok and f"keep recorded for 1 item(s) ({alice})" in decided.text, decided.text
        reads = [s for s in seen if "FROM review_items" in s]
        assert reads and all("review_items.reviewer IN" in s for s in reads), reads  # never the whole campaign
        # the security team sees every item, as before
        shown = await h.say(SAM, "review RV-1")
        assert "6 item(s):" in shown.text, shown.text
        # pat decides his own share; an item of mark's is still not his
        refused = await h.say(PAT, f"keep RV-1 {alice}")
        assert not refused.ok and refused.rule == "not-your-item", refused.text
        assert (await h.say(PAT, "keep RV-1 all")).ok


def _listings(seen: list[str]) -> list[str]:
    return [s for s in seen if "FROM directory_memberships" in s and "group_name" in s.split("WHERE", 1)[-1]]


async def test_reviewers_opening_their_batches_together_list_the_group_together(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await started(h)
        assert (await h.say(MARK, "review RV-1")).ok  # opened once (review.opened), as the others below
        with statements(h.app) as seen:
            shown = await asyncio.gather(*(h.say(MARK, "review RV-1") for _ in range(12)))
        assert all(r.ok and "2 item(s) for you" in r.text for r in shown)
        assert _listings(seen), seen  # the live check reads the group as it is now, every time


async def test_twelve_reviewers_asking_while_a_listing_is_on_its_way_share_the_next(pg_url, tmp_path):
    """The first look's listing held (a lock another connection takes on the memberships) until eleven more have
    asked: they share one listing begun after they all asked, two in all (the old code: twelve)."""
    async with harness(pg_url, tmp_path) as h:
        await started(h)
        assert (await h.say(MARK, "review RV-1")).ok  # opened once (review.opened)
        mark = await h.app.service.identify(MARK)  # (looked up before the memberships are locked)
        assert mark is not None
        reads = h.app.deps.shared_reads
        with statements(h.app) as seen:
            async with held_table(pg_url, "directory_memberships"):
                first = asyncio.ensure_future(h.app.service.handle_text(mark, "review RV-1"))
                await until(lambda: any(k[0] == "review-members" for k in reads._running))
                shared = reads.shared
                others = [asyncio.ensure_future(h.app.service.handle_text(mark, "review RV-1")) for _ in range(11)]
                await until(lambda: reads.shared >= shared + 11)
            shown = [await first, *[await o for o in others]]
        assert all(r.ok and "2 item(s) for you" in r.text for r in shown)
        assert len(_listings(seen)) == 2, _listings(seen)


async def test_a_listing_shared_with_a_reviewer_who_asked_earlier_is_read_afresh(pg_url, tmp_path):
    """Mark's card is live-checking (its listing of the group held behind a lock another connection takes on the
    memberships); bob then leaves the group in the directory file, and Mark asks again, and decides on bob's item:
    both share the next listing, which reads the file as it is now, not the copy the first look's scope kept."""
    async with harness(pg_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say(MARK, "review RV-1")).ok  # opened once (review.opened)
        mark = await h.app.service.identify(MARK)  # (looked up before the memberships are locked)
        assert mark is not None

        def say(text: str) -> asyncio.Future[Any]:
            return asyncio.ensure_future(h.app.service.handle_text(mark, text))

        async with held_table(pg_url, "directory_memberships"):
            first = say("review RV-1")  # its listing waits for the lock
            await until(lambda: any(k[0] == "review-members" for k in h.app.deps.shared_reads._running))
            h.files.edit_directory(lambda d: d["groups"]["sg-prod-db-read"].remove("bob@example.com"))
            shared = h.app.deps.shared_reads.shared
            again, decided = say("review RV-1"), say(f"keep RV-1 {bob}")
            await until(lambda: h.app.deps.shared_reads.shared >= shared + 2)  # both wait for the next listing
        await first
        (line,) = [x for x in (await again).text.splitlines() if "bob@example.com" in x and f"{bob}." in x]
        assert "GONE" in line, line
        reply = await decided
        assert not reply.ok and reply.rule == "gone", reply.text  # nobody certifies a membership that has gone
        assert await h.events("review.decided") == []
