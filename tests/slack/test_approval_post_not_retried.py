"""``chat.postMessage`` is not retried after an answer that does not say whether the message was posted
(HTTP 500/503, or a connection cut after the request went out: ``SLACK_API_URL`` behind an egress proxy).
``chat.postMessage`` is not idempotent: Slack (or the proxy) may have posted the approval DM
before the error, and a retry would post a second one whose ``ts`` alone is remembered, leaving the first
DM's live **Approve** / **Deny** buttons for good beside a second one. Without the retry there is one DM
(whose buttons, when its post was answered with an error, stay: a click on them shows the state as it is).

Real signed HTTP into ``/slack/events`` as ``accessbot serve`` mounts it, the real store, a Slack Web API
stand-in that posts the message and then answers 503 (as Slack does with ``internal_error``) once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.slack.conftest import SlackHarness, serve
from tests.standins.slack import SlackWebApi

ALICE, MARK = "alice@example.com", "mark.mgr@example.com"


class PostedThenFailed(SlackWebApi):
    """The Slack Web API, except that the next ``chat.postMessage`` into ``channel`` is carried out and then
    answered ``503 internal_error``: the message exists, the caller does not know it."""

    def __init__(self) -> None:
        super().__init__()
        self.ambiguous: dict[str, int] = {}

    async def _api(self, request: web.Request) -> web.Response:
        response = await super()._api(request)
        if request.match_info["method"] == "chat.postMessage":
            channel = str((self.calls[-1].args or {}).get("channel"))
            with self.lock:
                left = self.ambiguous.get(channel, 0)
                if left:
                    self.ambiguous[channel] = left - 1
            if left:
                return web.json_response({"ok": False, "error": "internal_error"}, status=503)
        return response


@pytest.fixture
def flaky_api() -> AsyncIterator[PostedThenFailed]:
    stand_in = PostedThenFailed()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
async def slack_flaky(sqlite_url: str, tmp_path: Path, flaky_api: PostedThenFailed) -> AsyncIterator[SlackHarness]:
    async for h in serve(sqlite_url, tmp_path, flaky_api):
        yield h


async def test_an_approval_dm_answered_503_is_not_posted_twice(slack_flaky: SlackHarness) -> None:
    """The approval DM is posted once although Slack answered 503 (no retry posts a second one), and mark's
    decision from it is recorded once."""
    h = slack_flaky
    api: PostedThenFailed = h.api  # type: ignore[assignment]
    api.ambiguous["DU0MARK"] = 1  # mark's approval DM: posted, then 503
    await h.command(ALICE, "request prod-db-read for 2h because fix INC-4411")
    marks = api.approvals("U0MARK", "REQ-1")
    assert len(marks) == 1 and marks[0].action_ids == ["approve", "deny"], [m.ts for m in marks]
    click = await h.click(MARK, "approve", "REQ-1", message=marks[0])
    assert click.status == 200
    assert [e["actor"] for e in await h.events("approval.granted")] == [MARK]
    assert len(api.approvals("U0MARK", "REQ-1")) == 1, "no second DM"
