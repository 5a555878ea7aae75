"""``ACCESSBOT_METRICS_TOKEN``: ``/metrics`` answers only a scraper that sends it as a bearer token; without
the setting it stays open (restrict it at the proxy), and ``/healthz`` is never behind it."""

from __future__ import annotations

import aiohttp

from bot.bootstrap import build_app
from bot.settings import load_settings
from tests.support import copy_examples
from tests.test_health import _served


async def test_metrics_want_the_token_when_one_is_set(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    env = {"ACCESSBOT_DATABASE_URL": sqlite_url, "ACCESSBOT_POLICY": str(files.policy),
           "ACCESSBOT_DIRECTORY": str(files.directory), "ACCESSBOT_METRICS_TOKEN": "s3cret-scrape"}
    settings = load_settings(env, dotenv=None)
    async with build_app(settings) as app, _served(app) as url, aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-scrape"},
                        {"Authorization": "Bearer s3cret-scrap"}, {"Authorization": "Basic czNjcmV0LXNjcmFwZQ=="}):
            async with http.get(f"{url}/metrics", headers=headers) as r:
                body = await r.text()
                assert r.status == 401 and "accessbot_" not in body, (headers, r.status)
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret-scrape"}) as r:
            assert r.status == 200 and "accessbot_requests" in await r.text()
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200


async def test_metrics_stay_open_without_the_setting(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    env = {"ACCESSBOT_DATABASE_URL": sqlite_url, "ACCESSBOT_POLICY": str(files.policy),
           "ACCESSBOT_DIRECTORY": str(files.directory)}
    async with build_app(load_settings(env, dotenv=None)) as app, _served(app) as url, \
            aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as r:
        assert r.status == 200 and "accessbot_requests" in await r.text()
