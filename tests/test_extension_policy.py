"""An extension is a new decision, judged by the policy in force when it is asked (issue 9, item 3).

Its maximum, its chain and the holder's eligibility come from the version in force, not the one
the request was first submitted under; ``grant.extended`` names the version that judged it, and
that version keeps judging the extension's round even if the policy changes again meanwhile.
An extension only lengthens the membership the grant holds: once the policy in force grants the
profile as another group, or drops it, the extension is refused, or failed while it waits.
"""

from __future__ import annotations

import re
from datetime import timedelta

from handlers.policy import load_policy
from tests.support import T0, Harness, harness

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
MARK, DANA, SAM, SASHA, PAT = ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com",
                               "sasha.sec@example.com", "pat.lead@example.com")


async def new_policy(h: Harness, version: str, *edits: tuple[str, str]) -> None:
    text = h.files.policy.read_text()
    text = re.sub(r'(?m)^version: ".*"$', f'version: "{version}"', text)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    h.files.policy.write_text(text)
    h.app.deps.policy = load_policy(h.files.policy)
    await h.app.service.start()


STAGING_OWNER = ("    justification: optional\n    approval:\n      - manager\n",
                 "    justification: optional\n    approval:\n      - owner\n")


async def test_a_tightened_maximum_applies_to_the_next_extension(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        r = await h.say(ALICE, "request prod-db-read for 30m because INC-7 paged")
        assert r.ok and r.request.state == "active", r.text
        await new_policy(h, "2026.12", ("duration: {default: 4h, max: 8h}", "duration: {default: 1h, max: 1h}"))
        r = await h.say(ALICE, "extend REQ-1 by 2h because still digging")
        assert not r.ok and r.rule == "duration>max" and "1h" in r.text, r.text
        refused = (await h.events("request.refused"))[-1]
        assert refused["data"]["rule"] == "duration>max" and refused["request_id"] == "REQ-1"
        r = await h.say(ALICE, "extend REQ-1 by 30m because still digging")
        assert r.ok, r.text


async def test_the_chain_of_the_policy_in_force_approves_the_extension(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        old = h.app.deps.policy
        await new_policy(h, "2026.12", STAGING_OWNER)
        new = h.app.deps.policy
        r = await h.say(BOB, "extend REQ-1 by 1h because release night")
        assert r.ok and [s.label for s in r.request.steps] == ["owner"], r.text
        asked = (await h.events("request.extension_requested"))[-1]
        assert (asked["data"]["policy_version"], asked["data"]["policy_sha256"]) == ("2026.12", new.sha256)
        r = await h.say(MARK, "approve REQ-1")
        assert not r.ok and r.rule == "not-an-approver", r.text
        # the policy changes again while the extension waits: its round stays with the version that opened it
        await new_policy(h, "2026.13", ("      - owner\n\n  - id: analytics-read",
                                                       "      - {any_of: dba}\n\n  - id: analytics-read"))
        r = await h.say(PAT, "approve REQ-1")
        assert r.ok, r.text
        extended = (await h.events("grant.extended"))[-1]
        assert extended["data"]["policy_version"] == "2026.12"
        assert extended["data"]["policy_sha256"] == new.sha256 != old.sha256
        rec = await h.request(1)
        assert rec.policy_sha256 == old.sha256  # the request itself still names the version it was submitted under
        assert rec.expires_at == T0 + timedelta(hours=2)


async def test_a_holder_no_longer_eligible_cannot_extend(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok

        def to_finance(data: dict) -> None:
            next(u for u in data["users"] if u["email"] == BOB)["department"] = "Finance"

        h.files.edit_directory(to_finance)
        r = await h.say(BOB, "extend REQ-1 by 1h")
        assert not r.ok and r.rule == "eligible: no rule matched", r.text
        refused = (await h.events("request.refused"))[-1]
        assert refused["data"]["rule"] == "eligible: no rule matched" and refused["request_id"] == "REQ-1"
        assert not await h.events("request.extension_requested")
        assert (await h.request(1)).expires_at == T0 + timedelta(hours=1)


async def test_eligibility_lost_while_the_extension_waits_fails_the_extension_only(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h")).ok

        def to_finance(data: dict) -> None:
            next(u for u in data["users"] if u["email"] == BOB)["department"] = "Finance"

        h.files.edit_directory(to_finance)
        r = await h.say(MARK, "approve REQ-1")
        assert "eligible: no rule matched" in r.text, r.text
        failed = (await h.events("request.failed"))[-1]
        assert failed["data"]["rule"] == "eligible: no rule matched" and failed["data"]["extension"] is True
        assert not await h.events("grant.extended")
        rec = await h.request(1)
        assert rec.state == "active" and rec.expires_at == T0 + timedelta(hours=1) and not rec.extension_pending


async def test_an_exception_is_extended_by_the_exception_block_in_force(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(CAROL, "exception prod-db-read for 2d because INC-9 migration weekend")).ok
        assert (await h.say(SAM, "approve REQ-1")).ok
        assert (await h.say(DANA, "approve REQ-1")).ok
        assert (await h.request(1)).state == "active"
        await new_policy(h, "2026.12", ("      max_duration: 30d", "      max_duration: 2d"))
        r = await h.say(CAROL, "extend REQ-1 by 1d because INC-9 overran")
        assert not r.ok and r.rule == "duration>max", r.text
        await new_policy(h, "2026.13", ("    exception:\n      approval: [{any_of: security}, owner]\n"
                                        "      max_duration: 2d\n", ""))
        r = await h.say(CAROL, "extend REQ-1 by 1h because INC-9 overran")
        assert not r.ok and r.rule == "exception: not allowed", r.text


STAGING_MOVED = ("    group: sg-staging-admin\n", "    group: sg-staging-admin-v2\n")
STAGING_GONE = ("  - id: staging-admin\n    title: Staging environment, admin\n", "  - id: staging-admin-old\n"
                "    title: Staging environment, admin\n")


async def test_an_extension_is_refused_once_the_profile_moved_to_another_group(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert BOB in await h.members("sg-staging-admin")
        await new_policy(h, "2026.12", STAGING_MOVED)
        r = await h.say(BOB, "extend REQ-1 by 1h because release night")
        assert not r.ok and r.rule == "group-changed", r.text
        assert "sg-staging-admin-v2" in r.text and "again" in r.text, r.text
        refused = (await h.events("request.refused"))[-1]
        assert refused["request_id"] == "REQ-1" and refused["data"]["rule"] == "group-changed"
        held, named = refused["data"]["group"], refused["data"]["policy_group"]
        assert (held, named) == ("sg-staging-admin", "sg-staging-admin-v2")
        assert not await h.events("request.extension_requested") and not h.notifier.to(MARK, "approval")[1:]
        rec = await h.request(1)
        assert rec.state == "active" and not rec.extension_pending and rec.expires_at == T0 + timedelta(hours=1)
        # the grant still ends on time, in the group it is in
        h.clock.advance(hours=1, minutes=1)
        await h.app.service.sweep()
        assert (await h.request(1)).state == "expired"
        assert BOB not in await h.members("sg-staging-admin")
        assert BOB not in await h.members("sg-staging-admin-v2")


async def test_an_extension_pending_when_the_profile_moved_is_not_executed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h because release night")).ok
        await new_policy(h, "2026.12", STAGING_MOVED)
        r = await h.say(MARK, "approve REQ-1")
        assert "sg-staging-admin-v2" in r.text and "keeps its expiry" in r.text, r.text
        assert not await h.events("grant.extended")
        failed = (await h.events("request.failed"))[-1]
        assert failed["request_id"] == "REQ-1" and failed["data"]["rule"] == "group-changed"
        assert failed["data"]["extension"] is True and failed["data"]["policy_group"] == "sg-staging-admin-v2"
        rec = await h.request(1)
        assert rec.state == "active" and not rec.extension_pending and rec.expires_at == T0 + timedelta(hours=1)
        told = h.notifier.to(BOB, "status")[-1]
        assert "failed" in told.text and "sg-staging-admin-v2" in told.text, told.text
        assert BOB in await h.members("sg-staging-admin") and BOB not in await h.members("sg-staging-admin-v2")


async def test_an_extension_pending_when_the_profile_was_removed_is_not_executed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h because release night")).ok
        await new_policy(h, "2026.12", STAGING_GONE)
        r = await h.say(MARK, "approve REQ-1")
        assert "no longer in the policy" in r.text, r.text
        assert not await h.events("grant.extended")
        assert (await h.events("request.failed"))[-1]["data"]["rule"] == "unknown-profile"
        rec = await h.request(1)
        assert rec.state == "active" and rec.expires_at == T0 + timedelta(hours=1)
        r = await h.say(BOB, "extend REQ-1 by 1h")
        assert not r.ok and r.rule == "unknown-profile", r.text


async def test_a_group_named_again_the_same_way_is_not_a_move(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 1h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h")).ok
        await new_policy(h, "2026.12", ("duration: {default: 8h, max: 3d}", "duration: {default: 8h, max: 2d}"))
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.request(1)).expires_at == T0 + timedelta(hours=2)


async def test_the_sweep_closes_an_extension_whose_profile_moved_once(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 3h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h because release night")).ok
        await new_policy(h, "2026.12", STAGING_MOVED)
        report = await h.app.service.sweep()
        assert report.failed == ["REQ-1"], report.lines()
        again = await h.app.service.sweep()
        assert again.failed == [] and not again.reminded
        [failed] = await h.events("request.failed")
        assert failed["data"]["rule"] == "group-changed" and failed["data"]["extension"] is True
        rec = await h.request(1)
        assert rec.state == "active" and not rec.extension_pending and rec.expires_at == T0 + timedelta(hours=3)
        assert "sg-staging-admin-v2" in h.notifier.to(BOB, "status")[-1].text
        assert "closed" in h.notifier.to(MARK, "outcome")[-1].text
        r = await h.say(MARK, "approve REQ-1")
        assert not r.ok and r.rule == "not-open", r.text
        assert not await h.events("grant.extended")


async def test_a_policy_reload_moving_the_group_back_during_the_sweep_keeps_the_extension(database_url, tmp_path,
                                                                                        monkeypatch):
    """The sweep saw the profile moved, then the policy was reloaded with the group back while it looked the
    approvers up: under the write lock the extension is judged by the policy in force then, and kept waiting."""
    from tests.support import before_looking_up

    async with harness(database_url, tmp_path) as h:
        await h.say(BOB, "request staging-admin for 3h")
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.say(BOB, "extend REQ-1 by 1h because release night")).ok
        await new_policy(h, "2026.12", STAGING_MOVED)
        moved_back = STAGING_MOVED[::-1]

        async def reload_back() -> None:
            await new_policy(h, "2026.13", moved_back)

        # the reload lands while the sweep looks up the extension's approver, after it judged the profile moved
        ran = before_looking_up(monkeypatch, h.app, MARK, reload_back)
        report = await h.app.service.sweep()
        assert ran and report.failed == [], report.lines()
        assert not await h.events("request.failed")
        assert (await h.request(1)).extension_pending
        assert (await h.say(MARK, "approve REQ-1")).ok
        assert (await h.request(1)).expires_at == T0 + timedelta(hours=4)
