"""`resume removals <pause>` resumes that pause only (SPEC §3.6): with a leaver wave and a review's removals both
paused, `resume removals terminated` releases the leavers and leaves the review's removals paused; `resume removals
RV-n` names a review; a name no pause in force has resumes nothing and lists the pauses in force (rule
`no-pause`). Plain `resume removals` still resumes every pause the person may. SQLite and PostgreSQL."""

from __future__ import annotations

from tests.compliance.test_brake import _add_people
from tests.compliance.test_review_brake import _limit
from tests.reviews.test_decisions import started
from tests.support import harness

SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"
WAVE = [f"leaver{i}@example.com" for i in range(5)]


async def test_one_pause_is_resumed_by_its_name(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await _limit(h, 3, sign_off=False)
        await started(h)
        closed = await h.say(SASHA, "review close RV-1")  # six defaulted removals > 3: paused
        assert closed.ok and "paused" in closed.text, closed.text

        h.files.edit_directory(lambda d: _add_people(d, WAVE, "sg-analytics-read"))

        def leave(data: dict) -> None:
            for u in data["users"]:
                if u["email"] in WAVE:
                    u["active"] = False

        h.files.edit_directory(leave)
        await h.app.service.sweep(drift=False)
        paused = {e["data"]["reason"]: e["data"]["count"] for e in await h.events("automation.paused")}
        assert paused == {"review RV-1": 6, "terminated": 5}, paused

        reply = await h.say(SAM, "resume removals terminated")
        assert reply.ok and "5 terminated" in reply.text and "RV-1" not in reply.text, reply.text
        assert [e["data"]["reason"] for e in await h.events("automation.resumed")] == ["terminated"]

        reply = await h.say(SAM, "resume removals RV-7")
        assert not reply.ok and reply.rule == "no-pause" and "review RV-1" in reply.text, reply.text
        assert len(await h.events("automation.resumed")) == 1

        await h.app.service.sweep(drift=False)
        assert not {*WAVE} & set(await h.members("sg-analytics-read"))  # the leavers went
        assert {e["data"]["reason"] for e in await h.events("membership.removed")} == {"terminated"}
        assert await h.events("review.closed") == []  # the review's removals did not

        reply = await h.say(SAM, "resume removals review rv-1")
        assert reply.ok and "6 review RV-1" in reply.text, reply.text
        await h.app.service.sweep(drift=False)
        assert {e["data"]["reason"] for e in await h.events("membership.removed")} == {"terminated", "review"}
        assert len(await h.events("review.closed")) == 1
