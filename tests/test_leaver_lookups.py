"""One person the identity provider cannot answer for does not stop the termination sweep (issue 9, item 5).

People come from Entra (the Graph stand-in); the look-up of one of them fails with 500 every time
while the two others have been disabled. Both leavers lose their grants; the one who could not be
checked is named in the sweep report, counted in ``/healthz`` (count only: it is anonymous) and in
``/metrics``, and keeps what they hold until a look-up succeeds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.bootstrap import App, build_app
from bot.notify import FanoutNotifier
from bot.scheduler import run_sweep
from bot.server import create_web_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.standins.tls import make_tls
from tests.support import EXAMPLES, cli, provider_policy

ANN, BEN, CAT, PAT = "ann@example.com", "ben@example.com", "cat@example.com", "pat.lead@example.com"


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphStandIn]:
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    with GraphStandIn(tls) as server:
        server.tls_ca = tls.ca_file  # type: ignore[attr-defined]
        yield server


def entra_settings(db: str, tmp_path: Path, graph: GraphStandIn, group: str) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(provider_policy("entra", group, version="leavers-1"))
    return Settings(database_url=db, policy=str(policy), directory=str(EXAMPLES / "directory.yaml"),
                    identity="entra", entra_tenant_id=graph.tenant, entra_client_id=graph.client_id,
                    entra_client_secret=graph.client_secret, graph_url=graph.graph_url, authority_url=graph.url)


async def grant_each(app: App, *emails: str) -> None:
    for email in emails:
        person = await app.service.identify(email)
        assert person is not None, email
        reply = await app.service.handle_text(person, "request tools for 2h")
        assert reply.ok and reply.request is not None and reply.request.state == "active", reply.text


@asynccontextmanager
async def served(app: App) -> AsyncIterator[str]:
    runner = web.AppRunner(create_web_app(app, FanoutNotifier(), scheduler=False))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def test_one_failing_lookup_does_not_stop_the_others_leaving(sqlite_url, tmp_path, graph):
    group = graph.add_group("sg-tools")
    graph.add_user(PAT, department="Engineering")
    for email in (ANN, BEN, CAT):
        graph.add_user(email, department="Engineering", manager=PAT)
    async with build_app(entra_settings(sqlite_url, tmp_path, graph, group)) as app:
        await grant_each(app, ANN, BEN, CAT)
        assert graph.member_emails(group) == [ANN, BEN, CAT]
        for email in (ANN, CAT):
            graph.users[graph.user_id(email)]["accountEnabled"] = False  # type: ignore[index]
        graph.fail_path(f"/users/{BEN}", status=500)

        report = await app.service.sweep()
        assert report.terminated == [ANN, CAT]
        assert graph.member_emails(group) == [BEN]  # the one nobody could check keeps access for now
        assert [u.split(":")[0] for u in report.unchecked] == [BEN]
        printed = "\n".join(report.lines())
        assert "could not check: 1" in printed and BEN in printed
        events = [e.as_dict() async for e in app.store.audit_events()]
        assert sorted(e["data"]["user"] for e in events if e["type"] == "user.terminated") == [ANN, CAT]

        # the scheduled sweep reports the same through /healthz (a count) and /metrics
        await run_sweep(app, "termination")
        async with served(app) as url, aiohttp.ClientSession() as http:
            async with http.get(f"{url}/healthz") as r:
                text = await r.text()
                body = await r.json()
            assert body["checks"]["sweeps"]["termination"]["unchecked"] == 1, body
            assert BEN not in text and "500" not in text
            async with http.get(f"{url}/metrics") as r:
                metrics = await r.text()
            assert "accessbot_termination_unchecked 1.0" in metrics
            assert 'accessbot_termination_lookup_failures_total 1.0' in metrics

        # the provider answers again: the next sweep checks Ben, who is still active
        graph.clear_path_faults()
        report = await app.service.sweep()
        assert report.unchecked == [] and report.terminated == []
        await run_sweep(app, "termination")
        assert app.state["sweeps"]["termination"]["unchecked"] == 0


def test_the_cli_sweep_prints_who_could_not_be_checked(sqlite_url, tmp_path):
    """``accessbot sweep`` through Okta: one look-up answers 500, the leaver after them still leaves."""
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        for email in (ANN, BEN, CAT):
            okta.add_user(email, department="Engineering", manager=PAT)
        policy = tmp_path / "policy.yaml"
        policy.write_text(provider_policy("okta", group, version="leavers-1"))
        env = {"ACCESSBOT_IDENTITY": "okta", "ACCESSBOT_OKTA_URL": okta.url, "ACCESSBOT_OKTA_TOKEN": okta.token}
        args = ["--database-url", sqlite_url, "--policy", str(policy), "--directory", str(EXAMPLES / "directory.yaml")]
        for email in (ANN, BEN, CAT):
            out = cli("chat", "--as", email, *args, input="request tools for 2h\n", env=env)
            assert "auto-approved" in out.stdout, out.stdout + out.stderr
        assert okta.member_emails(group) == [ANN, BEN, CAT]
        okta.set_status(ANN, "SUSPENDED")
        okta.set_status(CAT, "DEPROVISIONED")
        okta.fail_path(f"/users/{BEN}", status=500)
        out = cli("sweep", *args, env=env)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stdout + out.stderr
        assert okta.member_emails(group) == [BEN]
        assert "terminate: 2" in out.stdout and "could not check: 1" in out.stdout and BEN in out.stdout
