"""A policy rule naming a Graph attribute in another case than Graph spells it.

Graph matches a ``$select`` name in any case, and answers the property by its own spelling: a rule on
``extension_<APP ID IN CAPITALS>_contractor`` (or ``…_Contractor``) had the extension selected, but its value was
looked up in the answer by the rule's spelling, found nowhere, and taken as no value. An ``ineligible`` rule on it
then never matched: a contractor was let in and approved automatically. The value is read by Graph's spelling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.support import EXAMPLES, graph_over_tls

PAT, ANN, BOB = "pat.lead@example.com", "ann@example.com", "bob@example.com"
EXTENSION = "extension_0a1b2c3d4e5f60718293a4b5c6d7e8f9_contractor"  # as the app registered it


def _policy(key: str) -> str:
    return "\n".join([
        'version: "case-1"', "approver_groups:", "  security: [sam.sec@example.com]", "security_team: security",
        "profiles:", "  - id: tools", "    title: Tools", "    owner: pat.lead@example.com", "    provider: entra",
        "    group: sg-tools", "    eligible:", "      - {department: Engineering}", "    ineligible:",
        f"      - {{{key}: true}}", "    duration: {default: 1h, max: 8h}", "    approval: [owner]",
        "    auto_approve:", "      - {department: Engineering, max_duration: 8h}", ""])


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    with graph_over_tls(tmp_path, monkeypatch, EXTENSION) as server:
        yield server


SPELLINGS = {
    "the app id in capitals": EXTENSION.replace("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0A1B2C3D4E5F60718293A4B5C6D7E8F9"),
    "the name in another case": EXTENSION.replace("_contractor", "_Contractor"),
}


@pytest.mark.parametrize("key", SPELLINGS.values(), ids=SPELLINGS.keys())
async def test_an_ineligible_rule_on_an_extension_spelt_in_another_case_refuses(database_url, tmp_path, graph,
                                                                                key) -> None:
    tools = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    graph.add_user(ANN, department="Engineering", manager=PAT, properties={EXTENSION: True})
    graph.add_user(BOB, department="Engineering", manager=PAT, properties={EXTENSION: False})
    path = tmp_path / "policy.yaml"
    path.write_text(_policy(key))
    config = Settings(database_url=database_url, policy=str(path), directory=str(EXAMPLES / "directory.yaml"),
                      identity="entra", entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                      entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)
    async with build_app(config) as app:
        ann = await app.service.identify(ANN)
        assert ann is not None
        refused = await app.service.handle_text(ann, "request tools for 1h because deploy")
        assert not refused.ok and refused.rule == f"ineligible: {key}=True", refused.text
        assert graph.member_emails(tools) == []

        bob = await app.service.identify(BOB)
        assert bob is not None
        granted = await app.service.handle_text(bob, "request tools for 1h because deploy")
        assert granted.ok and granted.request is not None and granted.request.state == "active", granted.text
