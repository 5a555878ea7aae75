"""`accessbot sweep` tells people through the channels `serve` would use (SPEC §5): a reminder, an escalation or an
expiry notice is recorded as sent, so a sweep run from the command line (cron, a second host, a catch-up after
downtime) that sent it nowhere lost it for good. With Slack configured, the sweep's reminder reaches the approver
as a Slack DM before the process ends; `--dry-run` records nothing and tells nobody. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.slack.conftest import SECRET
from tests.standins.slack import SlackWebApi
from tests.support import chat, cli, copy_examples

MARK, BOB = "mark.mgr@example.com", "bob@example.com"


def test_the_command_line_sweep_sends_the_reminder_it_records(database_url, tmp_path) -> None:
    files = copy_examples(tmp_path)
    assert "REQ-1 submitted" in chat(BOB, "request staging-admin for 1h", db=database_url, files=files)
    later = (datetime.now(UTC) + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")  # past remind_after (4h)
    api = SlackWebApi().start()
    try:
        api.add_user("U0MARK", MARK)
        env = {"SLACK_BOT_TOKEN": SlackWebApi.TOKEN, "SLACK_SIGNING_SECRET": SECRET,
               "SLACK_API_URL": api.url + "/api/"}
        dry = cli("sweep", "--dry-run", "--as-of", later, db=database_url, files=files, env=env)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert api.dm("U0MARK") == []
        done = cli("sweep", "--as-of", later, db=database_url, files=files, env=env)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr
        reminded = [e for e in cli("audit", "export", db=database_url).stdout.splitlines()
                    if '"approval.reminded"' in e]
        assert len(reminded) == 1, done.stdout
        told = [m.all_text for m in api.dm("U0MARK")]
        assert any("REQ-1" in text for text in told), (told, done.stdout, done.stderr[-2000:])
    finally:
        api.stop()
