"""A grant and a membership are matched by the group's identity at the provider, not by how the policy spells it.

A profile's group may be named by display name or by id. When a new policy version names the same group the
other way, the open grants still carry the spelling they were made under; drift, ``who has``, the leavers, the
reviews and the dashboard compare (provider, resolved group id), so the holder of such a grant is not reported
as drift, and its expiry still removes them from the group it was made in. A different group is still drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.bootstrap import App, build_app
from bot.settings import Settings
from handlers.queries import who_has
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, MutableClock, provider_policy

PAT, ANN, MAL = "pat.lead@example.com", "ann@example.com", "mal@example.com"


def _settings(db: str, tmp_path: Path, okta: OktaStandIn, group: str, version: str,
              profile: str = "tools") -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(provider_policy("okta", group, version=version).replace("id: tools", f"id: {profile}"))
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


async def _ask(app: App, email: str, text: str):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


async def _events(app: App, type_: str) -> list[dict]:
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


async def test_a_group_named_by_id_after_a_grant_made_by_its_name_is_not_drift(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user("sam.sec@example.com", department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT)
        okta.add_user(MAL, department="Engineering", manager=PAT)
        clock = MutableClock(datetime.now(UTC))
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "by-name"), as_of=clock) as app:
            granted = await _ask(app, ANN, "request tools for 2h because deploy")
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            assert granted.request.group == "tools"
            assert okta.member_emails(tools) == [ANN]

        # the next version names the same group by its id; Ann's grant still says "tools"
        async with build_app(_settings(database_url, tmp_path, okta, tools, "by-id"), as_of=clock) as app:
            report = await app.service.sweep()
            assert report.drift == [], report.lines()
            assert await _events(app, "drift.detected") == []
            answer = await who_has(app.deps, "tools")
            assert ANN in answer.text and answer.data["without_grant"] == [], answer.text

            okta.add_member(tools, MAL)  # someone added outside the bot is still drift
            report = await app.service.sweep()
            assert report.drift == [f"{MAL} in okta/{tools}"], report.lines()
            answer = await who_has(app.deps, "tools")
            assert answer.data["without_grant"] == [MAL], answer.text

            clock.advance(hours=3)  # the grant ends: Ann leaves the group it was made in
            report = await app.service.sweep()
            assert report.expired == [granted.request.id], report.lines()
            assert okta.member_emails(tools) == [MAL]
            assert [f for f in report.drift if ANN in f] == [], report.lines()


async def test_a_grant_in_another_group_does_not_explain_a_membership(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        other = okta.add_group("other")
        okta.add_user(PAT, department="Engineering")
        okta.add_user("sam.sec@example.com", department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT)
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "tools")) as app:
            granted = await _ask(app, ANN, "request tools for 2h because deploy")
            assert granted.ok, granted.text
            assert okta.member_emails(tools) == [ANN]
        okta.add_member(other, ANN)  # in a different group, outside the bot
        async with build_app(_settings(database_url, tmp_path, okta, other, "other")) as app:
            report = await app.service.sweep()
            assert report.drift == [f"{ANN} in okta/{other}"], report.lines()
            answer = await who_has(app.deps, "tools")
            assert answer.data["without_grant"] == [ANN], answer.text


async def test_a_leaver_loses_the_grant_and_no_second_removal_when_the_group_is_named_by_id(database_url,
                                                                                            tmp_path):
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user("sam.sec@example.com", department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT)
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "by-name")) as app:
            granted = await _ask(app, ANN, "request tools for 2h because deploy")
            assert granted.ok and granted.request is not None, granted.text
        okta.set_status(ANN, "DEPROVISIONED")
        async with build_app(_settings(database_url, tmp_path, okta, tools, "by-id")) as app:
            report = await app.service.sweep(drift=False)
            # the membership is the grant's: revoked, and not also removed as a standing membership
            assert report.terminated == [ANN] and report.revoked == [granted.request.id], report.lines()
            assert report.removed == [], report.lines()
            assert okta.member_emails(tools) == []
            assert await _events(app, "membership.removed") == []
            (revoked,) = await _events(app, "grant.revoked")
            assert revoked["data"]["group"] == "tools"


async def test_the_end_of_a_grant_keeps_the_membership_a_grant_naming_the_group_by_id_still_holds(database_url,
                                                                                                  tmp_path):
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user("sam.sec@example.com", department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT)
        clock = MutableClock(datetime.now(UTC))
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "by-name"), as_of=clock) as app:
            first = await _ask(app, ANN, "request tools for 1h because deploy")
            assert first.ok and first.request is not None, first.text
        # the next version retires `tools` and grants the same group, by id, through `ops`
        async with build_app(_settings(database_url, tmp_path, okta, tools, "by-id", "ops"), as_of=clock) as app:
            second = await _ask(app, ANN, "request ops for 4h because deploy")
            assert second.ok and second.request is not None and second.request.state == "active", second.text
            clock.advance(minutes=90)
            report = await app.service.sweep()
            assert report.expired == [first.request.id] and report.drift == [], report.lines()
            assert okta.member_emails(tools) == [ANN]  # REQ-2 still holds the membership
            clock.advance(hours=3)
            report = await app.service.sweep()
            assert report.expired == [second.request.id], report.lines()
            assert okta.member_emails(tools) == []


async def test_the_dashboard_shows_the_membership_granted_when_the_group_is_named_by_id(database_url, tmp_path):
    from tests.web.conftest import serve_dashboard

    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user("sam.sec@example.com", department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT)
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "by-name")) as app:
            granted = await _ask(app, ANN, "request tools for 2h because deploy")
            assert granted.ok, granted.text
        async with serve_dashboard(database_url, tmp_path, policy=provider_policy("okta", tools, version="id"),
                                   identity="okta", okta_url=okta.url, okta_token=okta.token) as h:
            cookie = await h.sign_in("sam.sec@example.com")
            page = await h.get(f"/dashboard/people/{ANN}", cookie=cookie)
            assert page.status == 200, page.text[:300]
            assert "state-granted" in page.text and "state-drift" not in page.text, page.text


def _exception_settings(db: str, tmp_path: Path, okta: OktaStandIn, group: str, version: str) -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(provider_policy("okta", group, version=version, exception="[owner]"))
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


def _standing(okta: OktaStandIn) -> str:
    tools = okta.add_group("tools")
    okta.add_user(PAT, department="Engineering")
    okta.add_user("sam.sec@example.com", department="Engineering")
    okta.add_user(MAL, department="Engineering", manager=PAT)
    okta.add_member(tools, MAL)  # added outside the bot
    return tools


async def test_a_finding_made_under_the_groups_name_is_accepted_under_its_id(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools = _standing(okta)
        async with build_app(_exception_settings(database_url, tmp_path, okta, "tools", "by-name")) as app:
            report = await app.service.sweep()
            assert report.drift == [f"{MAL} in okta/tools"], report.lines()
            (detected,) = await _events(app, "drift.detected")
        finding = detected["data"]["id"]
        async with build_app(_exception_settings(database_url, tmp_path, okta, tools, "by-id")) as app:
            # the finding says "tools"; the profile that names the group by id manages it
            filed = await _ask(app, "sam.sec@example.com", f"drift accept {finding} for 2d because CHG-12 migration")
            assert filed.ok and "REQ-1" in filed.text, filed.text
            approved = await _ask(app, PAT, "approve REQ-1")
            assert approved.ok, approved.text
            (resolved,) = await _events(app, "drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("exception", "REQ-1")
            report = await app.service.sweep()
            assert report.drift == [], report.lines()
            assert okta.member_emails(tools) == [MAL]


async def test_a_finding_made_under_the_groups_name_is_not_removed_again_after_a_removal_under_its_id(
        database_url, tmp_path):
    with OktaStandIn() as okta:
        tools = _standing(okta)
        async with build_app(_exception_settings(database_url, tmp_path, okta, "tools", "by-name")) as app:
            report = await app.service.sweep()
            assert report.drift == [f"{MAL} in okta/tools"], report.lines()
            (detected,) = await _events(app, "drift.detected")
        finding = detected["data"]["id"]
        okta.set_status(MAL, "DEPROVISIONED")
        async with build_app(_exception_settings(database_url, tmp_path, okta, tools, "by-id")) as app:
            report = await app.service.sweep(drift=False)  # the leaver's standing membership, named by id
            assert report.terminated == [MAL], report.lines()
            assert okta.member_emails(tools) == []
            (removed,) = await _events(app, "membership.removed")
            assert removed["data"]["group"] == tools
            # that removal is the one the finding's removal would make: it is not planned (nor made) a second time
            reply = await _ask(app, "sam.sec@example.com", f"drift remove {finding} because not expected")
            assert not reply.ok and reply.rule == "busy", reply.text
            assert len(await _events(app, "membership.removed")) == 1
