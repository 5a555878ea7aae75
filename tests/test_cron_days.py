"""Cron day-of-week fields (SPEC §7 `cron: "<5 fields>"`; the policy's schedule.drift_cron) as cron reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.bootstrap import build_app
from bot.notify import FanoutNotifier
from bot.scheduler import SCHEDULER_KEY
from bot.server import create_web_app
from bot.settings import Settings
from tests.reviews.test_start import staff
from tests.support import cli, copy_examples

AT = '      at: "08:00"                    # local time in the time zone below\n'


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _review_cron(files, cron: str) -> None:  # type: ignore[no-untyped-def]
    text = files.policy.read_text()
    assert AT in text
    files.policy.write_text(text.replace(AT, f'      cron: "{cron}"\n'))


def _started_after_days(tmp_path, sqlite_url, cron: str, days: int) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    files = copy_examples(tmp_path)
    staff(files)
    _review_cron(files, cron)
    check = cli("policy", "check", str(files.policy))
    assert check.returncode == 0, check.stdout + check.stderr  # the policy is accepted
    first = cli("sweep", db=sqlite_url, files=files)  # the review's policy is in force from now
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stdout + first.stderr[-600:]
    later = datetime.now(UTC) + timedelta(days=days)
    out = cli("sweep", "--as-of", iso(later), db=sqlite_url, files=files)
    return out.stdout, out.stderr


def test_a_wrapping_weekday_range_accepted_by_policy_check_runs(tmp_path, sqlite_url):
    # `policy check` accepts "6-0"; the sweep must then either start the review or say why, never crash
    out, err = _started_after_days(tmp_path, sqlite_url, "0 8 * * 6-0", 8)
    assert "Traceback" not in err and ("start review: 1" in out), out + err


async def test_serve_reads_drift_cron_days_as_cron_does(sqlite_url, tmp_path):
    """schedule.drift_cron "0 6 * * 1-5" is Monday..Friday in cron (and as bot/cron.py reads review crons);
    the serve scheduler must not run the drift sweep on Saturday."""
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text() + '\nschedule: {drift_cron: "0 6 * * 1-5"}\n')
    settings = Settings(database_url=sqlite_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings) as app:
        web_app = create_web_app(app, FanoutNotifier())
        runner = web.AppRunner(web_app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            job = web_app[SCHEDULER_KEY]["scheduler"].get_job("drift")
            friday_night = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # a Friday, after its 06:00 run
            fire = job.trigger.get_next_fire_time(None, friday_night)
            assert fire.strftime("%a") == "Mon", fire
        finally:
            await runner.cleanup()


def test_a_review_cron_in_the_repeated_hour_starts_once_when_summer_time_ends(tmp_path, sqlite_url):
    """Europe/Berlin's clocks go back from 03:00 to 02:00 on 2027-10-31: "30 2 * * *" names 02:30, which
    happens twice (00:30 and 01:30 UTC). Cron runs a job at a fixed time once that day; so does the review."""
    files = copy_examples(tmp_path)
    staff(files)
    _review_cron(files, "30 2 * * *")
    assert cli("sweep", "--as-of", "2027-10-30T12:00:00Z", db=sqlite_url, files=files).returncode == 0
    first = cli("sweep", "--as-of", "2027-10-31T00:45:00Z", db=sqlite_url, files=files)
    assert "start review: 1" in first.stdout, first.stdout + first.stderr[-600:]
    again = cli("sweep", "--as-of", "2027-10-31T01:45:00Z", db=sqlite_url, files=files)
    assert "start review: 0" in again.stdout, again.stdout + again.stderr[-600:]
    # the next day's 02:30 (01:30 UTC in winter time) starts the next one
    nextday = cli("sweep", "--as-of", "2027-11-01T01:45:00Z", db=sqlite_url, files=files)
    assert "start review: 1" in nextday.stdout, nextday.stdout + nextday.stderr[-600:]
