"""The safety brake on bulk removals triggered by the identity provider (SPEC §3.6)."""

from __future__ import annotations

from handlers.policy import load_policy
from handlers.sweeps import sweep
from tests.support import harness

SAM, BOB = "sam.sec@example.com", "bob@example.com"
WAVE = [f"leaver{i:02d}@example.com" for i in range(30)]


def _add_people(data: dict, emails: list[str], group: str) -> None:
    for email in emails:
        data["users"].append({"email": email, "name": email.split("@")[0], "department": "Sales", "active": True})
    data["groups"][group] = [*(data["groups"].get(group) or []), *emails]


async def test_a_thirty_person_wave_pauses_resumes_and_removes_exactly_those(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.edit_directory(lambda d: _add_people(d, WAVE, "sg-analytics-read"))
        assert (await h.say(BOB, "request analytics-read for 1h")).ok  # REQ-1, expires during the pause

        def leave(data: dict) -> None:
            for u in data["users"]:
                if u["email"] in WAVE:
                    u["active"] = False

        h.files.edit_directory(leave)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 30 and report.terminated == [] and report.removed == []
        assert sorted(await h.members("sg-analytics-read")) == sorted([*WAVE, BOB])
        (paused,) = await h.events("automation.paused")
        assert paused["data"]["count"] == 30 and paused["data"]["reason"] == "terminated"
        assert len(paused["data"]["sample"]) == 10 and all(" from directory/sg-analytics-read" in s
                                                           for s in paused["data"]["sample"])
        assert any(n.recipient == SAM and n.kind == "brake" and "resume removals" in n.text
                   for n in h.notifier.notices)
        assert await h.events("user.terminated") == []

        # the same count again: no second pause event; expiry keeps running meanwhile
        h.clock.advance(hours=2)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 30 and report.expired == ["REQ-1"]
        assert len(await h.events("automation.paused")) == 1
        assert BOB not in await h.members("sg-analytics-read")

        refused = await h.say(BOB, "resume removals")
        assert not refused.ok and refused.rule == "security-only"
        # a button carries the count its card showed: a stale one resumes nothing
        from handlers.compliance.brake import resume_removals

        stale = await resume_removals(h.app.deps, SAM, count=12)
        assert not stale.ok and stale.rule == "count-changed" and "30" in stale.text
        assert not await h.events("automation.resumed")
        assert (await h.say(SAM, "resume removals")).ok
        (resumed,) = await h.events("automation.resumed")
        assert resumed["data"]["count"] == 30 and resumed["actor"] == SAM

        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 0 and sorted(report.terminated) == WAVE
        assert await h.members("sg-analytics-read") == []
        removed = await h.events("membership.removed")
        assert sorted(e["data"]["user"] for e in removed) == WAVE
        assert len(await h.events("user.terminated")) == 30
        assert (await sweep(h.app.deps, drift=False)).paused == 0
        assert (await h.say(SAM, "resume removals")).text.startswith("Nothing is paused")


async def test_a_truncated_directory_revokes_nobody_and_the_pause_ends_when_it_is_fixed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.policy.write_text(h.files.policy.read_text() + "\nsafety: {max_removals: 3}\n")
        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        people = [f"p{i}@example.com" for i in range(5)]
        h.files.edit_directory(lambda d: _add_people(d, people, "sg-prod-db-read"))
        whole = h.files.directory.read_text()

        def truncate(data: dict) -> None:
            data["users"] = data["users"][:3]  # a half-written file: everyone else is unknown

        h.files.edit_directory(truncate)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 0 and report.terminated == [] and sorted(report.unconfirmed) == people
        h.clock.advance(minutes=61)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 5 and report.terminated == [], report.lines()
        assert sorted(await h.members("sg-prod-db-read")) == people
        assert [e["data"]["count"] for e in await h.events("automation.paused")] == [5]

        h.files.directory.write_text(whole)  # the source is fixed before anyone resumes
        h.files.edit_directory(lambda d: None)
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 0 and report.terminated == [] and report.unconfirmed == []
        (resumed,) = await h.events("automation.resumed")
        assert resumed["data"]["count"] == 0 and resumed["actor"] == "system"
        assert sorted(await h.members("sg-prod-db-read")) == people
        assert await h.events("membership.removed") == [] and await h.events("user.terminated") == []
