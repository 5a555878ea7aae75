"""A campaign is judged by the policy version it started under; when that version can no longer be read (today's
validator refuses it: ``[{any_of: security}, {all_of: security}]`` was accepted by earlier releases), nothing is
removed by another version: the close, a signature and the sweep each fail it closed (``review.closed``
``signoff: failed`` with the rule naming the lost version), and the security team is told. The policy in force
may meanwhile have dropped the sign-off; it does not judge a campaign it did not start."""

from __future__ import annotations

import handlers.reviews.policy_check as review_policy_check
from handlers.policy import load_policy
from tests.reviews.test_decisions import started
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples

OLD_CHAIN = "sign_off: [{any_of: security}, {all_of: security}]"


async def test_a_campaign_of_a_version_that_no_longer_parses_keeps_its_signoff(database_url, tmp_path, monkeypatch):
    from bot.bootstrap import build_app
    from bot.settings import Settings

    files = copy_examples(tmp_path)
    text = files.policy.read_text()
    assert "sign_off: [{any_of: security}]" in text
    files.policy.write_text(text.replace("sign_off: [{any_of: security}]", OLD_CHAIN))
    with monkeypatch.context() as before_upgrade:  # the validator as it was before this change set
        before_upgrade.setattr(review_policy_check, "sign_off_problem", lambda steps, groups: None)
        settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
        async with build_app(settings, clock=MutableClock(), notifier=RecordingNotifier()) as app:
            h = Harness(app, app.deps.clock, RecordingNotifier(), files)  # type: ignore[arg-type]
            items = await started(h)
            bob = items["bob@example.com"].number
            for who in ("mark.mgr@example.com", "sam.sec@example.com", "pat.lead@example.com"):
                assert (await h.say(who, "keep RV-1 all")).ok
            assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok

    # upgraded: the old chain is refused now; the operator drops the sign-off from the file to start again
    files.policy.write_text(files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"')
                            .replace(f"    {OLD_CHAIN}", "    # sign_off: to be redone"))
    load_policy(files.policy)  # valid
    async with build_app(settings, clock=MutableClock(), notifier=RecordingNotifier()) as app:
        h = Harness(app, app.deps.clock, RecordingNotifier(), files)  # type: ignore[arg-type]
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert "bob@example.com" in await h.members("sg-prod-db-read"), \
            f"removed without the sign-off RV-1 started with: {reply.text}"


async def _signoff_pending(database_url, tmp_path):  # type: ignore[no-untyped-def]
    """RV-1 closed: its removal of bob waits for the sign-off of its version's chain ``[{any_of: security}]``;
    then a new file without a sign-off is in force."""
    from bot.bootstrap import build_app
    from bot.settings import Settings

    files = copy_examples(tmp_path)
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=MutableClock(), notifier=RecordingNotifier()) as app:
        h = Harness(app, app.deps.clock, RecordingNotifier(), files)  # type: ignore[arg-type]
        items = await started(h)
        bob = items["bob@example.com"].number
        for who in ("mark.mgr@example.com", "sam.sec@example.com", "pat.lead@example.com"):
            assert (await h.say(who, "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        assert "waits for sign-off" in reply.text, reply.text
    files.policy.write_text(files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"')
                            .replace("    sign_off: [{any_of: security}]", "    # sign_off: to be redone"))
    return files, settings


def _stricter(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A validator that refuses the chain RV-1 started with: its stored version no longer parses."""
    monkeypatch.setattr(review_policy_check, "sign_off_problem", lambda steps, groups: (0, "refused today"))


async def _failed_closed(h) -> None:  # type: ignore[no-untyped-def]
    (closed,) = await h.events("review.closed")
    assert closed["data"]["signoff"] == "failed" and "can no longer be read" in closed["data"]["rule"], closed
    assert "bob@example.com" in await h.members("sg-prod-db-read")
    assert [n for n in h.notifier.notices if n.kind == "failure" and "RV-1" in n.text]


async def test_a_signature_on_a_campaign_of_a_lost_version_fails_it_closed(database_url, tmp_path, monkeypatch):
    from bot.bootstrap import build_app

    files, settings = await _signoff_pending(database_url, tmp_path)
    _stricter(monkeypatch)
    notifier = RecordingNotifier()
    async with build_app(settings, clock=MutableClock(), notifier=notifier) as app:
        h = Harness(app, app.deps.clock, notifier, files)  # type: ignore[arg-type]
        reply = await h.say("sasha.sec@example.com", "approve RV-1")
        assert not reply.ok and reply.rule == "signoff-failed", reply.text
        await _failed_closed(h)


async def test_the_sweep_fails_closed_a_sign_off_of_a_lost_version(database_url, tmp_path, monkeypatch):
    from bot.bootstrap import build_app

    files, settings = await _signoff_pending(database_url, tmp_path)
    _stricter(monkeypatch)
    notifier = RecordingNotifier()
    async with build_app(settings, clock=MutableClock(), notifier=notifier) as app:
        h = Harness(app, app.deps.clock, notifier, files)  # type: ignore[arg-type]
        report = await app.service.sweep()
        assert any("RV-1 closed" in line for line in report.reviews_closed), report
        await _failed_closed(h)
