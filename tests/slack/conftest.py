"""Slack test harness: the real app served on 127.0.0.1 and a stand-in Slack Web API.

``slack`` (async fixture) starts ``create_web_app`` with the Slack channel mounted the way
``accessbot serve`` mounts it (acks first, work after); ``slack_any_db`` does the same on SQLite
and PostgreSQL. Requests are built from ``tests/fixtures/slack/*.json`` and signed the way Slack
signs them (HMAC-SHA256 over ``v0:{timestamp}:{body}``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from bot.bootstrap import App, build_app
from bot.notify import FanoutNotifier
from bot.server import create_web_app
from bot.settings import Settings
from bot.slack import SLACK_KEY, SlackChannel
from tests.standins.slack import SlackWebApi
from tests.support import Files, MutableClock, copy_examples

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slack"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

UID = {
    "alice@example.com": "U0ALICE", "bob@example.com": "U0BOB", "carol@example.com": "U0CAROL",
    "mark.mgr@example.com": "U0MARK", "pat.lead@example.com": "U0PAT", "dana.dba@example.com": "U0DANA",
    "dev.dba@example.com": "U0DEV", "sam.sec@example.com": "U0SAM", "sasha.sec@example.com": "U0SASHA",
    "frank@example.com": "U0FRANK",  # not linked in the directory: found by the email on his Slack profile
}


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(body: str, timestamp: str, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass
class Sent:
    status: int
    text: str
    body: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


@dataclass
class SlackHarness:
    app: App
    channel: SlackChannel
    api: SlackWebApi
    url: str
    http: aiohttp.ClientSession
    clock: MutableClock
    files: Files
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- raw, signed requests ---------------------------------------------------------------------
    async def post_raw(self, body: str, content_type: str, *, timestamp: str | None = None,
                       signature: str | None = None, headers: dict[str, str] | None = None,
                       settle: bool = True) -> Sent:
        ts = timestamp or str(int(time.time()))
        sent_headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
                        "X-Slack-Signature": signature if signature is not None else sign(body, ts)}
        sent_headers.update(headers or {})
        async with self.http.post(f"{self.url}/slack/events", data=body.encode(), headers=sent_headers) as resp:
            text = await resp.text()
            status = resp.status
        if settle:
            await self.settle()
        return Sent(status, text, body, sent_headers)

    async def replay(self, sent: Sent) -> Sent:
        """The same bytes and headers again (a replay inside the five minutes)."""
        async with self.http.post(f"{self.url}/slack/events", data=sent.body.encode(), headers=sent.headers) as r:
            text, status = await r.text(), r.status
        await self.settle()
        return Sent(status, text, sent.body, sent.headers)

    async def settle(self) -> None:
        await self.channel.idle()

    def response_url(self) -> str:
        return f"{self.api.url}/response/{next(self._ids)}"

    # -- payload builders -------------------------------------------------------------------------
    def trigger(self) -> str:
        return f"{next(self._ids)}.1763884850.{next(self._ids):032x}"

    async def command(self, email_or_uid: str, text: str, **kw: Any) -> Sent:
        form = fixture("slash_command")
        uid = UID.get(email_or_uid, email_or_uid)
        form.update(user_id=uid, user_name=uid.lower(), text=text, response_url=self.response_url(),
                    trigger_id=self.trigger())
        return await self.post_raw(urlencode(form), "application/x-www-form-urlencoded", **kw)

    def action_payload(self, email_or_uid: str, action_id: str, value: str, *,
                       message: Any = None) -> dict[str, Any]:
        payload = copy.deepcopy(fixture("block_actions"))
        uid = UID.get(email_or_uid, email_or_uid)
        payload["user"] = {"id": uid, "username": uid.lower(), "name": uid.lower(), "team_id": "T0ACCESS"}
        channel, ts = (message.channel, message.ts) if message is not None else ("D" + uid, "1763884899.999999")
        payload["container"].update(channel_id=channel, message_ts=ts)
        payload["channel"]["id"] = channel
        payload["message"]["ts"] = ts
        payload["trigger_id"] = self.trigger()
        payload["response_url"] = self.response_url()
        payload["actions"][0].update(action_id=action_id, value=value, action_ts=f"1763884851.{next(self._ids)}")
        return payload

    async def interact(self, payload: dict[str, Any], **kw: Any) -> Sent:
        return await self.post_raw(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded",
                                   **kw)

    async def click(self, email_or_uid: str, action_id: str, value: str, *, message: Any = None,
                    **kw: Any) -> Sent:
        return await self.interact(self.action_payload(email_or_uid, action_id, value, message=message), **kw)

    def submission(self, name: str, email_or_uid: str, values: dict[str, str | None],
                   metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = copy.deepcopy(fixture(name))
        uid = UID.get(email_or_uid, email_or_uid)
        payload["user"] = {"id": uid, "username": uid.lower(), "name": uid.lower(), "team_id": "T0ACCESS"}
        payload["trigger_id"] = self.trigger()
        state = payload["view"]["state"]["values"]
        for key, value in values.items():
            element = state.setdefault(key, {key: {"type": "plain_text_input"}})[key]
            if element["type"] == "static_select":
                element["selected_option"] = None if value is None else {
                    "text": {"type": "plain_text", "text": value}, "value": value}
            else:
                element["value"] = value
        if metadata is not None:
            payload["view"]["private_metadata"] = json.dumps(metadata)
        return payload

    async def home(self, email_or_uid: str, event_id: str, **kw: Any) -> Sent:
        event = copy.deepcopy(fixture("event_app_home_opened"))
        uid = UID.get(email_or_uid, email_or_uid)
        event["event"].update(user=uid, channel="D" + uid)
        event["event_id"] = event_id
        return await self.post_raw(json.dumps(event), "application/json", **kw)

    # -- the record -------------------------------------------------------------------------------
    async def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e.as_dict() async for e in self.app.store.audit_events() if type_ is None or e.type == type_]

    async def request(self, n: int) -> Any:
        async with self.app.store.read() as repo:
            return await repo.get_request(n)

    def last_response(self) -> dict[str, Any]:
        assert self.api.responses, "nothing was posted to a response_url"
        return self.api.responses[-1]


@pytest.fixture(scope="session")
def slack_api() -> Iterator[SlackWebApi]:
    stand_in = SlackWebApi().start()
    yield stand_in
    stand_in.stop()


def slack_settings(db: str, files: Files, api: SlackWebApi, **kw: Any) -> Settings:
    return Settings(database_url=db, policy=str(files.policy), directory=str(files.directory),
                    slack_bot_token=SlackWebApi.TOKEN, slack_signing_secret=SECRET,
                    slack_api_url=api.url + "/api/", **kw)


async def serve(db: str, tmp_path: Path, api: SlackWebApi, *, process_before_response: bool | None = None
                ) -> AsyncIterator[SlackHarness]:
    api.reset()
    api.add_user("U0FRANK", "frank@example.com")
    api.add_user("U0NOBODY", "nobody@example.com")
    files = copy_examples(tmp_path)
    clock = MutableClock()
    notifier = FanoutNotifier()
    async with build_app(slack_settings(db, files, api), notifier=notifier, clock=clock) as app:
        if process_before_response is None:
            web_app = create_web_app(app, notifier, scheduler=False)
        else:  # the channel alone, with Bolt's other mode
            from bot.slack import mount

            web_app = web.Application()
            mount(web_app, app, notifier, process_before_response=process_before_response)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            try:
                yield SlackHarness(app, web_app[SLACK_KEY], api, f"http://127.0.0.1:{port}", http, clock, files)
            finally:
                await web_app[SLACK_KEY].idle()
                await runner.cleanup()


@pytest.fixture
async def slack(sqlite_url: str, tmp_path: Path, slack_api: SlackWebApi) -> AsyncIterator[SlackHarness]:
    async for h in serve(sqlite_url, tmp_path, slack_api):
        yield h


@pytest.fixture
async def slack_any_db(database_url: str, tmp_path: Path, slack_api: SlackWebApi) -> AsyncIterator[SlackHarness]:
    async for h in serve(database_url, tmp_path, slack_api):
        yield h
