"""A review item is matched to the grant behind it by the group's resolved id, not by how the policy spells it.

A grant made while the policy named its Okta group by name keeps that spelling; a campaign started after the
policy names the group by id lists its holder by the grant (not as a standing membership), a removal decided on
that item revokes the grant, and the close waits for the provider's removal of it (the call carries the grant's
spelling). The dashboard's 'Kept by a review' count matches a kept membership to grants and their ends the same
way. On SQLite and PostgreSQL, with the Okta stand-in.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("reviewed_by", ["name", "id"])
async def test_the_posture_counts_a_kept_membership_once_a_grant_naming_its_group_the_other_way_holds_it(
        database_url, tmp_path, reviewed_by):
    """'Kept by a review' on /dashboard/posture leaves out a membership a grant holds, and one a grant's end took
    out since, when the review kept it under the group's name and the grant names the group by its id (or the
    reverse)."""
    import re

    from tests.web.conftest import serve_dashboard

    async def kept(h) -> int:  # type: ignore[no-untyped-def]
        page = (await h.get("/dashboard/posture", cookie=await h.sign_in(SAM))).text
        return int(re.search(r'id="cov-reviewed">(\d+)<', page).group(1))  # type: ignore[union-attr]

    with OktaStandIn() as okta:
        tools = _seed(okta)  # Bob: a standing member
        reviewed, granted_as = ("tools", tools) if reviewed_by == "name" else (tools, "tools")
        clock = MutableClock(datetime.now(UTC))
        async with build_app(_settings(database_url, tmp_path, okta, reviewed, "first"), clock=clock,
                             as_of=clock) as app:
            assert (await _ask(app, SAM, "review start tools-review")).ok
            assert (await _ask(app, PAT, "keep RV-1 all")).ok
            assert (await _ask(app, SAM, "review close RV-1")).ok
            async with app.store.read() as repo:
                (item,) = await repo.items(1)
            assert (item.user, item.group, item.state) == (BOB, reviewed, "kept")

        clock.advance(minutes=5)
        policy = provider_policy("okta", granted_as, version="second") + REVIEW
        async with serve_dashboard(database_url, tmp_path, clock=clock, policy=policy, identity="okta",
                                   okta_url=okta.url, okta_token=okta.token) as h:
            assert await kept(h) == 1
            granted = await _ask(h.app, BOB, "request tools for 2h because deploy")
            assert granted.ok and granted.request is not None and granted.request.group == granted_as, granted.text
            assert await kept(h) == 0  # the grant counts it
            clock.advance(hours=3)
            report = await h.app.service.sweep(drift=False)
            assert report.expired == ["REQ-1"], report.lines()
            assert okta.member_emails(tools) == []
            assert await kept(h) == 0  # the grant's end took Bob out of the group
