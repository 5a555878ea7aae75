"""Entra groups named by display name are resolved to object ids once, when the policy loads, and
kept (issue 9, item 4).

Anyone in an Entra tenant can create a group with any display name. A second ``sg-ops`` made
after the policy loaded changes nothing: adds, removes and member lists go to the object id
resolved and stored at the first load, across restarts. A name that is ambiguous or unknown at
the first load refuses the start, naming the profile and the group. ``member_of`` names at the
identity source are resolved the same way, so a look-alike group proves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.tls import make_tls
from tests.support import EXAMPLES, cli

ANN, BOB, MAL, PAT = "ann@example.com", "bob@example.com", "mal@example.com", "pat.lead@example.com"
HEAD = """\
version: "groups-1"
approver_groups:
  security: [sam.sec@example.com]
security_team: security
profiles:
"""
OPS = """\
  - id: {id}
    title: Operations console
    owner: pat.lead@example.com
    provider: entra
    group: {group}
    duration: {{default: 1h, max: 8h}}
    approval: [owner]
    auto_approve:
      - {{department: Engineering, max_duration: 8h}}
"""
GUARDED = """\
  - id: guarded
    title: Needs on-call
    owner: pat.lead@example.com
    provider: entra
    group: {group}
    eligible:
      - member_of: oncall
    duration: {{default: 1h, max: 8h}}
    approval: [owner]
"""


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    with GraphStandIn(tls) as server:
        server.ca_file = tls.ca_file  # type: ignore[attr-defined]
        yield server


def settings(db: str, tmp_path: Path, graph: GraphStandIn, policy: str, identity: str = "directory") -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(HEAD + policy)
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"), identity=identity,
                    entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                    entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)


def env(graph: GraphStandIn) -> dict[str, str]:
    return {"ACCESSBOT_IDENTITY": "directory", "ACCESSBOT_ENTRA_TENANT_ID": graph.tenant,
            "ACCESSBOT_ENTRA_CLIENT_ID": graph.client_id, "ACCESSBOT_ENTRA_CLIENT_SECRET": graph.client_secret,
            "ACCESSBOT_GRAPH_URL": graph.graph_url, "ACCESSBOT_AUTHORITY_URL": graph.url,
            "SSL_CERT_FILE": graph.ca_file, "REQUESTS_CA_BUNDLE": graph.ca_file}  # type: ignore[attr-defined]


def seed_people(graph: GraphStandIn) -> None:
    graph.add_user(PAT, department="Engineering")
    for email in (ANN, BOB, MAL, "alice@example.com"):
        graph.add_user(email, department="Engineering", manager=PAT)


async def say(app, email: str, text: str):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


async def test_a_name_made_ambiguous_after_the_first_load_changes_nothing(sqlite_url, tmp_path, graph):
    seed_people(graph)
    real = graph.add_group("sg-ops")
    config = settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-ops"))
    async with build_app(config) as app:
        copy = graph.add_group("sg-ops")  # any user of the tenant can do this
        r = await say(app, "alice@example.com", "request ops for 2h")
        assert r.ok and r.request.state == "active", r.text
        assert graph.member_emails(real) == ["alice@example.com"] and graph.member_emails(copy) == []
        assert (await say(app, "alice@example.com", "release REQ-1")).ok
        assert graph.member_emails(real) == []
        resolved = [e.as_dict() async for e in app.store.audit_events() if e.type == "group.resolved"]
        assert [e["data"] for e in resolved] == [{"provider": "entra", "group": "sg-ops", "id": real}]
    async with build_app(config) as app:  # a restart uses the stored id: no name look-up at all
        before = len(graph.received("GET", "/v1.0/groups"))
        r = await say(app, "alice@example.com", "request ops for 2h")
        assert r.ok and r.request.state == "active", r.text
        assert graph.member_emails(real) == ["alice@example.com"]
        report = await app.service.sweep()
        assert not [f for f in report.failed if "drift" in f], report.failed  # the member list is read by id
        assert not [r for r in graph.received("GET", "/v1.0/groups")[before:] if "$filter" in r.query]


async def test_an_ambiguous_name_at_the_first_load_refuses_to_start(sqlite_url, tmp_path, graph):
    seed_people(graph)
    graph.add_group("sg-ops")
    graph.add_group("sg-ops")
    config = settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-ops"))
    with pytest.raises(SystemExit) as stop:
        async with build_app(config):
            pass
    message = str(stop.value)
    assert "profile ops" in message and "'sg-ops'" in message and "2 entra groups" in message, message
    out = cli("sweep", "--database-url", sqlite_url, "--policy", config.policy, "--directory", config.directory,
              env=env(graph))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "profile ops" in out.stderr and "sg-ops" in out.stderr and "object id" in out.stderr


async def test_an_unknown_name_or_id_refuses_to_start(sqlite_url, tmp_path, graph):
    seed_people(graph)
    config = settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-typo")
                      + OPS.format(id="ops-by-id", group="0b7e1c9a-1111-4222-8333-944455556666"))
    with pytest.raises(SystemExit) as stop:
        async with build_app(config):
            pass
    message = str(stop.value)
    assert "profile ops: no entra group is named 'sg-typo'" in message, message
    assert "profile ops-by-id: no entra group is named '0b7e1c9a-1111-4222-8333-944455556666'" in message


async def test_one_group_spelled_two_ways_refuses_to_start(sqlite_url, tmp_path, graph):
    seed_people(graph)
    gid = graph.add_group("sg-ops")
    config = settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-ops")
                      + OPS.format(id="ops-again", group=gid))
    with pytest.raises(SystemExit) as stop:
        async with build_app(config):
            pass
    message = str(stop.value)
    assert "ops" in message and "ops-again" in message and gid in message and "same way" in message, message


async def test_member_of_by_name_means_the_group_resolved_at_load(sqlite_url, tmp_path, graph):
    seed_people(graph)
    oncall = graph.add_group("oncall")
    graph.add_member(oncall, ANN)
    target = graph.add_group("sg-guarded")
    config = settings(sqlite_url, tmp_path, graph, GUARDED.format(group=target), identity="entra")
    async with build_app(config) as app:
        fake = graph.add_group("oncall")  # Mal makes her own "oncall" and joins it
        graph.add_member(fake, MAL)
        r = await say(app, MAL, "request guarded for 1h")
        assert not r.ok and r.rule == "eligible: no rule matched", r.text
        r = await say(app, ANN, "request guarded for 1h")
        assert r.ok and r.request.state == "pending", r.text


async def test_a_look_alike_makes_nobody_eligible_in_profiles_or_the_request_form(sqlite_url, tmp_path, graph):
    """The profile list of ``profiles`` and of the chat request forms judges ``member_of`` as a request does: by the
    id resolved at the load (Graph lists a person's groups with their display names, which anyone can copy)."""
    seed_people(graph)
    oncall = graph.add_group("oncall")
    graph.add_member(oncall, ANN)
    target, ops = graph.add_group("sg-guarded"), graph.add_group("sg-ops")
    config = settings(sqlite_url, tmp_path, graph, GUARDED.format(group=target) + OPS.format(id="ops", group=ops),
                      identity="entra")
    async with build_app(config) as app:
        fake = graph.add_group("oncall")  # Mal makes her own "oncall" and joins it
        graph.add_member(fake, MAL)
        for email, eligible in ((ANN, True), (MAL, False)):
            listed = await say(app, email, "profiles")
            assert {v.id: v.eligible for v in listed.profiles} == {"guarded": eligible, "ops": True}, listed.text
            person = await app.service.identify(email)
            form = (await app.service.handle_text(person, "request", forms=True)).form
            assert form is not None and {v.id: v.eligible for v in form.profiles} == {"guarded": eligible,
                                                                                       "ops": True}, email


async def test_overlaps_are_found_by_resolved_id(sqlite_url, tmp_path, graph):
    """A profile granting the oncall group by its id feeds a rule that names it by display name."""
    seed_people(graph)
    oncall = graph.add_group("oncall")
    target = graph.add_group("sg-guarded")
    config = settings(sqlite_url, tmp_path, graph, GUARDED.format(group=target)
                      + OPS.format(id="oncall-self", group=oncall), identity="entra")
    async with build_app(config) as app:
        warnings = [str(w) for w in app.state["policy_warnings"]]
        assert len(warnings) == 1 and "profiles[0].eligible[0].member_of" in warnings[0], warnings
        assert "oncall-self" in warnings[0] and "line 12" in warnings[0]
        # and the grant of oncall-self does not make Bob eligible for guarded
        r = await say(app, BOB, "request oncall-self for 2h")
        assert r.ok and r.request.state == "active", r.text
        r = await say(app, BOB, "request guarded for 1h")
        assert not r.ok and r.rule == "eligible: no rule matched", r.text


async def test_a_policy_that_respells_a_group_under_open_grants_is_told(sqlite_url, tmp_path, graph):
    from handlers.group_resolution import resolve_groups

    seed_people(graph)
    gid = graph.add_group("sg-ops")
    async with build_app(settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group="sg-ops"))) as app:
        assert (await say(app, "alice@example.com", "request ops for 2h")).ok
    async with build_app(settings(sqlite_url, tmp_path, graph, OPS.format(id="ops", group=gid))) as app:
        stale = (await resolve_groups(app.deps, persist=False)).stale
        assert len(stale) == 1 and "'sg-ops'" in stale[0] and gid in stale[0], stale
