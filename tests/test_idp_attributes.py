"""Eligibility rules on identity-provider attributes beyond department, title and employment type.

Okta answers a user with its whole ``profile`` (base attributes such as ``costCenter``, ``employeeNumber``,
``division``, ``organization``, and custom ones): every one is carried, by Okta's own name. Graph answers only
what ``$select`` names: the attributes the policy's rules name are selected (user properties by Graph's name,
``extensionAttribute1`` to ``15`` from ``onPremisesExtensionAttributes``, ``costCenter``/``division`` from
``employeeOrgData``, directory extensions ``extension_<app id>_<name>``). A rule on an attribute the source
cannot supply is never judged by guess: a request an ``ineligible`` rule on it would decide is
answered "could not check" naming the rule, and granted nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import App, build_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, cli, entra_settings, graph_over_tls

PAT, ANN, BOB = "pat.lead@example.com", "ann@example.com", "bob@example.com"
EXT = "extension_0a1b2c3d4e5f60718293a4b5c6d7e8f9_clearance"


def _policy(provider: str, group: str, rules: str) -> str:
    return "\n".join([
        'version: "attrs-1"', "approver_groups:", "  security: [sam.sec@example.com]", "security_team: security",
        "profiles:", "  - id: tools", "    title: Tools", "    owner: pat.lead@example.com",
        f"    provider: {provider}", f"    group: {group}", rules,
        "    duration: {default: 1h, max: 8h}", "    approval: [owner]",
        "    auto_approve:", "      - {department: Engineering, max_duration: 8h}", ""])


async def _ask(app: App, email: str, text: str = "request tools for 1h because deploy"):  # type: ignore[no-untyped-def]
    person = await app.service.identify(email)
    assert person is not None, email
    return await app.service.handle_text(person, text)


async def _refusals(app: App) -> list[str]:
    return [e.data["rule"] async for e in app.store.audit_events() if e.type == "request.refused"]


# ----- Okta ---------------------------------------------------------------------------------------------------

def _okta_settings(db: str, tmp_path: Path, okta: OktaStandIn, policy: str) -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    return Settings(database_url=db, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                    identity="okta", okta_url=okta.url, okta_token=okta.token)


async def test_okta_an_ineligible_rule_on_a_custom_attribute_refuses_naming_it(sqlite_url, tmp_path):
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT, attributes={"costCenter": "CC-900"})
        okta.add_user(BOB, department="Engineering", manager=PAT, attributes={"costCenter": "CC-100"})
        rules = "    ineligible:\n      - {costCenter: CC-900}"
        async with build_app(_okta_settings(sqlite_url, tmp_path, okta, _policy("okta", tools, rules))) as app:
            refused = await _ask(app, ANN)
            assert not refused.ok and refused.rule == "ineligible: costCenter=CC-900", refused.text
            assert await _refusals(app) == ["ineligible: costCenter=CC-900"]
            granted = await _ask(app, BOB)
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            assert okta.member_emails(tools) == [BOB]


async def test_okta_an_eligible_rule_on_a_profile_attribute_admits(sqlite_url, tmp_path):
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT,
                      attributes={"employeeNumber": "E-42", "division": "Payments", "clearance": ["secret", "ts"]})
        okta.add_user(BOB, department="Engineering", manager=PAT, attributes={"division": "Retail"})
        rules = "    eligible:\n      - {division: Payments, clearance: ts}"
        async with build_app(_okta_settings(sqlite_url, tmp_path, okta, _policy("okta", tools, rules))) as app:
            granted = await _ask(app, ANN)
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            refused = await _ask(app, BOB)
            assert not refused.ok and refused.rule == "eligible: no rule matched", refused.text
            person = await app.deps.person(ANN)
            assert person is not None and person.attribute("employeeNumber") == "E-42"
            assert person.employment_type is None and person.attribute("login") == ANN  # old names still work



async def test_okta_a_rule_on_a_key_the_profile_schema_lacks_is_never_judged_by_guess(sqlite_url, tmp_path):
    """``clearence`` is no property of the Okta user profile (``clearance`` is): read as "no value", the
    ``ineligible`` rule would refuse nobody. The schema says Okta cannot supply it, so the request it would decide
    is "could not check", naming the rule, and nothing is granted."""
    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT, attributes={"clearance": "secret"})
        rules = "    ineligible:\n      - {clearence: secret}"
        async with build_app(_okta_settings(sqlite_url, tmp_path, okta, _policy("okta", tools, rules))) as app:
            refused = await _ask(app, ANN)
            assert not refused.ok and refused.rule == "could not check: ineligible: clearence=secret", refused.text
            assert "`clearence`" in refused.text, refused.text
            assert await _refusals(app) == ["could not check: ineligible: clearence=secret"]
            assert okta.member_emails(tools) == []


async def test_okta_without_its_profile_schema_a_rule_key_is_read_as_before(sqlite_url, tmp_path):
    """A token that may not read the user profile schema: every key is judged on the profile as Okta answers it
    (one it lacks has no value), and a rule on a property some people have still refuses them."""
    with OktaStandIn() as okta:
        okta.fail_path("/meta/schemas/", status=403)
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(ANN, department="Engineering", manager=PAT, attributes={"clearance": "secret"})
        okta.add_user(BOB, department="Engineering", manager=PAT)
        rules = "    ineligible:\n      - {clearance: secret}\n      - {clearence: secret}"
        async with build_app(_okta_settings(sqlite_url, tmp_path, okta, _policy("okta", tools, rules))) as app:
            refused = await _ask(app, ANN)
            assert not refused.ok and refused.rule == "ineligible: clearance=secret", refused.text
            granted = await _ask(app, BOB)
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            assert okta.received("GET", "/meta/schemas/user/default")



async def test_okta_reads_its_profile_schema_again_when_a_policy_is_put_in_force(database_url, tmp_path):
    """A property added in the Profile Editor after the schema was read is known from the next policy put in force
    (no restart): the rule on it is then judged, a person without a value not matching it."""
    import asyncio

    from bot.policy_watch import PolicyWatch

    with OktaStandIn() as okta:
        tools = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(BOB, department="Engineering", manager=PAT)
        rules = "    ineligible:\n      - {region: EU}"
        settings = _okta_settings(database_url, tmp_path, okta, _policy("okta", tools, rules))
        async with build_app(settings) as app:
            watch = PolicyWatch(app, settings.policy, quiet=True, settle=0.0)
            await watch.check()
            refused = await _ask(app, BOB)
            assert not refused.ok and refused.rule == "could not check: ineligible: region=EU", refused.text
            okta.add_property("region")
            reworded = _policy("okta", tools, rules).replace('"attrs-1"', '"attrs-2"')
            await asyncio.to_thread((tmp_path / "policy.yaml").write_text, reworded)
            change = await watch.check()
            assert change is not None and change.new.version == "attrs-2", app.state.get("policy_rejected")
            granted = await _ask(app, BOB)
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
            assert len(okta.received("GET", "/meta/schemas/user/default")) == 2


# ----- Entra --------------------------------------------------------------------------------------------------

@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    with graph_over_tls(tmp_path, monkeypatch, EXT) as server:
        yield server


def _entra_settings(db: str, tmp_path: Path, graph: GraphStandIn, policy: str) -> Settings:
    return entra_settings(db, tmp_path, graph, policy)


def _extension_attributes(**values: str) -> dict[str, str | None]:
    return {f"extensionAttribute{n}": values.get(f"extensionAttribute{n}") for n in range(1, 16)}


async def test_entra_an_ineligible_rule_on_an_extension_attribute_refuses_naming_it(sqlite_url, tmp_path, graph):
    tools = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT, properties={
        "onPremisesExtensionAttributes": _extension_attributes(extensionAttribute3="Contractor")})
    graph.add_user(BOB, department="Engineering", manager=PAT)
    rules = "    ineligible:\n      - {extensionAttribute3: Contractor}"
    async with build_app(_entra_settings(sqlite_url, tmp_path, graph, _policy("entra", tools, rules))) as app:
        refused = await _ask(app, ANN)
        assert not refused.ok and refused.rule == "ineligible: extensionAttribute3=Contractor", refused.text
        assert await _refusals(app) == ["ineligible: extensionAttribute3=Contractor"]
        granted = await _ask(app, BOB)
        assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
        assert graph.member_emails(tools) == [BOB]
        selects = {r.query.get("$select", "") for r in graph.received("GET", f"/v1.0/users/{ANN}")}
        assert selects and all("onPremisesExtensionAttributes" in s for s in selects), selects


async def test_entra_eligible_rules_on_a_directory_extension_and_a_user_property_admit(sqlite_url, tmp_path, graph):
    tools = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT, properties={EXT: "top"})
    graph.add_user(BOB, department="Engineering", manager=PAT,
                   properties={"companyName": "Contoso", "employeeOrgData": {"costCenter": "CC-7", "division": None}})
    graph.add_user("cat@example.com", department="Engineering", manager=PAT, properties={"companyName": "Fabrikam"})
    rules = f"    eligible:\n      - {{{EXT}: top}}\n      - {{companyName: Contoso, costCenter: CC-7}}"
    async with build_app(_entra_settings(sqlite_url, tmp_path, graph, _policy("entra", tools, rules))) as app:
        for who in (ANN, BOB):
            granted = await _ask(app, who)
            assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
        refused = await _ask(app, "cat@example.com")
        assert not refused.ok and refused.rule == "eligible: no rule matched", refused.text


async def test_entra_a_rule_on_an_attribute_graph_has_not_is_never_judged_by_guess(sqlite_url, tmp_path, graph):
    tools = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT)
    graph.add_user(BOB, department="Sales", manager=PAT)
    # cost_centre is no Graph user property: Graph would refuse to select it, so it is not asked for
    rules = "    ineligible:\n      - {cost_centre: CC-900, department: Engineering}"
    async with build_app(_entra_settings(sqlite_url, tmp_path, graph, _policy("entra", tools, rules))) as app:
        refused = await _ask(app, ANN)
        assert not refused.ok and refused.rule == "could not check: ineligible: cost_centre=CC-900, " \
            "department=Engineering", refused.text
        assert "`cost_centre`" in refused.text and "policy" in refused.text, refused.text
        assert await _refusals(app) == [refused.rule]  # recorded with its rule, as every refusal of a request is
        assert graph.member_emails(tools) == []
        # decided without it: Bob is not in Engineering, so the rule does not match him whatever his cost centre
        asked = await _ask(app, BOB)
        assert asked.ok and asked.request is not None and asked.request.state == "pending", asked.text
        profiles = await _ask(app, ANN, "profiles")
        assert "could not check" in profiles.text, profiles.text


async def test_entra_a_rule_that_cannot_be_checked_points_at_the_exception_path(sqlite_url, tmp_path, graph):
    """Nothing is judged by guess, yet the requester is not left at a dead end: where the profile allows exceptions,
    the refusal says how to ask for one, and an exception (which no eligibility rule decides) goes to its chain."""
    tools = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT)
    graph.add_user("sam.sec@example.com", department="Security")
    rules = ("    ineligible:\n      - {cost_centre: CC-900, department: Engineering}\n"
             "    exception:\n      approval: [{any_of: security}, owner]\n      max_duration: 8h")
    async with build_app(_entra_settings(sqlite_url, tmp_path, graph, _policy("entra", tools, rules))) as app:
        refused = await _ask(app, ANN)
        assert not refused.ok and refused.rule.startswith("could not check: ineligible:"), refused.text
        assert "`exception tools for <duration> because <reason>`" in refused.text, refused.text
        asked = await _ask(app, ANN, "exception tools for 1h because INC-7 outage")
        assert asked.ok and asked.request is not None and asked.request.state == "pending", asked.text
        assert graph.member_emails(tools) == []  # pending on the exception chain: nothing granted by guess
        n = asked.request.number
        for approver in ("sam.sec@example.com", PAT):  # its chain decides it, as an exception's chain does
            decided = await _ask(app, approver, f"approve REQ-{n}")
            assert decided.ok, decided.text
        assert graph.member_emails(tools) == [ANN]


def test_policy_check_warns_of_a_rule_on_an_attribute_entra_never_supplies(tmp_path):
    path = tmp_path / "policy.yaml"
    rules = (f"    eligible:\n      - {{{EXT}: top}}\n      - {{companyName: Contoso}}\n"
             "    ineligible:\n      - {cost_centre: CC-900}\n      - {companyname: Fabrikam}")
    path.write_text(_policy("entra", "sg-tools", rules))
    checked = cli("policy", "check", str(path), env={"ACCESSBOT_IDENTITY": "entra"})
    assert checked.returncode == 0, checked.stderr
    warned = [line for line in checked.stderr.splitlines() if "does not supply" in line]
    assert len(warned) == 2, checked.stderr
    assert "cost_centre" in warned[0] and "line 15" in warned[0], warned
    assert "companyname" in warned[1] and "companyName" in warned[1], warned  # the spelling Graph has
    assert "2 warning(s)" in checked.stdout, checked.stdout
    # the embedded directory hands over every key: nothing to say
    checked = cli("policy", "check", str(path), env={"ACCESSBOT_IDENTITY": "directory"})
    assert checked.returncode == 0 and "warning" not in checked.stdout, checked.stderr


def _okta_env(okta: OktaStandIn) -> dict[str, str]:
    return {"ACCESSBOT_IDENTITY": "okta", "ACCESSBOT_OKTA_URL": okta.url, "ACCESSBOT_OKTA_TOKEN": okta.token}


def test_policy_check_with_okta_warns_of_a_rule_key_the_profile_schema_lacks(tmp_path):
    """Okta answers a user with the whole profile, so a key no profile property has (a misspelling) reads "no
    value": an ``ineligible`` rule on it refuses nobody. ``policy check`` reads the user profile schema and names
    each such key with its line, and Okta's spelling when one differs only in case."""
    path = tmp_path / "policy.yaml"
    rules = ("    eligible:\n      - {costCenter: CC-7}\n      - {clearance: ts, status: ACTIVE}\n"
             "    ineligible:\n      - {costcenter: CC-900}\n      - {clearence: secret, okta_id: 00u1}")
    path.write_text(_policy("okta", "tools", rules))
    with OktaStandIn() as okta:
        okta.add_user(ANN, attributes={"clearance": "ts"})  # a custom property of this org's profile
        checked = cli("policy", "check", str(path), env=_okta_env(okta))
        assert okta.received("GET", "/api/v1/meta/schemas/user/default")
    assert checked.returncode == 0, checked.stderr
    warned = [line for line in checked.stderr.splitlines() if "Okta user profile has no" in line]
    assert len(warned) == 2, checked.stderr
    assert "`costcenter`" in warned[0] and "`costCenter`" in warned[0] and "line 15" in warned[0], warned
    assert "`clearence`" in warned[1] and "spells" not in warned[1] and "line 16" in warned[1], warned
    assert "2 warning(s)" in checked.stdout, checked.stdout


def test_policy_check_with_okta_says_when_the_profile_schema_cannot_be_read(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("okta", "tools", "    ineligible:\n      - {clearence: secret}"))
    with OktaStandIn() as okta:
        okta.fail_path("/meta/schemas/", status=403)  # a token not allowed to read schemas
        checked = cli("policy", "check", str(path), env=_okta_env(okta))
    assert checked.returncode == 0, checked.stderr
    assert "schema could not be read" in checked.stderr and "403" in checked.stderr, checked.stderr
    assert "1 warning(s)" in checked.stdout, checked.stdout
    checked = cli("policy", "check", str(path), env={"ACCESSBOT_IDENTITY": "okta"})  # no Okta settings at all
    assert checked.returncode == 0, checked.stderr
    assert "schema was not read" in checked.stderr and "1 warning(s)" in checked.stdout, checked.stderr


async def test_entra_a_person_carries_what_its_own_lookup_asked_graph_for(sqlite_url, tmp_path, graph):
    """A policy reloaded while a person is being looked up may want an attribute more: the person Graph answered
    for the question asked before carries only what that question selected, so a rule on the new attribute is
    "could not check" for them, never judged on a value Graph was not asked for (an ``ineligible`` rule would then
    refuse nobody)."""
    import asyncio
    import threading

    tools = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT, properties={"companyName": "Contoso"})
    async with build_app(_entra_settings(sqlite_url, tmp_path, graph, _policy("entra", tools, ""))) as app:
        entra = app.deps.provider("entra")
        released = threading.Event()
        graph.hold_path("/manager", released)  # the lookup's second call waits: the first has been answered
        lookup = asyncio.ensure_future(entra.get_user(ANN))  # type: ignore[attr-defined]
        for _ in range(400):
            if graph.received("GET", f"/v1.0/users/{ANN}"):
                break
            await asyncio.sleep(0.05)
        entra.want_attributes(["companyName"])  # type: ignore[attr-defined]  # as a reload does
        released.set()
        person = await lookup
        assert person is not None and "companyName" not in (person.carried or ()), person.carried
        again = await entra.get_user(ANN)  # type: ignore[attr-defined]  # asked with it now
        assert again is not None and again.extra.get("companyName") == "Contoso" and "companyName" in again.carried
