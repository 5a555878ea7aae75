"""The removal list's sign-off is answered by its approvers (SPEC §7); anyone else trying gets a refusal recorded
as command.refused. That holds for a campaign whose policy version can no longer be read, too: a person who is
not asked (or whose own access is on the list) is refused and learns nothing of the campaign; an approver's
answer, or the sweep, fails it closed."""

from __future__ import annotations

from tests.reviews.test_signoff_lost_version import _signoff_pending, _stricter
from tests.support import Harness, MutableClock, RecordingNotifier


async def test_a_stranger_cannot_close_a_lost_version_campaign_by_answering_its_signoff(database_url, tmp_path,
                                                                                       monkeypatch):
    from bot.bootstrap import build_app

    files, settings = await _signoff_pending(database_url, tmp_path)
    _stricter(monkeypatch)
    notifier = RecordingNotifier()
    async with build_app(settings, clock=MutableClock(), notifier=notifier) as app:
        h = Harness(app, app.deps.clock, notifier, files)  # type: ignore[arg-type]
        reply = await h.say("carol@example.com", "deny RV-1 because whatever")  # not in any sign-off step
        refused = [e for e in await h.events("command.refused") if e["actor"] == "carol@example.com"]
        closed = await h.events("review.closed")
        assert refused and reply.rule == "not-approver" and not closed, (reply.rule, reply.text, closed)
