"""Nobody decides on their own access in a review (SPEC §7, as in a request's chain, §2.1): not as the
sign-off of a removal list that ends their own membership, not as the approver of an undo that adds them
back. And an undo re-adds only an active person, as provisioning does (§3.6). Each refusal is recorded
(``command.refused``) and changes nothing; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.reviews.test_decisions import started
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples, harness


async def test_a_signoff_approver_cannot_sign_the_removal_of_their_own_access(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        sam = items["sam.sec@example.com"].number  # reviewed by pat.lead; sam is on the security team
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", f"remove RV-1 {sam} because left the platform team")).ok
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        asked = await h.events("review.signoff_requested")
        assert "sam.sec@example.com" not in asked[-1]["data"]["approvers"]
        assert "sasha.sec@example.com" in asked[-1]["data"]["approvers"]

        for words in ("deny RV-1 because I still need it", "approve RV-1"):
            reply = await h.say("sam.sec@example.com", words)
            assert not reply.ok and reply.rule == "self-approval", reply.text
        refused = await h.events("command.refused")
        assert [e["data"]["reason"] for e in refused[-2:]] == ["own membership on the removal list"] * 2
        assert await h.events("review.signoff") == [] and await h.events("review.closed") == []

        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        assert "sam.sec@example.com" not in await h.members("sg-prod-k8s-admin")
        assert (await h.events("review.closed"))[-1]["data"]["signoff"] == "approved"


async def test_the_person_an_undo_adds_back_may_not_approve_it(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        sam = items["sam.sec@example.com"].number
        assert (await h.say("pat.lead@example.com", f"remove RV-1 {sam} because no longer on the platform team")).ok
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok  # the sign-off
        assert "sam.sec@example.com" not in await h.members("sg-prod-k8s-admin")
        assert (await h.say("sasha.sec@example.com", f"review undo RV-1 {sam} because asked nicely")).ok

        reply = await h.say("sam.sec@example.com", f"approve RV-1 {sam}")
        assert not reply.ok and reply.rule == "self-approval", reply.text
        assert (await h.events("command.refused"))[-1]["data"]["reason"] == "own membership"
        assert "sam.sec@example.com" not in await h.members("sg-prod-k8s-admin")
        assert await h.events("review.undone") == []


async def test_an_undo_does_not_add_back_a_person_who_is_no_longer_active(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob, alice = items["bob@example.com"].number, items["alice@example.com"].number
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} {alice} because left the team")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        assert "bob@example.com" not in await h.members("sg-prod-db-read")

        # asked after bob left: refused at once
        h.files.set_active("bob@example.com", False)
        reply = await h.say("sam.sec@example.com", f"review undo RV-1 {bob} because removed by mistake")
        assert not reply.ok and reply.rule == "inactive", reply.text
        assert await h.events("review.undo_requested") == []

        # asked while alice was active, approved after she left: refused, the removal stands
        assert (await h.say("sam.sec@example.com", f"review undo RV-1 {alice} because removed by mistake")).ok
        h.files.set_active("alice@example.com", False)
        reply = await h.say("sasha.sec@example.com", f"approve RV-1 {alice}")
        assert not reply.ok and reply.rule == "inactive", reply.text
        assert [e["data"]["reason"] for e in (await h.events("command.refused"))[-2:]] == ["person not active"] * 2
        assert "alice@example.com" not in await h.members("sg-prod-db-read")
        added = [e for e in await h.events("membership.added") if e["data"]["user"] in ("bob@example.com",
                                                                                        "alice@example.com")]
        assert added == [] and await h.events("review.undone") == []



async def test_an_all_of_signoff_needs_everyone_but_the_person_whose_access_it_removes(database_url, tmp_path):
    """``sign_off: [{all_of: security}]`` with sam.sec's own membership on the list: sam is neither asked nor
    counted, as a requester in their own request's all_of step; sasha's signature completes the step."""
    async with on_the_list(database_url, tmp_path, "[{all_of: security}]") as h:
        assert (await h.say("sasha.sec@example.com", "review close RV-1")).ok
        asked = (await h.events("review.signoff_requested"))[-1]["data"]
        assert asked["approvers"] == ["sasha.sec@example.com"]
        reply = await h.say("sasha.sec@example.com", "approve RV-1")
        assert reply.ok and "sign-off approved" in reply.text, reply.text
        assert "sam.sec@example.com" not in await h.members("sg-prod-k8s-admin")


async def test_a_signoff_step_of_one_person_whose_access_is_on_the_list_goes_to_the_security_team(database_url,
                                                                                               tmp_path):
    """`sign_off: [{user: sam.sec}]` and sam's own membership on the removal list: sam may not sign it, and a
    step with nobody left would fail the whole list closed. It goes to the security team, less sam, as an item
    whose reviewer is the person reviewed goes to the fallback."""
    async with on_the_list(database_url, tmp_path, "[{user: sam.sec@example.com}]") as h:
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert reply.ok and "sign-off of 1 removal(s)" in reply.text, reply.text
        requested = (await h.events("review.signoff_requested"))[-1]["data"]
        asked = requested["approvers"]
        assert "sam.sec@example.com" not in asked and "sasha.sec@example.com" in asked, asked
        assert requested["instead_of"] == ["sam.sec@example.com"]  # the record says why the security team signs
        reply = await h.say("sam.sec@example.com", "approve RV-1")
        assert not reply.ok and reply.rule == "self-approval", reply.text
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok
        assert "sam.sec@example.com" not in await h.members("sg-prod-k8s-admin")
        assert (await h.events("review.closed"))[-1]["data"]["signoff"] == "approved"


@asynccontextmanager
async def on_the_list(database_url: str, tmp_path: Path, chain: str, who: str = "sam.sec@example.com",
                      by: str = "pat.lead@example.com", security: list[str] | None = None
                      ) -> AsyncIterator[Harness]:
    """The example policy with ``sign_off: chain`` (and the security team ``security`` when given); RV-1 started,
    everything kept but ``who``'s own membership, which its reviewer ``by`` removes (the campaign not closed
    yet)."""
    files = copy_examples(tmp_path)
    text = files.policy.read_text()
    assert "sign_off: [{any_of: security}]" in text
    if security is not None:
        team = "security: [sam.sec@example.com, sasha.sec@example.com]"
        assert team in text
        text = text.replace(team, f"security: [{', '.join(security)}]")
    files.policy.write_text(text.replace("sign_off: [{any_of: security}]", f"sign_off: {chain}"))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    clock, notifier = MutableClock(), RecordingNotifier()
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        h = Harness(app, clock, notifier, files)
        items = await started(h)
        number = items[who].number
        for keeper in ("mark.mgr@example.com", "sam.sec@example.com", "pat.lead@example.com"):
            assert (await h.say(keeper, "keep RV-1 all")).ok
        assert (await h.say(by, f"remove RV-1 {number} because left the platform team")).ok
        yield h
