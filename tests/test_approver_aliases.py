"""An approver named in the policy by another of their addresses is still that one person (SPEC §2.1).

At Entra a person is found by ``mail`` or ``userPrincipalName``, and known (as requester, as approver,
as the one who clicks) by their mail. A policy that lists someone by their UPN names the same person:
the requester listed so is still never an approver of their own request (a step left with nobody else
fails closed naming it), one person listed by both addresses counts once, and an approver listed only by
UPN can decide as the person they sign in as.
"""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.support import EXAMPLES
from tests.test_leaver_lookups import graph  # noqa: F401  (fixture: the Graph stand-in)

ANN, SAM, PAT = "ann@example.com", "sam.sec@example.com", "pat.lead@example.com"
ANN_UPN, SAM_UPN = "ann@contoso.onmicrosoft.com", "sam@contoso.onmicrosoft.com"


def settings(db: str, tmp_path: Path, graph: GraphStandIn, ops: str, step: str) -> Settings:  # noqa: F811
    group = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, upn=ANN_UPN, department="Engineering", manager=PAT)
    graph.add_user(SAM, upn=SAM_UPN, department="Security", manager=PAT)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""version: "aliases-1"
approver_groups:
  security: [{SAM}]
  ops: [{ops}]
security_team: security
profiles:
  - id: tools
    title: Tools
    owner: {PAT}
    provider: entra
    group: {group}
    duration: {{default: 1h, max: 8h}}
    approval: [{step}]
""")
    return Settings(database_url=db, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="entra", entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                    entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)


async def test_the_requester_listed_by_upn_is_not_an_approver_of_their_own_request(
        sqlite_url: str, tmp_path: Path, graph: GraphStandIn) -> None:  # noqa: F811
    async with build_app(settings(sqlite_url, tmp_path, graph, ANN_UPN, "{any_of: ops}")) as app:
        ann = await app.service.identify(ANN)
        assert ann is not None
        reply = await app.service.handle_text(ann, "request tools for 1h")
        assert not reply.ok and reply.rule == "step 1: any_of ops", (
            f"ann's own UPN was counted as an approver of her request: {reply.text}")
        events = [e.as_dict() async for e in app.store.audit_events()]
        assert [e["type"] for e in events if e["type"].startswith(("request.", "approval."))] == ["request.refused"]


async def test_one_person_listed_by_mail_and_upn_counts_once(
        sqlite_url: str, tmp_path: Path, graph: GraphStandIn) -> None:  # noqa: F811
    async with build_app(settings(sqlite_url, tmp_path, graph, f"{SAM}, {SAM_UPN}", "{n_of: 2, from: ops}")) as app:
        ann = await app.service.identify(ANN)
        assert ann is not None
        reply = await app.service.handle_text(ann, "request tools for 1h")
        assert not reply.ok and reply.rule == "step 1: 2 of ops", (
            f"sam, listed by mail and by UPN, was counted as two people: {reply.text}")


async def test_an_approver_listed_by_upn_decides_as_the_person_they_are(
        sqlite_url: str, tmp_path: Path, graph: GraphStandIn) -> None:  # noqa: F811
    async with build_app(settings(sqlite_url, tmp_path, graph, SAM_UPN, "{any_of: ops}")) as app:
        ann = await app.service.identify(ANN)
        assert ann is not None
        reply = await app.service.handle_text(ann, "request tools for 1h")
        assert reply.ok, reply.text
        requested = [e.as_dict() async for e in app.store.audit_events() if e.type == "approval.requested"]
        assert requested[0]["data"]["approvers"] == [SAM]
        sam = await app.service.identify(SAM_UPN)  # however sam is looked up, he is sam
        assert sam is not None
        reply = await app.service.handle_text(sam, "approve REQ-1")
        assert reply.ok and reply.request is not None and reply.request.state == "active", reply.text


async def test_a_security_member_listed_by_upn_is_named_at_load(
        sqlite_url: str, tmp_path: Path, graph: GraphStandIn) -> None:  # noqa: F811
    """Who is security is matched by the address the identity source knows them by: a member listed by UPN is
    not security (fails safe), and the load says so with the address to write."""
    s = settings(sqlite_url, tmp_path, graph, SAM, "{any_of: ops}")
    policy = Path(s.policy)
    policy.write_text(policy.read_text().replace(f"security: [{SAM}]", f"security: [{SAM_UPN}]"))  # noqa: ASYNC240
    async with build_app(s) as app:
        warnings = [str(w) for w in app.state["policy_warnings"]]
        assert any(SAM_UPN in w and f"write {SAM}" in w for w in warnings), warnings
        sam = await app.service.identify(SAM)
        assert sam is not None
        reply = await app.service.handle_text(sam, "pending")
        assert not reply.ok and reply.rule == "security-only", reply.text
