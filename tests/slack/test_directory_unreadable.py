"""A directory file that cannot be used (a key given twice) while Slack is served: the person is told nobody
can be looked up right now, and nothing is done."""

from __future__ import annotations

from pathlib import Path

from tests.slack.conftest import SlackHarness


async def test_a_command_while_the_directory_cannot_be_read_is_answered_and_does_nothing(slack: SlackHarness):
    h = slack
    path = Path(h.app.settings.directory)
    path.write_text(path.read_text() + "\nusers: []\n")  # noqa: ASYNC240 (a key given twice)
    sent = await h.command("bob@example.com", "request analytics-read for 1d because dashboards")
    assert sent.status == 200
    assert "cannot look people up right now" in str(h.last_response()), h.api.responses[-2:]
    assert await h.events("request.submitted") == []
