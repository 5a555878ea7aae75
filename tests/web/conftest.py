"""Dashboard test harness: the real app (``create_web_app``, as ``accessbot serve`` builds it) served on
127.0.0.1, with ``ACCESSBOT_PUBLIC_URL`` pointing at it, and helpers to sign in by the chat word.

``web`` (async fixture, SQLite) and ``web_any_db`` (SQLite and PostgreSQL) yield a :class:`WebHarness`.
Cookies are handled by hand, so every test sees exactly what the server set.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.bootstrap import App, build_app
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from tests.support import Files, MutableClock, copy_examples

LINK_RE = re.compile(r"(https?://\S+/dashboard/link/[A-Za-z0-9_-]+)")
CHAIN_RUNNING = "reload in a moment"  # the overview while the chain's first whole check runs


@dataclass
class Page:
    status: int
    text: str
    headers: Any
    cookies: SimpleCookie


@dataclass
class WebHarness:
    app: App
    url: str
    http: aiohttp.ClientSession
    clock: MutableClock
    files: Files

    async def say(self, email: str, text: str) -> Any:
        person = await self.app.service.identify(email)
        assert person is not None, email
        return await self.app.service.handle_text(person, text)

    async def link(self, email: str) -> str:
        reply = await self.say(email, "dashboard")
        assert reply.ok, reply.text
        m = LINK_RE.search(reply.text)
        assert m, reply.text
        return m.group(1)

    async def get(self, path: str, cookie: str | None = None, **headers: str) -> Page:
        if cookie:
            headers["Cookie"] = cookie
        async with self.http.get(self.url + path, headers=headers, allow_redirects=False) as resp:
            return Page(resp.status, await resp.text(), resp.headers, _cookies(resp))

    async def overview(self, cookie: str, *, within: float = 30.0) -> Page:
        """``/dashboard`` once the chain's first whole check has finished: the page says it is still
        verifying (and to reload) while that check runs in the background, which takes longer on a busy machine."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            page = await self.get("/dashboard", cookie=cookie)
            if CHAIN_RUNNING not in page.text or asyncio.get_running_loop().time() > deadline:
                return page
            await asyncio.sleep(0.05)

    async def post(self, path: str, cookie: str | None = None, **headers: str) -> Page:
        if cookie:
            headers["Cookie"] = cookie
        headers.setdefault("Origin", self.url)
        async with self.http.post(self.url + path, headers=headers, allow_redirects=False) as resp:
            return Page(resp.status, await resp.text(), resp.headers, _cookies(resp))

    async def sign_in(self, email: str) -> str:
        """A session cookie header (``name=value``) for ``email``, through the chat word and the link."""
        link = await self.link(email)
        page = await self.post(link[len(self.url):])
        assert page.status == 303, (page.status, page.text)
        morsel = next(iter(page.cookies.values()))
        return f"{morsel.key}={morsel.value}"

    async def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e.as_dict() async for e in self.app.store.audit_events() if type_ is None or e.type == type_]


def _cookies(resp: aiohttp.ClientResponse) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for value in resp.headers.getall("Set-Cookie", []):
        jar.load(value)
    return jar


def free_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve_dashboard(db: str, tmp_path: Path, *, clock: MutableClock | None = None, policy: str | None = None,
                          **settings: Any) -> AsyncIterator[WebHarness]:
    """The dashboard over HTTP on the example files (``policy``: this policy text instead of the example's)."""
    files = copy_examples(tmp_path)
    if policy is not None:
        files.policy.write_text(policy)
    clock = clock or MutableClock()
    sock = free_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cfg = Settings(database_url=db, policy=str(files.policy), directory=str(files.directory),
                   **{"public_url": url, **settings})
    notifier = FanoutNotifier()
    async with build_app(cfg, notifier=notifier, clock=clock) as app:
        web_app = create_web_app(app, notifier, scheduler=False)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.SockSite(runner, sock)
        await site.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield WebHarness(app=app, url=url, http=http, clock=clock, files=files)
        finally:
            await runner.cleanup()


@pytest.fixture
async def web_harness(sqlite_url: str, tmp_path: Path) -> AsyncIterator[WebHarness]:
    async with serve_dashboard(sqlite_url, tmp_path) as h:
        yield h


@pytest.fixture
async def web_any_db(database_url: str, tmp_path: Path) -> AsyncIterator[WebHarness]:
    async with serve_dashboard(database_url, tmp_path) as h:
        yield h
