"""A leaver seen inactive and then deleted at the identity provider stays a leaver (SPEC §3.6).

Being seen inactive settles it: a later deletion (the usual deactivate-then-delete) must not start the
unknown grace over, end a pause as if the source were fixed, or move the start of the termination clock.
"""

from __future__ import annotations

from handlers.policy import load_policy
from handlers.sweeps import sweep
from tests.support import harness

SAM = "sam.sec@example.com"
PEOPLE = [f"p{i}@example.com" for i in range(5)]


def _add_people(data: dict) -> None:
    for email in PEOPLE:
        data["users"].append({"email": email, "name": email.split("@")[0], "department": "Sales", "active": True})
    data["groups"]["sg-prod-db-read"] = [*(data["groups"].get("sg-prod-db-read") or []), *PEOPLE]


def _deactivate(data: dict) -> None:
    for u in data["users"]:
        if u["email"] in PEOPLE:
            u["active"] = False


def _delete(data: dict) -> None:
    data["users"] = [u for u in data["users"] if u["email"] not in PEOPLE]


async def test_deleted_after_inactive_keeps_the_pause_and_the_clock(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.policy.write_text(h.files.policy.read_text() + "\nsafety: {max_removals: 3}\n")
        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()
        h.files.edit_directory(_add_people)
        h.files.edit_directory(_deactivate)
        first = h.clock.now()
        report = await sweep(h.app.deps, drift=False)
        assert report.paused == 5 and report.terminated == []

        h.clock.advance(hours=2)
        h.files.edit_directory(_delete)  # deactivated, then deleted: still leavers, not people to wait for
        report = await sweep(h.app.deps, drift=False)
        assert report.unconfirmed == [] and report.paused == 5, report.lines()
        assert await h.events("automation.resumed") == []  # the source was not fixed
        assert sorted(await h.members("sg-prod-db-read")) == PEOPLE

        assert (await h.say(SAM, "resume removals")).ok
        h.clock.advance(minutes=5)
        report = await sweep(h.app.deps, drift=False)
        assert sorted(report.terminated) == PEOPLE and report.paused == 0, report.lines()
        assert await h.members("sg-prod-db-read") == []
        terminated = await h.events("user.terminated")
        assert sorted(e["data"]["user"] for e in terminated) == PEOPLE
        # the termination clock runs from the first sweep that saw them inactive, not from the deletion
        for e in terminated:
            assert e["data"]["first_seen"] == first.strftime("%Y-%m-%dT%H:%M:%S.000Z"), e["data"]
            assert e["data"]["inactive_hours"] >= 2, e["data"]
