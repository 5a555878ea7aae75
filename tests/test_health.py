"""``/healthz`` names each provider's reachability without calling it on every hit or echoing its errors;
the Entra and Okta providers are wired from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from bot.bootstrap import build_app
from bot.health import ProviderProbes
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from tests.standins.graph import GraphStandIn
from tests.standins.okta import OktaStandIn
from tests.standins.tls import make_tls
from tests.support import copy_examples


class StepClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@asynccontextmanager
async def _served(app) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    web_app = create_web_app(app, FanoutNotifier(), scheduler=False)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _get(url: str) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as r:
        text = await r.text()
        return r.status, await r.json(), text


def _settings(sqlite_url, files, graph, okta) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        database_url=sqlite_url, policy=str(files.policy), directory=str(files.directory), identity="directory",
        entra_tenant_id=graph.tenant, entra_client_id=graph.client_id, entra_client_secret=graph.client_secret,
        graph_url=graph.graph_url, authority_url=graph.url, okta_url=okta.url, okta_token=okta.token)


def _pings(okta: OktaStandIn) -> int:
    return sum(1 for r in okta.received("GET", "/api/v1/users") if r.query.get("limit") == "1")


async def test_providers_reachable_then_not(sqlite_url, tmp_path, monkeypatch):
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    files = copy_examples(tmp_path)
    with GraphStandIn(tls) as graph, OktaStandIn() as okta:
        async with build_app(_settings(sqlite_url, files, graph, okta)) as app:
            assert sorted(app.deps.providers) == ["directory", "entra", "okta"]
            clock = StepClock()
            app.state["probes"] = ProviderProbes(app.deps.providers, clock=clock)
            async with _served(app) as url:
                status, body, _ = await _get(url)
                assert status == 200 and body["status"] == "ok"
                assert body["checks"]["providers"] == {"directory": "ok", "entra": "ok", "okta": "ok"}
                bot_token = okta.token
                okta.token = "rotated-elsewhere"  # the bot's token no longer works
                status, body, _ = await _get(url)
                assert status == 200 and body["checks"]["providers"]["okta"] == "ok"  # checked 0 s ago: cached
                clock.t += 31
                status, body, text = await _get(url)
                assert status == 503 and body["status"] == "error"
                assert body["checks"]["providers"] == {"directory": "ok", "entra": "ok", "okta": "down"}
                # the provider's own words stay in the log: an anonymous caller learns nothing more
                for secret in ("rotated-elsewhere", okta.url, "E0000011", "Invalid token", "401", "Okta"):
                    assert secret not in text, secret
                okta.token = bot_token
                clock.t += 31
                status, body, _ = await _get(url)
                assert status == 200 and body["checks"]["providers"]["okta"] == "ok"


async def test_many_anonymous_hits_cost_one_provider_call_per_window(sqlite_url, tmp_path, monkeypatch):
    (tmp_path / "tls").mkdir()
    tls = make_tls(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", tls.ca_file)
    files = copy_examples(tmp_path)
    with GraphStandIn(tls) as graph, OktaStandIn() as okta:
        async with build_app(_settings(sqlite_url, files, graph, okta)) as app, _served(app) as url:
            okta.slow_next(1, seconds=0.3)  # the first check is in flight while the others arrive
            answers = await asyncio.gather(*(_get(url) for _ in range(25)))
            assert {status for status, _, _ in answers} == {200}
            assert _pings(okta) == 1
            assert graph.tokens_issued <= 1
            answers = await asyncio.gather(*(_get(url) for _ in range(25)))
            assert _pings(okta) == 1  # still inside the 30 s window


async def test_a_provider_that_is_down_answers_503_without_its_error_text(sqlite_url, tmp_path, monkeypatch):
    files = copy_examples(tmp_path)
    with OktaStandIn() as okta:
        settings = Settings(database_url=sqlite_url, policy=str(files.policy), directory=str(files.directory),
                            identity="directory", okta_url=okta.url, okta_token=okta.token)
        async with build_app(settings) as app, _served(app) as url:
            app.deps.providers["okta"].policy = type(app.deps.providers["okta"].policy)(  # type: ignore[attr-defined]
                max_attempts=1, request_timeout=2.0)
            okta.fail_next(5, status=500, retry_after=None)
            status, body, text = await _get(url)
            assert status == 503 and body["checks"]["providers"]["okta"] == "down", body
            assert "500" not in text and "E0000009" not in text and "Internal Server Error" not in text
            assert _pings(okta) == 1
            status, _, _ = await _get(url)
            assert status == 503 and _pings(okta) == 1  # a failure is remembered for the window too
