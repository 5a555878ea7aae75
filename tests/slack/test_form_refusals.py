"""In Slack and Teams a complete request over the maximum is refused and recorded (and shown the form to correct it).

SPEC §3.1: duration over max is refused with the exact rule (``request.refused`` {rule: ``duration>max``});
"in Teams and Slack, *missing* fields open a form instead of a refusal". A request with every field given
whose duration is over the maximum (or whose duration is not a duration) is not missing anything, yet on
the chat channels it gets a form and the audit log never hears of the refused attempt.
"""

from __future__ import annotations

from handlers.grammar import RequestAccess
from tests.slack.conftest import SlackHarness
from tests.support import harness


async def test_slack_request_over_the_maximum_is_refused_and_recorded(slack: SlackHarness):
    h = slack
    await h.command("bob@example.com", "request prod-db-read for 3d because INC-4411 replica lag")
    refused = [e["data"]["rule"] for e in await h.events("request.refused")]
    assert refused == ["duration>max"], (refused, h.api.modals[-1:] or h.api.responses[-1:])


async def test_the_service_every_chat_channel_calls_names_the_rule(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        bob = await h.app.service.identify("bob@example.com")
        r = await h.app.service.handle(bob, RequestAccess("prod-db-read", "3d", "INC-4411 replica lag", "INC-4411"),
                                       forms=True)
        assert r.rule == "duration>max", (r.kind, r.rule, r.text)
        assert [e["data"]["rule"] for e in await h.events("request.refused")] == ["duration>max"]
