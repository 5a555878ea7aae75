"""One person counts once per request (SPEC §2.1): an approval that would use up someone a later step
cannot do without is refused, not recorded, and the request keeps waiting for whoever else may decide.

The chain ``[{any_of: dba}, {all_of: owners}]`` with dana in both groups can finish only if dev
approves step 1. Dana clicking approve first used to be recorded, and the request then failed at once
("step 2 can no longer be satisfied"): one early click ended a request its chain could still approve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples

ALICE, MARK, DANA, DEV, SAM = ("alice@example.com", "mark.mgr@example.com", "dana.dba@example.com",
                               "dev.dba@example.com", "sam.sec@example.com")


@asynccontextmanager
async def world(database_url: str, tmp_path: Path, approval: str) -> AsyncIterator[Harness]:
    files = copy_examples(tmp_path)
    text = files.policy.read_text().replace(
        "  platform: [pat.lead@example.com]\n",
        "  platform: [pat.lead@example.com]\n  owners: [dana.dba@example.com, sam.sec@example.com]\n")
    text = text.replace("    approval:\n      - manager\n\n", f"    approval: {approval}\n\n", 1)  # staging-admin
    files.policy.write_text(text)
    clock, notifier = MutableClock(), RecordingNotifier()
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory), env={})
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        yield Harness(app, clock, notifier, files)


async def test_an_approval_that_would_leave_a_later_step_short_is_refused(database_url, tmp_path):
    async with world(database_url, tmp_path, "[{any_of: dba}, {all_of: owners}]") as h:
        assert (await h.say(ALICE, "request staging-admin for 2h")).ok

        r = await h.say(DANA, "approve REQ-1")
        assert not r.ok and r.rule == "needed-later", r.text
        assert "step 2 (all_of owners)" in r.text and DEV in r.text, r.text
        rec = await h.request(1)
        assert (rec.state, rec.step) == ("pending", 0)
        refused = await h.events("approval.refused")
        assert [(e["actor"], e["data"]["reason"]) for e in refused] == [(DANA, "needed-later")]
        assert await h.events("approval.granted") == []

        # the chain still finishes, with dana counted once, at the step that cannot do without her
        assert (await h.say(DEV, "approve REQ-1")).ok
        assert (await h.say(DANA, "approve REQ-1")).ok
        r = await h.say(SAM, "approve REQ-1")
        assert r.ok and r.request is not None and r.request.state == "active", r.text
        assert [(e["actor"], e["data"]["step"]) for e in await h.events("approval.granted")] == [
            (DEV, 1), (DANA, 2), (SAM, 2)]


async def test_a_denial_is_never_refused_for_being_needed_later(database_url, tmp_path):
    async with world(database_url, tmp_path, "[{any_of: dba}, {all_of: owners}]") as h:
        assert (await h.say(ALICE, "request staging-admin for 2h")).ok
        r = await h.say(DANA, "deny REQ-1 because not this week")
        assert r.ok, r.text
        assert (await h.request(1)).state == "denied"


async def test_an_approval_is_not_refused_when_the_chain_is_short_whoever_approves(database_url, tmp_path):
    """Nothing to protect: the chain cannot finish whatever dana does (dev left), so her click is
    taken as before and the request fails naming the step."""
    async with world(database_url, tmp_path, "[{any_of: dba}, {all_of: owners}]") as h:
        assert (await h.say(ALICE, "request staging-admin for 2h")).ok
        h.files.set_active(DEV, False)
        r = await h.say(DANA, "approve REQ-1")
        assert r.rule != "needed-later", r.text
        assert (await h.request(1)).state == "failed"
