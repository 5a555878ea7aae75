"""The safety brake and movers through Entra (Graph stand-in) and Okta (stand-in), on the grants' path: a
30-person termination wave pauses, resumes and removes exactly those 30 (grants and standing memberships);
an active grant whose holder's attribute changes at the identity provider is revoked at the next sweep."""

from __future__ import annotations

from bot.bootstrap import App, build_app
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, provider_policy
from tests.test_leaver_lookups import ANN, PAT, entra_settings, grant_each, graph  # noqa: F401

SAM = "sam.sec@example.com"
WAVE = [f"leaver{i:02d}@example.com" for i in range(30)]
ELIGIBLE: dict = {"version": "leavers-1", "eligible": "{department: Engineering}"}


async def _events(app: App, type_: str) -> list[dict]:
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


async def _wave(app: App, members, provider: str) -> None:  # type: ignore[no-untyped-def]
    """Members: () -> the group's members now. The wave left at the provider before this is called."""
    report = await app.service.sweep(drift=False)
    assert report.paused == 30 and report.terminated == [] and report.revoked == [], report.lines()
    assert members() == sorted([ANN, *WAVE])  # nobody removed
    (paused,) = await _events(app, "automation.paused")
    assert paused["data"]["count"] == 30 and paused["data"]["reason"] == "terminated"
    assert await _events(app, "user.terminated") == []
    assert (await app.service.sweep(drift=False)).paused == 30 and len(await _events(app, "automation.paused")) == 1

    sam = await app.service.identify(SAM)
    assert sam is not None
    assert (await app.service.handle_text(sam, "resume removals")).ok
    report = await app.service.sweep(drift=False)
    assert report.paused == 0 and sorted(report.terminated) == WAVE, report.lines()
    assert members() == [ANN]
    revoked = await _events(app, "grant.revoked")
    removed = await _events(app, "membership.removed")
    assert {e["data"]["reason"] for e in revoked} == {"terminated"} and len(revoked) == 10
    assert {(e["data"]["provider"], e["data"]["reason"]) for e in removed} == {(provider, "terminated")}
    assert sorted(e["data"]["user"] for e in removed) == WAVE[10:]  # the standing ones, once each
    assert sorted(e["data"]["user"] for e in await _events(app, "user.terminated")) == WAVE
    report = await app.service.sweep(drift=False)
    assert report.paused == 0 and report.terminated == [] and members() == [ANN]
    assert (await app.store.verify_audit()).ok


async def test_a_termination_wave_through_graph(database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    for email in (PAT, SAM):
        graph.add_user(email, department="Engineering")
    for email in (ANN, *WAVE):
        graph.add_user(email, department="Engineering", manager=PAT)
    for email in WAVE[10:]:
        graph.add_member(group, email)  # standing: added outside the bot
    async with build_app(entra_settings(database_url, tmp_path, graph, group)) as app:
        await grant_each(app, ANN, *WAVE[:10])
        for email in WAVE:
            graph.users[graph.user_id(email)]["accountEnabled"] = False  # type: ignore[index]
        await _wave(app, lambda: graph.member_emails(group), "entra")


def _okta_settings(database_url: str, tmp_path, okta: OktaStandIn, policy_text: str) -> Settings:  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    return Settings(database_url=database_url, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


async def test_a_termination_wave_through_okta(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        for email in (PAT, SAM):
            okta.add_user(email, department="Engineering")
        for email in (ANN, *WAVE):
            okta.add_user(email, department="Engineering", manager=PAT)
        for email in WAVE[10:]:
            okta.add_member(group, email)
        async with build_app(_okta_settings(database_url, tmp_path, okta,
                                            provider_policy("okta", group, version="leavers-1"))) as app:
            await grant_each(app, ANN, *WAVE[:10])
            for i, email in enumerate(WAVE):
                okta.set_status(email, "SUSPENDED" if i % 2 else "DEPROVISIONED")
            await _wave(app, lambda: okta.member_emails(group), "okta")


async def _mover(app: App, members, move) -> None:  # type: ignore[no-untyped-def]
    await grant_each(app, ANN)
    assert (await app.service.sweep(drift=False)).revoked == []
    move()  # ann moves to Finance at the identity provider
    report = await app.service.sweep(drift=False)
    assert report.revoked == ["REQ-1"] and report.terminated == [], report.lines()
    (revoked,) = await _events(app, "grant.revoked")
    assert revoked["request_id"] == "REQ-1" and revoked["data"]["reason"] == "ineligible: not eligible"
    assert ANN not in members()
    async with app.store.read() as repo:
        assert (await repo.get_request(1)).state == "revoked"
    assert (await app.service.sweep(drift=False)).revoked == []


async def test_a_mover_through_graph(database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(SAM, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT)
    settings = entra_settings(database_url, tmp_path, graph, group)
    (tmp_path / "policy.yaml").write_text(provider_policy("entra", group, **ELIGIBLE))

    def move() -> None:
        graph.users[graph.user_id(ANN)]["department"] = "Finance"  # type: ignore[index]

    async with build_app(settings) as app:
        await _mover(app, lambda: graph.member_emails(group), move)


async def test_a_mover_through_okta(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(SAM, department="Engineering")
        uid = okta.add_user(ANN, department="Engineering", manager=PAT)

        def move() -> None:
            with okta.lock:
                okta.users[uid]["profile"]["department"] = "Finance"

        async with build_app(_okta_settings(database_url, tmp_path, okta,
                                            provider_policy("okta", group, **ELIGIBLE))) as app:
            await _mover(app, lambda: okta.member_emails(group), move)
