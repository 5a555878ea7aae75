"""The re-route brake with people from Entra (the Graph stand-in): a look-up that fails in the sweep after a
release does not leave the released steps pinned to the managers they were passed away from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.bootstrap import build_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.tls import make_tls
from tests.support import EXAMPLES, provider_policy

ANN, BEN, CAT = "ann@example.com", "ben@example.com", "cat@example.com"
MARK, PAT, SAM = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    with GraphStandIn(tls) as server:
        yield server


def _settings(db: str, tmp_path: Path, graph: GraphStandIn, group: str) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(provider_policy("entra", group, version="brake-1", approval="[manager]", auto_approve=False)
                      + "safety: {max_reroutes: 1}\n")
    return Settings(database_url=db, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="entra", entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                    entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)


async def test_released_reroutes_passed_on_by_an_incomplete_sweep_are_not_left_held(sqlite_url, tmp_path, graph):
    group = graph.add_group("sg-tools")
    for who in (MARK, PAT, SAM):
        graph.add_user(who, department="Security" if who == SAM else "Engineering")
    for who in (ANN, BEN, CAT):
        graph.add_user(who, department="Engineering", manager=MARK)
    async with build_app(_settings(sqlite_url, tmp_path, graph, group)) as app:
        async def say(email: str, text: str):  # type: ignore[no-untyped-def]
            person = await app.service.identify(email)
            assert person is not None, email
            return await app.service.handle_text(person, text)

        for who in (ANN, BEN, CAT):
            r = await say(who, "request tools for 2h")
            assert r.ok and r.request is not None and r.request.state == "pending", r.text
        for who in (ANN, BEN, CAT):
            graph.managers[graph.user_id(who)] = graph.user_id(PAT)  # type: ignore[index]
        report = await app.service.sweep()
        assert report.reroutes_held == ["REQ-1", "REQ-2", "REQ-3"], report.lines()
        assert (await say(SAM, "resume reroutes")).ok
        # the sweep after the release cannot look Cat up: the released re-routes still run
        graph.fail_path(f"/users/{CAT}", status=500)
        report = await app.service.sweep()
        assert report.rerouted == ["REQ-1", "REQ-2"], report.lines()
        # passed on: the step is the new manager's to decide, no longer held with the old one
        r = await say(PAT, "approve REQ-1")
        assert r.ok and r.rule != "reroute-held", r.text
        r = await say(MARK, "approve REQ-2")
        assert not r.ok, r.text
        # the one it could not look up stays held with the manager it asked until a sweep judges it
        graph.clear_path_faults()
        r = await say(PAT, "approve REQ-3")  # not his while held: not shown to him (recorded as reroute-held)
        assert not r.ok and "no request REQ-3 that you can see" in r.text, r.text
        report = await app.service.sweep()
        assert report.rerouted == ["REQ-3"] and report.reroutes_held == [], report.lines()
        r = await say(PAT, "approve REQ-3")
        assert r.ok, r.text
