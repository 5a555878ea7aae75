"""A policy rule naming a directory extension the tenant does not know (misspelt, another tenant's app id, deleted
since) must not break every lookup.

Graph refuses a whole user ``$select`` (400 ``Request_BadRequest``, "Could not find a property named
'extension_…' on type 'Microsoft.DirectoryServices.User'.") when one name in it is not registered. Such an
extension is left out and the lookup asked again; the provider remembers it for a while (until a policy is put in
force, or ten minutes); a rule on it is answered "could not check", naming it and why, and recorded as the refusal
it is. Other rules and other people are judged as before; a 400 about anything else is an error as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import App, build_app
from bot.settings import Settings
from handlers.ports import ProviderError
from handlers.sweeps import sweep
from tests.standins.graph import GraphStandIn
from tests.support import entra_settings, graph_over_tls, put_in_force

PAT, ANN, BOB = "pat.lead@example.com", "ann@example.com", "bob@example.com"
KNOWN = "extension_0a1b2c3d4e5f60718293a4b5c6d7e8f9_clearance"
UNKNOWN = "extension_0123456789abcdef0123456789abcdef_costCentre"  # registered by no app of this tenant


def _policy(tools: str, vault: str, vault_rule: str, version: str = "ext-1") -> str:
    def profile(pid: str, group: str, eligible: str) -> list[str]:
        return [f"  - id: {pid}", f"    title: {pid.title()}", "    owner: pat.lead@example.com",
                "    provider: entra", f"    group: {group}", "    eligible:", f"      - {eligible}",
                "    duration: {default: 1h, max: 8h}", "    approval: [owner]",
                "    auto_approve:", "      - {department: Engineering, max_duration: 8h}"]
    return "\n".join([f'version: "{version}"', "approver_groups:", "  security: [sam.sec@example.com]",
                      "security_team: security", "profiles:",
                      *profile("tools", tools, f"{{department: Engineering, {KNOWN}: top}}"),
                      *profile("vault", vault, vault_rule), ""])


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    with graph_over_tls(tmp_path, monkeypatch, KNOWN) as server:
        yield server


def _settings(db: str, tmp_path: Path, graph: GraphStandIn, policy: str) -> Settings:
    return entra_settings(db, tmp_path, graph, policy)


def _people(graph: GraphStandIn) -> None:
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT, properties={KNOWN: "top"})
    graph.add_user(BOB, department="Engineering", manager=PAT, properties={KNOWN: "top"})


async def _ask(app: App, email: str, text: str):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


async def _refusals(app: App) -> list[tuple[str | None, dict]]:
    return [(e.profile, dict(e.data)) async for e in app.store.audit_events() if e.type == "request.refused"]



def _selects(graph: GraphStandIn, email: str) -> list[str]:
    return [r.query.get("$select", "") for r in graph.received("GET", f"/v1.0/users/{email}")]


async def test_a_rule_on_an_extension_graph_does_not_know_is_could_not_check_and_the_rest_is_judged(
        database_url, tmp_path, graph):
    tools, vault = graph.add_group("sg-tools"), graph.add_group("sg-vault")
    _people(graph)
    policy = _policy(tools, vault, f"{{{UNKNOWN}: CC-1}}")
    async with build_app(_settings(database_url, tmp_path, graph, policy)) as app:
        granted = await _ask(app, ANN, "request tools for 1h because deploy")
        assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
        assert graph.member_emails(tools) == [ANN]

        refused = await _ask(app, BOB, "request vault for 1h because audit")
        rule = f"could not check: eligible: {UNKNOWN}=CC-1"
        assert not refused.ok and refused.rule == rule, refused.text
        assert f"Graph does not know the directory extension `{UNKNOWN}`" in refused.text, refused.text
        assert "Request_BadRequest" in refused.text and "Could not find a property named" in refused.text
        assert graph.member_emails(vault) == []
        assert await _refusals(app) == [("vault", {"rule": rule, "attributes": [UNKNOWN]})]

        # Graph was asked for the unknown extension once in this process (the first lookup); every later one left
        # it out, and asked for the known one
        asked = [r.query.get("$select", "") for r in graph.received("GET", "/v1.0/users")
                 if "$select" in r.query and "/manager" not in r.path and "MemberOf" not in r.path]
        assert sum(UNKNOWN in s for s in asked) == 1 and UNKNOWN in asked[0], asked
        assert all(KNOWN in s for s in asked) and _selects(graph, BOB), asked

        profiles = await _ask(app, ANN, "profiles")
        assert "could not check" in profiles.text and UNKNOWN in profiles.text, profiles.text

        # the movers sweep judges Ann's tools grant as before: kept, nobody unchecked
        report = await sweep(app.deps)
        assert report.revoked == [] and report.unchecked == [], (report.revoked, report.unchecked)
        assert graph.member_emails(tools) == [ANN]


async def test_an_extension_deleted_under_a_grant_keeps_it_unchecked_until_registered_and_reloaded(
        database_url, tmp_path, graph):
    """Drift and movers look people up as requests do: an extension deleted at the tenant makes its rule
    "could not check" for the movers sweep (nothing revoked, the holder listed), the other profile's holder is judged
    as before; once registered again and a policy put in force, Graph is asked for it again."""
    tools, vault = graph.add_group("sg-tools"), graph.add_group("sg-vault")
    graph.register_extension(UNKNOWN)
    _people(graph)
    graph.add_user("cat@example.com", department="Engineering", manager=PAT, properties={UNKNOWN: "CC-1"})
    policy = _policy(tools, vault, f"{{{UNKNOWN}: CC-1}}")
    config = _settings(database_url, tmp_path, graph, policy)
    async with build_app(config) as app:
        held = await _ask(app, "cat@example.com", "request vault for 8h because audit")
        assert held.ok and held.request is not None and held.request.state == "active", held.text
        kept = await _ask(app, ANN, "request tools for 8h because deploy")
        assert kept.ok and kept.request is not None and kept.request.state == "active", kept.text
        graph.update_user("cat@example.com", **{UNKNOWN: "CC-2"})  # moved: the rule no longer admits her
        graph.update_user(ANN, department="Sales")  # a mover of the profile whose rule Graph can answer

        graph.delete_extension(UNKNOWN)  # the app that registered it deleted it
        report = await sweep(app.deps)
        assert report.revoked == [kept.request.id], report.revoked
        assert graph.member_emails(vault) == ["cat@example.com"]  # never judged by a value Graph cannot give
        unchecked = [line for line in report.unchecked if line.startswith("cat@example.com")]
        assert len(unchecked) == 1 and f"Graph does not know the directory extension `{UNKNOWN}`" in unchecked[0]

        graph.register_extension(UNKNOWN)
        await put_in_force(app, config.policy, _policy(tools, vault, f"{{{UNKNOWN}: CC-1}}", version="ext-2"))
        report = await sweep(app.deps)
        assert report.revoked == [held.request.id] and report.unchecked == [], (report.revoked, report.unchecked)
        assert graph.member_emails(vault) == []


async def test_a_400_not_about_the_extension_stays_an_error(sqlite_url, tmp_path, graph):
    tools, vault = graph.add_group("sg-tools"), graph.add_group("sg-vault")
    _people(graph)
    config = _settings(sqlite_url, tmp_path, graph, _policy(tools, vault, f"{{{UNKNOWN}: CC-1}}"))
    async with build_app(config) as app:
        # the start's lookups were told already; as a policy is put in force (and its lookup of the security team
        # done), Graph is to be asked for the extension again
        app.deps.provider("entra").want_attributes([UNKNOWN])  # type: ignore[attr-defined]
        graph.fail_next(1, status=400)  # a 400 that says nothing of a property
        with pytest.raises(ProviderError) as failed:
            await app.deps.person(ANN)
        assert failed.value.status == 400 and "Stand-in fault 400" in str(failed.value)
        assert len(_selects(graph, ANN)) == 1  # not asked again without the extension, nor remembered:

        person = await app.deps.person(ANN)  # the next lookup asks for it, and is told
        assert person is not None and UNKNOWN not in (person.carried or ()) and UNKNOWN in person.unsupplied
        assert [UNKNOWN in s for s in _selects(graph, ANN)] == [True, True, False]

        graph.drop_property("employeeType")  # a property the bot selects for itself: Graph's refusal is an error
        graph.delete_user(BOB)
        graph.add_user(BOB, department="Engineering", manager=PAT)
        with pytest.raises(ProviderError) as failed:
            await app.deps.person(BOB)
        assert failed.value.status == 400 and "'employeeType'" in str(failed.value)
        assert len(_selects(graph, BOB)) == 1


async def test_a_400_naming_no_property_asked_for_leaves_out_every_extension_only_if_that_is_answered(
        sqlite_url, tmp_path, graph):
    """Graph's OData parser may refuse the whole term ("Parsing OData Select and Expand failed: Term '…' is not
    valid in a $select or $expand expression."): every extension of the select is left out, and only when the
    lookup without them is answered are they taken as the cause."""
    tools, vault = graph.add_group("sg-tools"), graph.add_group("sg-vault")
    _people(graph)
    graph.odata_select_errors = True
    config = _settings(sqlite_url, tmp_path, graph, _policy(tools, vault, f"{{{UNKNOWN}: CC-1}}"))
    async with build_app(config) as app:
        person = await app.deps.person(ANN)
        assert person is not None and person.department == "Engineering"
        assert {KNOWN, UNKNOWN} <= set(person.unsupplied) and not {KNOWN, UNKNOWN} & set(person.carried or ())
        refused = await _ask(app, ANN, "request tools for 1h because deploy")
        assert not refused.ok and refused.rule.startswith("could not check: eligible:"), refused.text
        assert f"`{KNOWN}`" in refused.text and "Parsing OData Select" in refused.text, refused.text

        entra = app.deps.provider("entra")
        entra.want_attributes([UNKNOWN])  # type: ignore[attr-defined]  # as a policy put in force does
        graph.drop_property("employeeType")  # the select fails without the extensions too: they are not the cause
        with pytest.raises(ProviderError) as failed:
            await app.deps.person(BOB)
        assert failed.value.status == 400 and "Parsing OData Select" in str(failed.value)
        assert [UNKNOWN in s for s in _selects(graph, BOB)] == [True, False]
        graph.dropped.clear()
        person = await app.deps.person(BOB)  # not remembered: asked for again, and left out once answered
        assert person is not None and UNKNOWN in person.unsupplied
        assert [UNKNOWN in s for s in _selects(graph, BOB)] == [True, False, True, False]


async def test_an_exception_is_asked_for_when_a_rule_of_the_profile_cannot_be_checked(database_url, tmp_path, graph):
    """An exception is for access outside eligibility: one asked for a profile whose rule cannot be checked (an
    extension Graph does not know) goes to the exception chain. Whether it was needed was judged by that rule and
    answered "could not check" (not recorded), so nobody could ask for access the standard path cannot decide."""
    tools, vault = graph.add_group("sg-tools"), graph.add_group("sg-vault")
    _people(graph)
    policy = _policy(tools, vault, f"{{{UNKNOWN}: CC-1}}").replace(
        f"    group: {vault}\n",
        f"    group: {vault}\n    exception:\n      approval: [owner]\n      max_duration: 8h\n")
    assert "max_duration: 8h\n    eligible" in policy
    async with build_app(_settings(database_url, tmp_path, graph, policy)) as app:
        asked = await _ask(app, BOB, "exception vault for 1h because audit")
        assert asked.ok and asked.request is not None and asked.request.state == "pending", asked.text
        assert asked.request.kind == "exception"
        assert graph.member_emails(vault) == []


async def test_a_rule_on_a_user_property_this_graph_lacks_is_could_not_check_and_the_rest_is_judged(
        database_url, tmp_path, graph):
    """A user property a policy rule names that this tenant's Graph does not have (a national cloud may lack
    ``employeeOrgData``, which holds ``costCenter``) is refused in a ``$select`` as an unknown extension is: it is
    left out and a rule on it is 'could not check', instead of every lookup of everyone failing (nobody could ask
    for anything, whatever rules their profile has). One the bot selects for itself stays an error (above)."""
    tools, vault = graph.add_group("sg-tools"), graph.add_group("sg-vault")
    _people(graph)
    graph.drop_property("employeeOrgData")
    async with build_app(_settings(database_url, tmp_path, graph, _policy(tools, vault, "{costCenter: CC-1}"))) as app:
        granted = await _ask(app, ANN, "request tools for 1h because deploy")
        assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text

        refused = await _ask(app, BOB, "request vault for 1h because audit")
        rule = "could not check: eligible: costCenter=CC-1"
        assert not refused.ok and refused.rule == rule, refused.text
        assert "Graph does not know the user property `employeeOrgData` that holds `costCenter`" in refused.text
        assert graph.member_emails(vault) == []
        assert await _refusals(app) == [("vault", {"rule": rule, "attributes": ["costCenter"]})]
