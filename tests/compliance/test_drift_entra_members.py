"""Drift at Entra (the Graph stand-in) for members that are not people (SPEC §3.6): a service principal, or a
group nested into a managed group, is a member with no grant behind it: reported, and `drift remove` takes it out
at Graph by its object id."""

from __future__ import annotations

from bot.bootstrap import App, build_app
from handlers.ports import Person
from tests.compliance.test_unknown_drift_providers import BOB, PAT, SAM, SASHA, _graph_app
from tests.test_leaver_lookups import graph  # noqa: F401


async def _events(app: App, type_: str) -> list[dict]:
    return [e.as_dict() async for e in app.store.audit_events() if e.type == type_]


async def test_a_service_principal_added_to_a_managed_group_is_drift(database_url, tmp_path, graph):  # noqa: F811
    """An app (service principal) put into the privileged group at Entra, outside the bot, holds that access
    with no grant behind it. SPEC §3.6: a member of a managed group with no active grant, no exception
    and no standing approval from a review is drift (`drift.detected`), told to the security team. A
    review of the same group lists the principal as a member (README: principals included)."""
    group = graph.add_group("sg-tools")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    async with build_app(_graph_app(database_url, tmp_path, graph, group)) as app:
        spid = graph.add_service_principal("deploy-bot", owners=(PAT,))
        graph.add_member(group, spid)
        report = await app.service.sweep()
        assert report.drift == [f"serviceprincipal:{spid} in entra/{group}"], report.lines()
        (found,) = [e["data"] for e in await _events(app, "drift.detected")]
        reply = await app.service.handle_text(await _person(app, SAM), f"drift accept {found['id']} for 7d because "
                                              "the deploy app needs it")
        assert not reply.ok and reply.rule == "not-a-person", reply.text
        reply = await app.service.handle_text(await _person(app, SAM), (f"drift remove {found['id']} because "
                                                                            "no app belongs there"))
        assert reply.ok, reply.text
        await app.service.sweep()
        with graph.lock:
            assert spid not in graph.members[group]


async def test_a_group_nested_into_a_managed_group_is_drift(database_url, tmp_path, graph):  # noqa: F811
    """Someone nests another group into the privileged group at Entra: every member of it now holds the
    access (Graph group membership is transitive, as the policy's member_of is). No grant is behind BOB's
    access: it must be reported as drift, not stay invisible."""
    group = graph.add_group("sg-tools")
    nested = graph.add_group("all-engineers")
    for email in (PAT, SAM, SASHA):
        graph.add_user(email, department="Engineering")
    graph.add_user(BOB, department="Engineering", manager=PAT)
    async with build_app(_graph_app(database_url, tmp_path, graph, group)) as app:
        graph.add_member(nested, BOB)
        graph.add_member(group, nested)
        report = await app.service.sweep()
        assert report.drift == [f"nestedgroup:{nested} in entra/{group}"], report.lines()
        (found,) = [e["data"] for e in await _events(app, "drift.detected")]
        reply = await app.service.handle_text(await _person(app, SAM), (f"drift remove {found['id']} because "
                                                                            "nesting gives everyone the access"))
        assert reply.ok, reply.text
        await app.service.sweep()
        with graph.lock:
            assert nested not in graph.members[group]


async def _person(app: App, email: str) -> Person:
    person = await app.deps.person(email)
    assert person is not None
    return person

