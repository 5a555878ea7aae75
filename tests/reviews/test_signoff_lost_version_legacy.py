"""A campaign that opened its sign-off before the asked people were kept on it, whose policy version is then lost:
the approver its open step asked (as review.signoff_requested names them) may answer, and the answer fails the
campaign closed (nothing removed); someone never asked is still refused."""

from __future__ import annotations

from sqlalchemy import text

from tests.reviews.test_decisions import started
from tests.reviews.test_signoff_lost_version import _stricter
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples


async def test_the_approver_a_legacy_step_asked_is_not_refused_on_a_lost_version(database_url, tmp_path,
                                                                                  monkeypatch):
    from bot.bootstrap import build_app
    from bot.settings import Settings

    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text().replace("sign_off: [{any_of: security}]",
                                                             "sign_off: [{any_of: dba}]"))
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
        asked = [e["data"]["approvers"] for e in await h.events("review.signoff_requested")]
        assert asked == [["dana.dba@example.com", "dev.dba@example.com"]], asked
        async with app.store.engine.begin() as conn:  # as a campaign whose step asked before 0013
            await conn.execute(text("UPDATE review_campaigns SET signoff_asked = NULL"))
    files.policy.write_text(files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"')
                            .replace("    sign_off: [{any_of: dba}]", "    # sign_off: to be redone"))
    _stricter(monkeypatch)
    notifier = RecordingNotifier()
    async with build_app(settings, clock=MutableClock(), notifier=notifier) as app:
        h = Harness(app, app.deps.clock, notifier, files)  # type: ignore[arg-type]
        reply = await h.say("dana.dba@example.com", "deny RV-1 because not sure")
        assert reply.rule == "signoff-failed", (reply.rule, reply.text)
        async with app.store.read() as repo:
            campaign = await repo.get_campaign(1)
        assert (campaign.state, campaign.signoff) == ("closed", "failed")
