"""Unknown is not terminated, and drift is resolved from chat, through Entra (Graph stand-in) and Okta (stand-in).

A person the identity provider no longer finds (Graph answers 404 for their login and no user has their
mail; Okta has no user with their login or email) loses nothing at the first sweep and is a leaver only
at a sweep at least ``safety.unknown_grace`` later, judged as ``sweep --as-of`` judges. A member added to
a managed group at the provider outside the bot is drift ``D-n``; ``drift remove`` removes them there
once, and ``drift accept`` approved through the profile's exception chain leaves them backed by a grant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bot.bootstrap import App, build_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, MutableClock, provider_policy
from tests.test_leaver_lookups import ANN, PAT, entra_settings, grant_each, graph  # noqa: F401

POLICY: dict = {"version": "unknown-drift-1", "security": ("sam.sec@example.com", "sasha.sec@example.com"),
                "exception": "[{any_of: security}, owner]"}

DAN, BOB = "dan@example.com", "bob@example.com"
SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"


async def _events(app: App, type_: str) -> list[dict]:
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


async def _say(app: App, email: str, text: str):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


def _graph_app(database_url: str, tmp_path, server: GraphStandIn, group: str) -> Settings:  # type: ignore[no-untyped-def]
    settings = entra_settings(database_url, tmp_path, server, group)
    (tmp_path / "policy.yaml").write_text(provider_policy("entra", group, **POLICY))
    return settings


def _okta_settings(database_url: str, tmp_path, okta: OktaStandIn, group: str) -> Settings:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(provider_policy("okta", group, **POLICY))
    return Settings(database_url=database_url, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


def _okta_logins(okta: OktaStandIn, group: str) -> list[str]:
    with okta.lock:
        return sorted(okta.users[u]["profile"]["login"].lower() for u in okta.members.get(group, []))


# ----- unknown is not terminated ----------------------------------------------------------------


async def _unknown_waits_for_the_grace(app: App, clock: MutableClock, members: Callable[[], list[str]],
                                       lose: Callable[[], None], provider: str) -> None:
    """ANN holds a grant, DAN is a standing member; both were found once, then the provider stops finding them."""
    await grant_each(app, ANN)
    assert members() == [ANN, DAN]
    report = await app.service.sweep(drift=False)  # everyone found and active
    assert report.terminated == [] and report.unconfirmed == [], report.lines()

    lose()
    assert await app.service.identify(ANN) is None and await app.service.identify(DAN) is None
    report = await app.service.sweep(drift=False)
    assert report.terminated == [] and report.revoked == [] and sorted(report.unconfirmed) == [ANN, DAN]
    assert members() == [ANN, DAN]
    async with app.store.read() as repo:
        assert (await repo.get_request(1)).state == "active"
    clock.advance(minutes=59)
    report = await app.service.sweep(drift=False)
    assert report.terminated == [] and sorted(report.unconfirmed) == [ANN, DAN], report.lines()
    assert members() == [ANN, DAN]
    assert await _events(app, "user.terminated") == [] and await _events(app, "grant.revoked") == []
    assert await _events(app, "membership.removed") == []

    clock.advance(minutes=2)  # 61 minutes after the first sweep that did not find them
    report = await app.service.sweep(drift=False)
    assert sorted(report.terminated) == [ANN, DAN] and report.revoked == ["REQ-1"], report.lines()
    assert report.removed == [f"{DAN} from {provider}/{_group(app)}"]
    assert members() == []
    (revoked,) = await _events(app, "grant.revoked")
    assert revoked["request_id"] == "REQ-1" and revoked["data"]["reason"] == "terminated"
    (removed,) = await _events(app, "membership.removed")
    assert (removed["data"]["provider"], removed["data"]["group"], removed["data"]["user"],
            removed["data"]["reason"]) == (provider, _group(app), DAN, "terminated")
    terminated = await _events(app, "user.terminated")
    assert sorted(e["data"]["user"] for e in terminated) == [ANN, DAN]
    assert {e["data"]["found"] for e in terminated} == {False}
    async with app.store.read() as repo:
        assert (await repo.get_request(1)).state == "revoked"

    clock.advance(minutes=5)
    report = await app.service.sweep(drift=False)
    assert report.terminated == [] and len(await _events(app, "user.terminated")) == 2
    assert (await app.store.verify_audit()).ok


def _group(app: App) -> str:
    (profile,) = app.deps.policy.profiles
    return profile.group


async def test_unknown_is_not_terminated_through_graph(database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    for email in (ANN, DAN):
        graph.add_user(email, department="Engineering", manager=PAT)
    graph.add_member(group, DAN)  # standing: added outside the bot

    def lose() -> None:  # no user answers to their login any more, and none has their mail
        for email in (ANN, DAN):
            graph.users[graph.user_id(email)]["mail"] = None  # type: ignore[index]
            graph.fail_path(f"/users/{email}", status=404)

    clock = MutableClock(datetime.now(UTC))
    async with build_app(_graph_app(database_url, tmp_path, graph, group), as_of=clock) as app:
        await _unknown_waits_for_the_grace(app, clock, lambda: graph.member_emails(group), lose, "entra")


async def test_unknown_is_not_terminated_through_okta(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        for email in (PAT, SAM, SASHA):
            okta.add_user(email, department="Engineering")
        for email in (ANN, DAN):
            okta.add_user(email, department="Engineering", manager=PAT)
        okta.add_member(group, DAN)

        def lose() -> None:  # no user with that login, and none with that email
            for email in (ANN, DAN):
                with okta.lock:
                    okta.users[okta.user_id(email)]["profile"]["email"] = ""  # type: ignore[index]
                okta.fail_path(f"/users/{email}", status=404)

        clock = MutableClock(datetime.now(UTC))
        async with build_app(_okta_settings(database_url, tmp_path, okta, group), as_of=clock) as app:
            await _unknown_waits_for_the_grace(app, clock, lambda: _okta_logins(okta, group), lose, "okta")


# ----- drift through the provider ---------------------------------------------------------------


async def _drift_removed(app: App, members: Callable[[], list[str]], deletes: Callable[[], int],
                         provider: str, group: str) -> None:
    """BOB was added to the group at the provider, outside the bot."""
    report = await app.service.sweep()
    assert len(report.drift) == 1, report.lines()
    (detected,) = await _events(app, "drift.detected")
    assert detected["data"]["user"] == BOB and detected["data"]["id"] == "D-1"
    listing = await _say(app, SAM, "drift")
    assert listing.ok and "D-1" in listing.text and BOB in listing.text, listing.text

    reply = await _say(app, SAM, "drift remove D-1 because no approval on record")
    assert reply.ok and "resolved" in reply.text, reply.text
    assert members() == [] and deletes() == 1
    (removed,) = await _events(app, "membership.removed")
    assert (removed["data"]["provider"], removed["data"]["group"], removed["data"]["user"],
            removed["data"]["reason"]) == (provider, group, BOB, "drift")
    (resolved,) = await _events(app, "drift.resolved")
    assert resolved["data"]["id"] == "D-1" and resolved["data"]["resolution"] == "removed"
    assert resolved["data"]["by"] == SAM
    assert (await _say(app, SAM, "drift remove D-1 because again")).rule == "resolved"

    report = await app.service.sweep()
    assert report.drift == [] and deletes() == 1
    assert len(await _events(app, "membership.removed")) == 1 and len(await _events(app, "drift.detected")) == 1
    assert (await _say(app, SAM, "drift")).text == "No open drift findings."
    assert (await app.store.verify_audit()).ok


async def test_drift_removed_from_chat_through_graph(database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    graph.add_user(BOB, department="Engineering", manager=PAT)
    async with build_app(_graph_app(database_url, tmp_path, graph, group)) as app:
        graph.add_member(group, BOB)  # outside the bot
        uid = graph.user_id(BOB)
        await _drift_removed(app, lambda: graph.member_emails(group),
                             lambda: len(graph.received("DELETE", f"/groups/{group}/members/{uid}/")),
                             "entra", group)


async def test_drift_removed_from_chat_through_okta(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        for email in (PAT, SAM, SASHA):
            okta.add_user(email, department="Engineering")
        uid = okta.add_user(BOB, department="Engineering", manager=PAT)
        async with build_app(_okta_settings(database_url, tmp_path, okta, group)) as app:
            okta.add_member(group, BOB)
            await _drift_removed(app, lambda: okta.member_emails(group),
                                 lambda: len(okta.received("DELETE", f"/groups/{group}/users/{uid}")), "okta", group)


async def test_drift_accepted_through_the_exception_chain_through_graph(database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    graph.add_user(BOB, department="Engineering", manager=PAT)
    async with build_app(_graph_app(database_url, tmp_path, graph, group)) as app:
        graph.add_member(group, BOB)  # outside the bot
        assert len((await app.service.sweep()).drift) == 1
        (detected,) = await _events(app, "drift.detected")
        assert detected["data"]["id"] == "D-1"

        reply = await _say(app, SAM, "drift accept D-1 for 7d because CHG-7 standing access for the migration")
        assert reply.ok and "REQ-1" in reply.text, reply.text
        (submitted,) = await _events(app, "request.submitted")
        assert submitted["data"]["kind"] == "exception" and submitted["data"]["drift_id"] == "D-1"
        async with app.store.read() as repo:
            record = await repo.get_request(1)
        assert (record.requester, record.profile, record.kind) == (BOB, "tools", "exception")
        assert not (await _say(app, SAM, "approve REQ-1")).ok  # the filer is not an approver of their own
        assert (await _say(app, SASHA, "approve REQ-1")).ok
        assert await _events(app, "drift.resolved") == []
        approved = await _say(app, PAT, "approve REQ-1")
        assert approved.ok, approved.text

        (resolved,) = await _events(app, "drift.resolved")
        assert {k: resolved["data"].get(k) for k in ("id", "provider", "group", "user", "resolution", "request_id")} \
            == {"id": "D-1", "provider": "entra", "group": group, "user": BOB, "resolution": "exception",
                "request_id": "REQ-1"}
        (provisioned,) = await _events(app, "grant.provisioned")
        assert provisioned["request_id"] == "REQ-1"
        async with app.store.read() as repo:
            assert (await repo.get_request(1)).state == "active"
        assert graph.member_emails(group) == [BOB]  # still a member, once, now backed by the grant
        assert await _events(app, "membership.removed") == []

        report = await app.service.sweep()
        assert report.drift == [] and len(await _events(app, "drift.detected")) == 1
        assert graph.member_emails(group) == [BOB]
        assert (await _say(app, SAM, "drift")).text == "No open drift findings."
        assert (await app.store.verify_audit()).ok


# ----- a new process for every sweep, as `accessbot sweep --as-of` runs ---------------------------


async def _fresh_processes_remove_once(settings: Settings, members: Callable[[], list[str]],
                                       lose: Callable[[], None]) -> None:
    """DAN, a standing member, is found once and then not found by address; each sweep is a new process,
    so the provider client has never looked DAN up: the removal must still reach the group."""
    clock = MutableClock(datetime.now(UTC))
    async with build_app(settings, as_of=clock) as app:
        await app.service.sweep(drift=False)
    assert members() == [DAN]
    lose()
    for minutes in (0, 61):
        clock.advance(minutes=minutes)
        async with build_app(settings, as_of=clock) as app:
            await app.service.sweep(drift=False)
    assert members() == [], "recorded as removed, but still in the group"
    clock.advance(minutes=5)
    async with build_app(settings, as_of=clock) as app:
        await app.service.sweep(drift=False)
        (removed,) = await _events(app, "membership.removed")
        assert (removed["data"]["user"], removed["data"]["reason"]) == (DAN, "terminated")
        assert (await app.store.verify_audit()).ok


async def test_a_new_process_removes_a_member_not_found_by_address_through_graph(
        database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    graph.add_user(DAN, department="Engineering", manager=PAT)
    graph.add_member(group, DAN)

    def lose() -> None:
        graph.users[graph.user_id(DAN)]["mail"] = None  # type: ignore[index]
        graph.fail_path(f"/users/{DAN}", status=404)

    settings = _graph_app(database_url, tmp_path, graph, group)
    await _fresh_processes_remove_once(settings, lambda: graph.member_emails(group), lose)


async def test_a_new_process_removes_a_member_not_found_by_address_through_okta(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        for email in (PAT, SAM, SASHA):
            okta.add_user(email, department="Engineering")
        okta.add_user(DAN, department="Engineering", manager=PAT)
        okta.add_member(group, DAN)

        def lose() -> None:
            with okta.lock:
                okta.users[okta.user_id(DAN)]["profile"]["email"] = ""  # type: ignore[index]
            okta.fail_path(f"/users/{DAN}", status=404)

        settings = _okta_settings(database_url, tmp_path, okta, group)
        await _fresh_processes_remove_once(settings, lambda: _okta_logins(okta, group), lose)
