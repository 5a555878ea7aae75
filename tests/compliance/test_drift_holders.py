"""A grant holder removed from the group behind the bot's back (SPEC §3.6): put back while the grant runs,
or the grant ends when the profile says ``removed_holder: end``; either way the holder and the security
team are told which, and ``drift.resolved`` names the request."""

from __future__ import annotations

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.context import one_lookup_per_person
from handlers.sweeps import sweep
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples, harness, okta_holder
from tests.test_notice_outbox import _outbox

ALICE, SAM = "alice@example.com", "sam.sec@example.com"
GROUP = "sg-prod-db-read"


async def _granted_then_removed(h: Harness) -> None:
    r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")  # auto-approved: Alice is on call
    assert r.ok and (await h.request(1)).state == "active", r.text
    await h.app.deps.providers["directory"].remove_member(GROUP, ALICE)  # by hand, not through the bot
    h.clock.advance(minutes=1)  # calls that finished at the sweep's instant explain what it lists


async def test_a_removed_holder_is_added_back_while_the_grant_runs(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await _granted_then_removed(h)
        report = await sweep(h.app.deps)
        assert report.drift == [f"{ALICE} not in directory/{GROUP} despite REQ-1"]
        assert ALICE in await h.members(GROUP)
        # the sweep's own output says what it did for her
        (settled,) = report.drift_settled
        assert "REQ-1" in settled and "added back" in settled, settled
        assert "settle drift: 1" in report.lines() and f"  {settled}" in report.lines()
        (added,) = await h.events("membership.added")
        assert (added["data"]["user"], added["data"]["reason"]) == (ALICE, "drift")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("restored", "REQ-1")
        assert any("added back" in n.text for n in h.notifier.to(ALICE, "status"))
        assert any("added back" in n.text and "REQ-1" in n.text for n in h.notifier.to(SAM, "drift"))
        # it landed at once: nobody is told it is queued, nor is a "queued" notice left in the outbox to be dropped
        assert not [r for r in await _outbox(h) if "queued" in r["text"]]
        await sweep(h.app.deps)
        assert len(await h.events("drift.detected")) == 1 and len(await h.events("drift.resolved")) == 1
        # it still ends with the grant
        h.clock.advance(minutes=30)
        await sweep(h.app.deps)
        assert ALICE not in await h.members(GROUP)
        assert len(await h.events("drift.detected")) == 1


async def test_a_profile_that_says_end_ends_the_grant(database_url, tmp_path):
    files = copy_examples(tmp_path)
    text = files.policy.read_text()
    files.policy.write_text(text.replace("    group: sg-prod-db-read\n",
                                         "    group: sg-prod-db-read\n    removed_holder: end\n", 1))
    clock, notifier = MutableClock(), RecordingNotifier()
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory), env={})
    async with build_app(settings, clock=clock, notifier=notifier) as app:
        h = Harness(app, clock, notifier, files)
        await _granted_then_removed(h)
        await sweep(h.app.deps)
        assert (await h.request(1)).state == "revoked"
        (revoked,) = await h.events("grant.revoked")
        assert revoked["data"]["reason"] == "drift" and revoked["request_id"] == "REQ-1"
        assert not await h.events("membership.added")
        assert ALICE not in await h.members(GROUP)
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1")
        assert any("the grant is ended" in n.text for n in notifier.to(ALICE, "status"))
        assert any("the grant is ended" in n.text for n in notifier.to(SAM, "drift"))


async def test_a_readd_the_provider_refuses_at_once_ends_the_grant_untold_as_queued(database_url, tmp_path):
    """Okta answers the re-add 400: it is given up at the first try, so the grant ends (told), and nothing says it
    was queued."""
    with OktaStandIn() as okta:
        async with okta_holder(okta, database_url, tmp_path) as (h, okta_app):  # Alice on call: auto-approved
            gid, alice, notifier = okta_app.gid, okta_app.user, h.notifier
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta
                okta.path_faults[f"/groups/{gid}/users/{alice}"] = Fault("status", status=400)
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)
            (failed,) = await h.events("membership.add_failed")
            assert failed["data"]["reason"] == "drift"
            assert (await h.request(1)).state == "revoked"
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("ended", "REQ-1")
            assert any("the grant is ended" in n.text for n in notifier.to(ALICE, "status"))
            assert any("the grant is ended" in n.text for n in notifier.to(SAM, "drift"))
            assert not [r for r in await _outbox(h) if "queued" in r["text"]]
            assert not [n for n in notifier.notices if "queued" in n.text]


def test_policy_check_names_a_bad_removed_holder(tmp_path):
    from handlers.policy import PolicyError, parse_policy

    files = copy_examples(tmp_path)
    raw = files.policy.read_text().replace("    group: sg-prod-db-read\n",
                                           "    group: sg-prod-db-read\n    removed_holder: sometimes\n", 1)
    try:
        parse_policy(raw.encode())
    except PolicyError as exc:
        assert "removed_holder" in str(exc) and "readd or end" in str(exc)
    else:
        raise AssertionError("accepted removed_holder: sometimes")


async def test_a_sweep_lists_groups_as_they_are_when_another_process_changed_them(database_url, tmp_path):
    """A sweep is one look-up scope, and another process may revoke a grant and remove its member while
    it runs: the group's listing must show that removal, not the members read when the scope began."""
    async with harness(database_url, tmp_path) as h:
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 page")
        assert r.ok and (await h.request(1)).state == "active", r.text
        settings = Settings(database_url=database_url, policy=str(h.files.policy),
                            directory=str(h.files.directory), env={})
        with one_lookup_per_person():  # the sweep's scope, begun before the other process acts
            assert GROUP in (await h.app.deps.directory.get_user(ALICE)).groups
            async with build_app(settings, clock=h.clock, notifier=RecordingNotifier()) as other:
                sam = await other.service.identify(SAM)
                revoked = await other.service.handle_text(sam, "revoke REQ-1 because access review")
                assert revoked.ok, revoked.text
            assert (await h.request(1)).state == "revoked"
            h.clock.advance(minutes=1)  # the removal finished before the sweep's instant
            report = await sweep(h.app.deps)
        assert report.drift == [] and not await h.events("drift.detected")
        assert ALICE not in await h.members(GROUP)
