"""``/healthz`` names each provider's reachability; the Entra and Okta providers are wired from settings."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from bot.bootstrap import build_app
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.standins.tls import make_tls
from tests.support import copy_examples


async def _health(app) -> dict:  # type: ignore[no-untyped-def]
    web_app = create_web_app(app, FanoutNotifier(), scheduler=False)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            return await r.json()
    finally:
        await runner.cleanup()


async def test_providers_reachable_then_not(sqlite_url, tmp_path, monkeypatch):
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    files = copy_examples(tmp_path)
    with GraphStandIn(tls) as graph, OktaStandIn() as okta:
        settings = Settings(
            database_url=sqlite_url, policy=str(files.policy), directory=str(files.directory), identity="directory",
            entra_tenant_id=graph.tenant, entra_client_id=graph.client_id, entra_client_secret=graph.client_secret,
            graph_url=graph.graph_url, authority_url=graph.url, okta_url=okta.url, okta_token=okta.token)
        async with build_app(settings) as app:
            assert sorted(app.deps.providers) == ["directory", "entra", "okta"]
            body = await _health(app)
            assert body["status"] == "ok"
            assert body["checks"]["providers"] == {"directory": "ok", "entra": "ok", "okta": "ok"}
            okta.token = "rotated-elsewhere"  # the bot's token no longer works
            body = await _health(app)
            assert body["checks"]["providers"]["okta"].startswith("unreachable: Okta ping: HTTP 401")
            assert "rotated-elsewhere" not in str(body) and okta.url not in str(body)  # no secrets, no addresses
            assert body["checks"]["providers"]["entra"] == "ok"
