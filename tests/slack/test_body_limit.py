"""The Slack route's 512 KiB body limit (``bot.slack.MAX_BODY``) holds whatever the headers say: a body sent
with ``Transfer-Encoding: chunked`` has no ``Content-Length``, and is read no further than the limit and
refused 413 before anything is parsed (``to_bolt_request`` parses before Bolt checks the signature).

Real HTTP into ``/slack/events`` as ``accessbot serve`` mounts it.
"""

from __future__ import annotations

from tests.slack.conftest import SlackHarness, slack, slack_api  # noqa: F401 (fixtures)

BODY = ('{"type":"block_actions","pad":"' + "a" * 700_000 + '"}').encode()


async def test_an_oversized_body_is_refused_413_with_or_without_content_length(slack: SlackHarness) -> None:  # noqa: F811
    """A 700 KB unsigned body is refused 413 with its Content-Length, and the same bytes chunked are too."""
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": "0", "X-Slack-Signature": "v0=0"}
    async with slack.http.post(f"{slack.url}/slack/events", data=BODY, headers=headers) as resp:
        assert resp.status == 413  # with Content-Length: refused before it is read

    async def chunks():  # the same bytes, chunked: no Content-Length
        for i in range(0, len(BODY), 65536):
            yield BODY[i:i + 65536]

    async with slack.http.post(f"{slack.url}/slack/events", data=chunks(), headers=headers) as resp:
        status = resp.status
    assert status == 413, f"a chunked 700 KB unsigned body was read and parsed, then answered {status}"
