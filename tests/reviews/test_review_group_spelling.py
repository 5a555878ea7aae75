"""A review item is matched to the grant behind it by the group's resolved id, not by how the policy spells it.

A grant made while the policy named its Okta group by name keeps that spelling; a campaign started after the
policy names the group by id lists its holder by the grant (not as a standing membership), a removal decided on
that item revokes the grant, and the close waits for the provider's removal of it (the call carries the grant's
spelling). On SQLite and PostgreSQL, with the Okta stand-in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.bootstrap import App, build_app
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, MutableClock, provider_policy

PAT, SAM, ANN, BOB = "pat.lead@example.com", "sam.sec@example.com", "ann@example.com", "bob@example.com"

REVIEW = """reviews:
  - id: tools-review
    title: Tools review
    scope: {profiles: [tools]}
    reviewer: manager
    duration: 10bd
"""


def _settings(db: str, tmp_path: Path, okta: OktaStandIn, group: str, version: str) -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(provider_policy("okta", group, version=version) + REVIEW)
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


async def _ask(app: App, email: str, text: str):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


def _seed(okta: OktaStandIn) -> str:
    tools = okta.add_group("tools")
    okta.add_user(PAT, department="Engineering")
    okta.add_user(SAM, department="Engineering")
    okta.add_user(ANN, department="Engineering", manager=PAT)
    okta.add_user(BOB, department="Engineering", manager=PAT)
    okta.add_member(tools, BOB)  # standing: in the group outside the bot
    return tools


async def test_an_item_held_by_a_grant_made_under_the_groups_name_is_listed_and_removed_by_its_grant(
        database_url, tmp_path):
    with OktaStandIn() as okta:
        tools = _seed(okta)
        clock = MutableClock(datetime.now(UTC))
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "by-name"), clock=clock,
                             as_of=clock) as app:
            granted = await _ask(app, ANN, "request tools for 8h because deploy")
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            assert granted.request.group == "tools"

        # the next version names the same group by its id; Ann's grant still says "tools"
        async with build_app(_settings(database_url, tmp_path, okta, tools, "by-id"), clock=clock,
                             as_of=clock) as app:
            reply = await _ask(app, SAM, "review start tools-review")
            assert reply.ok, reply.text
            async with app.store.read() as repo:
                items = {i.user: i for i in await repo.items(1)}
            ann, bob = items[ANN], items[BOB]
            assert ann.group == bob.group == tools
            assert (ann.held_via, ann.request_id) == ("REQ-1", 1)  # was "standing"
            assert (bob.held_via, bob.request_id) == ("standing", None)

            # the provider refuses Ann's removal for now: the close must wait for it, not record it done
            uid = okta.user_id(ANN)
            okta.fail_path(f"/groups/{tools}/users/{uid}", 503)
            assert (await _ask(app, PAT, f"keep RV-1 {bob.number}")).ok
            reply = await _ask(app, PAT, f"remove RV-1 {ann.number} because left the team")
            assert reply.ok, reply.text
            reply = await _ask(app, SAM, "review close RV-1")
            assert reply.ok and "closing: 1 removal(s) wait for the provider" in reply.text, reply.text
            async with app.store.read() as repo:
                campaign = await repo.get_campaign(1)
                item = next(i for i in await repo.items(1) if i.user == ANN)
                request = await repo.get_request(1)
            assert request is not None and request.state == "revoked"  # the removal ends the grant behind it
            assert okta.member_emails(tools) == sorted([ANN, BOB])
            assert campaign is not None and campaign.state == "closing", campaign
            assert item.state != "removed", (item.state, item.outcome)

            okta.clear_path_faults()
            clock.advance(minutes=5)
            await app.service.sweep(drift=False)
            async with app.store.read() as repo:
                campaign = await repo.get_campaign(1)
                item = next(i for i in await repo.items(1) if i.user == ANN)
            assert okta.member_emails(tools) == [BOB]
            assert campaign is not None and campaign.state == "closed"
            assert (item.state, item.outcome) == ("removed", "removed")
            removed = [e.as_dict() async for e in app.store.audit_events() if e.type == "membership.removed"]
            assert removed == []  # the grant's revocation took Ann out, not a standing removal


async def test_a_removal_is_not_made_where_a_later_grant_names_the_group_by_id(database_url, tmp_path):
    with OktaStandIn() as okta:
        tools = _seed(okta)
        clock = MutableClock(datetime.now(UTC))
        async with build_app(_settings(database_url, tmp_path, okta, "tools", "by-name"), clock=clock,
                             as_of=clock) as app:
            assert (await _ask(app, ANN, "request tools for 1h because deploy")).ok
            assert (await _ask(app, SAM, "review start tools-review")).ok  # the items name the group "tools"
            async with app.store.read() as repo:
                ann = next(i for i in await repo.items(1) if i.user == ANN)
            assert (ann.group, ann.held_via) == ("tools", "REQ-1")

        async with build_app(_settings(database_url, tmp_path, okta, tools, "by-id"), clock=clock,
                             as_of=clock) as app:
            clock.advance(minutes=90)
            report = await app.service.sweep(drift=False)
            assert report.expired == ["REQ-1"], report.lines()
            again = await _ask(app, ANN, "request tools for 4h because deploy")  # REQ-2 names the group by id
            assert again.ok and again.request is not None and again.request.group == tools, again.text
            assert okta.member_emails(tools) == sorted([ANN, BOB])
            reply = await _ask(app, PAT, f"remove RV-1 {ann.number} because left the team")
            assert reply.ok, reply.text
            reply = await _ask(app, SAM, "review close RV-1")
            assert reply.ok, reply.text
            async with app.store.read() as repo:
                item = next(i for i in await repo.items(1) if i.user == ANN)
                later = await repo.get_request(2)
            assert (item.state, item.outcome) == (
                "not removed", "the grant had already ended; REQ-2 holds the membership now: not removed")
            assert later is not None and later.state == "active"
            assert ANN in okta.member_emails(tools)
