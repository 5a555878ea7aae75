"""A standing member is removed at termination through Entra (Graph) and Okta, on the grants' path."""

from __future__ import annotations

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, provider_policy
from tests.test_leaver_lookups import ANN, BEN, PAT, entra_settings, grant_each, graph  # noqa: F401

DAN = "dan@example.com"


async def _events(app, type_: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


async def test_standing_member_removed_through_graph(database_url, tmp_path, graph):  # noqa: F811
    group = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    for email in (ANN, BEN, DAN):
        graph.add_user(email, department="Engineering", manager=PAT)
    graph.add_member(group, DAN)  # standing: added outside the bot
    async with build_app(entra_settings(database_url, tmp_path, graph, group)) as app:
        await grant_each(app, ANN, BEN)
        assert graph.member_emails(group) == [ANN, BEN, DAN]
        for email in (ANN, DAN):
            graph.users[graph.user_id(email)]["accountEnabled"] = False  # type: ignore[index]
        report = await app.service.sweep()
        assert report.terminated == [ANN, DAN] and report.removed == [f"{DAN} from entra/{group}"]
        assert graph.member_emails(group) == [BEN]
        (removed,) = await _events(app, "membership.removed")
        assert removed["data"] | {"correlation_id": None} == {
            "provider": "entra", "group": group, "user": DAN, "reason": "terminated", "correlation_id": None}
        assert [e["data"]["user"] for e in await _events(app, "user.terminated")] == [ANN, DAN]
        assert [e["data"]["reason"] for e in await _events(app, "grant.revoked")] == ["terminated"]


async def test_standing_member_removed_through_okta(database_url, tmp_path):
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        for email in (ANN, DAN):
            okta.add_user(email, department="Engineering", manager=PAT)
        okta.add_member(group, DAN)
        policy = tmp_path / "policy.yaml"
        policy.write_text(provider_policy("okta", group, version="leavers-1"))
        settings = Settings(database_url=database_url, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                            identity="okta", okta_url=okta.url, okta_token=okta.token)
        async with build_app(settings) as app:
            await grant_each(app, ANN)
            assert okta.member_emails(group) == [ANN, DAN]
            okta.set_status(DAN, "DEPROVISIONED")
            report = await app.service.sweep()
            assert report.terminated == [DAN] and report.revoked == []
            assert okta.member_emails(group) == [ANN]
            (removed,) = await _events(app, "membership.removed")
            assert (removed["data"]["provider"], removed["data"]["user"], removed["data"]["reason"]) == (
                "okta", DAN, "terminated")


