"""The safety brake covers a review's removals (SPEC §3.6, §7): a close (or an approved sign-off) that would
remove more than safety.max_removals memberships pauses them with automation.paused {reason: review RV-n,
count, sample}; `resume removals` lets the next sweep run exactly those; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from handlers.compliance.commands import ResumeRemovals
from handlers.compliance.views import PauseView
from handlers.policy import load_policy
from handlers.reviews.close import release
from tests.reviews.test_decisions import started
from tests.support import harness

SAM, SASHA, BOB = "sam.sec@example.com", "sasha.sec@example.com", "bob@example.com"
REMOVED = ["bob@example.com", "deploy-bot@example.com", "orphan@example.com", "pat.lead@example.com",
           "sam.sec@example.com"]


async def _limit(h, n: int, *, sign_off: bool = True) -> None:  # type: ignore[no-untyped-def]
    text = h.files.policy.read_text() + f"\nsafety: {{max_removals: {n}}}\n"
    if not sign_off:
        text = text.replace("    sign_off: [{any_of: security}]", "")
    h.files.policy.write_text(text)
    h.app.deps.policy = load_policy(h.files.policy)
    await h.app.service.start()


async def _removed(h) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return sorted((e["data"]["user"], e["data"]["reason"]) for e in await h.events("membership.removed"))


async def test_an_approved_sign_off_above_the_limit_pauses_until_resumed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 3)
        await started(h)
        reply = await h.say(SAM, "review close RV-1")
        assert reply.ok and "sign-off of 6 removal(s)" in reply.text, reply.text  # if_not_reviewed: remove
        reply = await h.say(SASHA, "approve RV-1")
        assert reply.ok and "6 removal(s) paused by the safety brake" in reply.text, reply.text
        (paused,) = await h.events("automation.paused")
        assert paused["data"]["reason"] == "review RV-1" and paused["data"]["count"] == 6
        assert "bob@example.com from directory/sg-prod-db-read" in paused["data"]["sample"]
        told = [n for n in h.notifier.to(SAM, "brake")]
        assert told and told[-1].view == PauseView(reason="review RV-1", count=6, limit=3,
                                                   sample=tuple(paused["data"]["sample"]), pause=told[-1].view.pause)
        assert len(told[-1].view.pause) == 12  # which removals: a digest of them
        assert await h.events("review.closed") == [] and await _removed(h) == []
        assert "bob@example.com" in await h.members("sg-prod-db-read")
        assert (await h.request(1)).state == "active"

        report = await h.app.service.sweep(drift=False)  # still held; no second pause event
        assert report.paused == 6 and report.reviews_closed == [], report.lines()
        assert len(await h.events("automation.paused")) == 1 and await _removed(h) == []

        assert not (await h.say(BOB, "resume removals")).ok
        stale = await h.app.service.handle(await h.app.deps.person(SASHA), ResumeRemovals("review RV-1", 5))
        assert not stale.ok and stale.rule == "stale-count"
        # sam's early close defaulted the six removals: a second person resumes them
        own = await h.say(SAM, "resume removals")
        assert not own.ok and own.rule == "own-removals", own.text
        assert (await h.say(SASHA, "resume removals")).ok
        (resumed,) = await h.events("automation.resumed")
        assert resumed["data"] == {**resumed["data"], "count": 6, "reason": "review RV-1"} and resumed["actor"] == SASHA

        report = await h.app.service.sweep(drift=False)
        assert report.paused == 0 and report.reviews_closed and "removed 6" in report.reviews_closed[0], report.lines()
        assert [u for u, _ in await _removed(h)] == REMOVED and {r for _, r in await _removed(h)} == {"review"}
        (revoked,) = await h.events("grant.revoked")
        assert revoked["data"]["reason"] == "review" and (await h.request(1)).state == "revoked"
        (closed,) = await h.events("review.closed")
        assert closed["data"]["removed"] == 6 and closed["data"]["failed"] == 0
        assert (await h.app.service.sweep(drift=False)).paused == 0
        assert (await h.say(SAM, "resume removals")).text.startswith("Nothing is paused")
        assert len(await h.events("automation.paused")) == 1


async def test_a_close_without_sign_off_pauses_until_a_card_resumes_it(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 3, sign_off=False)
        await started(h)
        reply = await h.say(SAM, "review close RV-1")
        assert reply.ok and "6 removal(s) paused by the safety brake" in reply.text, reply.text
        assert [e["data"]["reason"] for e in await h.events("automation.paused")] == ["review RV-1"]
        assert not (await h.say(SAM, "review close RV-1")).ok  # held: no second close
        card = await h.app.service.handle(await h.app.deps.person(SASHA), ResumeRemovals("review RV-1", 6))
        assert card.ok, card.text
        # two processes carrying the held campaign on at once: one closes it, the other finds nothing to do
        lines = await asyncio.gather(release(h.app.deps, 1), release(h.app.deps, 1))
        (closed,) = [line for line in lines if line]
        assert closed.startswith("RV-1 closed") and None in lines, lines
        assert [u for u, _ in await _removed(h)] == REMOVED
        assert len(await h.events("automation.paused")) == 1 and len(await h.events("review.closed")) == 1
        assert (await h.app.service.sweep(drift=False)).paused == 0


async def test_a_close_at_the_limit_runs_at_once(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 6, sign_off=False)  # six is not above six: no pause
        await started(h)
        reply = await h.say(SAM, "review close RV-1")
        assert reply.ok and "removed 6" in reply.text, reply.text
        assert await h.events("automation.paused") == []
