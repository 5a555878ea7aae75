"""``drift accept D-n for <duration> because …``: an exception for a drifted member (SPEC §3.6).

Everything goes through the service's chat entry, as a person's message would.
"""

from __future__ import annotations

import asyncio

from handlers.records import DriftRecord
from handlers.sweeps import sweep
from tests.support import harness

PAT, BOB, ALICE = "pat.lead@example.com", "bob@example.com", "alice@example.com"
SAM, SASHA, DANA = "sam.sec@example.com", "sasha.sec@example.com", "dana.dba@example.com"
WHY = "because CHG-12 standing read access for the migration"


async def _finding(h, group: str, email: str) -> str:  # type: ignore[no-untyped-def]
    h.files.add_to_group(group, email)
    await sweep(h.app.deps)
    return next(e["data"]["id"] for e in await h.events("drift.detected") if e["data"]["user"] == email)


async def test_accepted_membership_is_backed_by_the_grant_and_ends_with_it(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", PAT)
        r = await h.say(SAM, f"drift accept {d} for 2d {WHY}")
        assert r.ok and "REQ-1" in r.text, r.text
        (submitted,) = await h.events("request.submitted")
        assert submitted["actor"] == SAM and submitted["request_id"] == "REQ-1"
        assert submitted["data"]["kind"] == "exception" and submitted["data"]["submitted_by"] == SAM
        assert submitted["data"]["drift_id"] == d and submitted["data"]["ticket"] == "CHG-12"
        record = await h.request(1)
        assert (record.requester, record.profile, record.kind) == (PAT, "prod-db-read", "exception")
        (asked,) = await h.events("approval.requested")
        assert asked["data"]["approvers"] == [SASHA]  # the filer is not asked
        assert any("REQ-1" in n.text for n in h.notifier.to(SASHA, "approval"))
        assert any("REQ-1" in n.text for n in h.notifier.to(PAT, "status"))
        # every security member's card of the finding says who filed what, and offers no more buttons
        for member in (SAM, SASHA):
            (outcome,) = h.notifier.to(member, "drift_outcome")
            assert outcome.view.id == d and outcome.view.outcome == outcome.text
            assert outcome.text.startswith(f"{d}: {SAM} filed REQ-1 to accept this as an exception (2d)")
        # the filer counts as a requester: one person once; nor are they shown as able to decide it
        seen = (await h.say(SAM, "status REQ-1")).request
        assert SAM not in seen.waiting_on and SAM not in seen.steps[0].approvers, seen
        assert "Waiting on your decision" not in (await h.say(SAM, "mine")).text
        refused = await h.say(SAM, "approve REQ-1")
        assert not refused.ok and refused.rule == "self-approval"
        # still drift while it waits, and not resolved; the listing says what is under way
        listing = (await h.say(SAM, "drift")).text
        assert listing.count(d) == 1 and "exception REQ-1 waiting" in listing, listing
        assert (await h.say(SASHA, "approve REQ-1")).ok
        assert not await h.events("drift.resolved")
        approved = await h.say(DANA, "approve REQ-1")
        assert approved.ok, approved.text
        (resolved,) = await h.events("drift.resolved")
        keys = ("id", "provider", "group", "user", "resolution", "request_id", "by")
        assert {k: resolved["data"].get(k) for k in keys} == {
            "id": d, "provider": "directory", "group": "sg-prod-db-read", "user": PAT, "resolution": "exception",
            "request_id": "REQ-1", "by": SAM}
        assert resolved["data"]["by"] == SAM
        (provisioned,) = await h.events("grant.provisioned")
        assert provisioned["request_id"] == "REQ-1"
        assert PAT in await h.members("sg-prod-db-read")  # the add is idempotent: still a member, once
        report = await sweep(h.app.deps)
        assert report.drift == [] and len(await h.events("drift.detected")) == 1
        assert (await h.say(SAM, "drift")).text == "No open drift findings."
        again = await h.say(SAM, f"drift accept {d} for 2d {WHY}")
        assert again.rule == "resolved"
        # the grant ends, and the membership with it
        h.clock.advance(days=2, minutes=1)
        await sweep(h.app.deps)
        assert (await h.request(1)).state == "expired"
        assert PAT not in await h.members("sg-prod-db-read")
        assert len(await h.events("drift.detected")) == 1  # no new finding: the membership went with the grant


async def test_denied_accept_removes_the_member_and_links_the_request(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        # while an accept waits, `drift remove` points at it instead of racing it
        assert (await h.say(SASHA, f"drift remove {d} because no")).rule == "accept-pending"
        denied = await h.say(SASHA, "deny REQ-1 because no standing access to production data")
        assert denied.ok, denied.text
        assert BOB not in await h.members("sg-prod-db-read")
        (removed,) = await h.events("membership.removed")
        assert (removed["data"]["user"], removed["data"]["reason"]) == (BOB, "drift")
        (resolved,) = await h.events("drift.resolved")
        assert resolved["data"]["resolution"] == "removed" and resolved["data"]["request_id"] == "REQ-1"
        assert resolved["data"]["by"] == SAM
        # the cards said the exception was filed; now they say how it ended
        assert h.notifier.to(SAM, "drift_outcome")[-1].text == (
            f"{d} resolved (removed): {BOB} was removed from directory/sg-prod-db-read.")
        await sweep(h.app.deps)
        assert len(await h.events("drift.resolved")) == 1 and len(await h.events("membership.removed")) == 1


async def test_cancelled_by_the_member_removes_them(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        assert (await h.say(BOB, "cancel REQ-1")).ok
        assert BOB not in await h.members("sg-prod-db-read")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("removed", "REQ-1")


async def test_undecided_past_the_drift_sla_is_withdrawn_and_removed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        h.clock.advance(hours=23)
        await sweep(h.app.deps)
        assert (await h.request(1)).state == "pending" and BOB in await h.members("sg-prod-db-read")
        h.clock.advance(hours=2)
        await sweep(h.app.deps)
        assert (await h.request(1)).state == "cancelled"
        (cancelled,) = await h.events("request.cancelled")
        assert cancelled["actor"] == "system" and cancelled["data"]["drift_id"] == d
        assert BOB not in await h.members("sg-prod-db-read")
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("removed", "REQ-1")
        assert any("REQ-1" in n.text for n in h.notifier.to(SAM, "drift"))
        # the people its open step asked hold cards with live buttons: they are told it was withdrawn
        (asked,) = await h.events("approval.requested")
        for a in asked["data"]["approvers"]:
            [told] = [n for n in h.notifier.to(a, "outcome") if n.request_id == 1]
            assert "withdrawn" in told.text and "drift_sla" in told.text, told.text


async def test_refusals_name_their_rule(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        staging = await _finding(h, "sg-staging-admin", ALICE)
        refused = await h.say(BOB, f"drift accept {d} for 1d {WHY}")
        assert not refused.ok and refused.rule == "security-only"
        assert (await h.events("command.refused"))[-1]["data"]["command"] == "drift accept"
        cases = {
            f"drift accept {d} for 1d": "reason",
            f"drift accept {d} because CHG-1 x": "duration",
            f"drift accept {d} for 0 {WHY}": "duration",
            f"drift accept {d} for 0h {WHY}": "duration",
            f"drift accept {d} for 31d {WHY}": "duration>max",
            f"drift accept {d} for 1d because no ticket here": "ticket",
            f"drift accept {d} for 1d because CHG-1 " + "x" * 3000: "reason",
            f"drift accept D-99 for 1d {WHY}": "not-found",
            f"drift accept {staging} for 1d {WHY}": "exception: not allowed",
        }
        for text, rule in cases.items():
            r = await h.say(SAM, text)
            assert not r.ok and r.rule == rule, (text[:60], r.rule, r.text)
        assert "2000" in (await h.say(SAM, f"drift accept {d} for 1d because " + "y" * 3000)).text
        assert (await h.say(SAM, f"drift remove {d} because " + "y" * 3000)).rule == "reason"
        assert not await h.events("membership.removed")
        # a group no profile manages (the policy changed since the finding)
        async with h.app.store.write() as repo:
            orphan = DriftRecord(provider="directory", group="sg-retired", email=BOB, first_seen=h.clock.now())
            await repo.add_drift(orphan)
        assert (await h.say(SAM, f"drift accept D-{orphan.id} for 1d {WHY}")).rule == "no-profile"
        assert not await h.events("request.submitted")  # nothing was filed by any refusal
        # a resolved finding
        assert (await h.say(SAM, f"drift remove {d} because not approved")).ok
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).rule == "resolved"


async def test_two_accepts_at_once_file_one_request(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        first, second = await asyncio.gather(h.say(SAM, f"drift accept {d} for 1d {WHY}"),
                                             h.say(SASHA, f"drift accept {d} for 2d {WHY}"))
        assert sorted([first.ok, second.ok]) == [False, True], (first.text, second.text)
        loser = second if first.ok else first
        assert loser.rule == "accept-pending" and "REQ-1" in loser.text
        assert len(await h.events("request.submitted")) == 1


async def test_a_member_who_left_is_not_accepted(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d_bob = await _finding(h, "sg-prod-db-read", BOB)
        d_pat = await _finding(h, "sg-prod-db-read", PAT)
        # left the group before the accept: resolved as gone, nothing filed
        await h.app.deps.providers["directory"].remove_member("sg-prod-db-read", BOB)
        r = await h.say(SAM, f"drift accept {d_bob} for 1d {WHY}")
        assert not r.ok and r.rule == "gone", r.text
        gone = [e["data"] for e in await h.events("drift.resolved") if e["data"]["id"] == d_bob]
        assert [g["resolution"] for g in gone] == ["gone"]
        assert [n.text for n in h.notifier.to(SASHA, "drift_outcome")] == [
            f"{d_bob} resolved: {BOB} is no longer in directory/sg-prod-db-read (gone)."]
        # left the company: refused, the leaver sweep removes them
        h.files.set_active(PAT, False)
        assert (await h.say(SAM, f"drift accept {d_pat} for 1d {WHY}")).rule == "inactive"
        assert not await h.events("request.submitted")


async def test_a_member_who_leaves_the_group_while_the_accept_waits(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        await h.app.deps.providers["directory"].remove_member("sg-prod-db-read", BOB)
        await sweep(h.app.deps)
        assert await h.events("drift.resolved") == []  # one listing without him is not yet the truth
        h.clock.advance(hours=1)
        await sweep(h.app.deps)
        (resolved,) = await h.events("drift.resolved")
        assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("gone", "REQ-1")
        assert (await h.request(1)).state == "cancelled"
        assert h.notifier.to(SASHA, "drift_outcome")[-1].text == (
            f"{d} resolved (gone): {BOB} is no longer in directory/sg-prod-db-read.")
        assert (await h.say(SASHA, "approve REQ-1")).rule == "not-open"
        assert BOB not in await h.members("sg-prod-db-read")
        assert not await h.events("grant.provisioned")


def test_the_accept_words_parse():
    from handlers.compliance.commands import DriftAccept, parse_compliance

    assert parse_compliance("drift accept D-4 for 7d because CHG-1 ok") == DriftAccept(4, "7d", "CHG-1 ok")
    assert parse_compliance("Drift Accept d-4 for 2 hours because x") == DriftAccept(4, "2 hours", "x")
    assert parse_compliance("drift accept D-4") == DriftAccept(4, None, None)
    assert parse_compliance("drift accept D-4 because x") == DriftAccept(4, None, "x")
    assert parse_compliance("drift accept D-4 please") is None
    assert parse_compliance("drift accept REQ-4 for 1d because x") is None
    long = "y" * 3000
    assert parse_compliance(f"drift remove D-4 because {long}").reason == long  # kept whole: refused, never cut


async def test_a_member_terminated_while_the_accept_waits_is_removed_once(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", PAT)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        h.files.set_active(PAT, False)
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)
        h.clock.advance(minutes=1)  # a call that finished at a sweep's instant explains what that sweep lists
        await sweep(h.app.deps)
        assert PAT not in await h.members("sg-prod-db-read")
        assert [e["data"]["reason"] for e in await h.events("membership.removed")] == ["terminated"]
        assert (await h.request(1)).state == "cancelled"
        (resolved,) = await h.events("drift.resolved")
        assert resolved["data"]["id"] == d and resolved["data"]["resolution"] == "gone"


async def test_an_accept_of_a_member_who_left_the_group_is_withdrawn_and_its_approvers_told(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        (asked,) = await h.events("approval.requested")

        def leave(data: dict) -> None:
            data["groups"]["sg-prod-db-read"] = [m for m in data["groups"]["sg-prod-db-read"] if m != BOB]

        h.files.edit_directory(leave)
        h.clock.advance(minutes=5)
        await sweep(h.app.deps)  # the first sweep that finds them gone: the grace starts
        h.clock.advance(minutes=70)
        await sweep(h.app.deps)  # past safety.unknown_grace: the finding is resolved, the accept withdrawn
        assert (await h.request(1)).state == "cancelled"
        (cancelled,) = await h.events("request.cancelled")
        assert cancelled["data"]["reason"] == "the member is no longer in the group", cancelled
        for a in asked["data"]["approvers"]:
            [told] = [n for n in h.notifier.to(a, "outcome") if n.request_id == 1]
            assert "withdrawn" in told.text and "no longer in" in told.text, told.text


async def test_a_tampered_accept_state_naming_no_request_does_not_stop_the_sweep(database_url, tmp_path):
    """The stored accept names its request as ``REQ-n``; a value that is not one (edited by hand, say) is taken as
    naming none: the sweep goes on rather than fail on every run."""
    from handlers.compliance.findings import accept_key

    async with harness(database_url, tmp_path) as h:
        d = await _finding(h, "sg-prod-db-read", BOB)
        assert (await h.say(SAM, f"drift accept {d} for 1d {WHY}")).ok
        number = int(d.removeprefix("D-"))
        async with h.app.store.write() as repo:
            state = await repo.get_state(accept_key(number))
            await repo.set_state(accept_key(number), {**state, "request_id": "REQ-٣x"}, h.clock.now())
        h.clock.advance(hours=25)
        report = await sweep(h.app.deps)
        assert not report.unchecked or all("REQ" not in line for line in report.unchecked), report.lines()
        assert (await h.request(1)).state == "pending"  # nothing was done to a request it does not name
