"""A campaign whose policy version is lost fails closed at `review close`: only its removal list counts as
removals not done (the security team's notice says 1 removal), and an item nobody decided is recorded as left
undecided, not as a removal whose sign-off failed."""

from __future__ import annotations

import handlers.reviews.policy_check as review_policy_check
from tests.reviews.test_decisions import started
from tests.reviews.test_signoff_lost_version import OLD_CHAIN
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples


async def test_lost_version_failure_counts_and_labels_only_the_removal_list(database_url, tmp_path, monkeypatch):
    from bot.bootstrap import build_app
    from bot.settings import Settings

    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text().replace("sign_off: [{any_of: security}]", OLD_CHAIN))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    with monkeypatch.context() as before_upgrade:
        before_upgrade.setattr(review_policy_check, "sign_off_problem", lambda steps, groups: None)
        async with build_app(settings, clock=MutableClock(), notifier=RecordingNotifier()) as app:
            h = Harness(app, app.deps.clock, RecordingNotifier(), files)  # type: ignore[arg-type]
            items = await started(h)
            bob = items["bob@example.com"].number
            for who in ("mark.mgr@example.com", "sam.sec@example.com"):
                assert (await h.say(who, "keep RV-1 all")).ok
            assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
            undecided = sorted(i.number for i in items.values() if i.reviewer == "pat.lead@example.com")
            assert undecided
    files.policy.write_text(files.policy.read_text().replace('version: "2026.11"', 'version: "2026.12"')
                            .replace(f"    {OLD_CHAIN}", "    # sign_off: to be redone"))
    notifier = RecordingNotifier()
    async with build_app(settings, clock=MutableClock(), notifier=notifier) as app:
        h = Harness(app, app.deps.clock, notifier, files)  # type: ignore[arg-type]
        reply = await h.say("sasha.sec@example.com", "review close RV-1")
        (closed,) = await h.events("review.closed")
        assert closed["data"]["signoff"] == "failed", (reply.text, closed)
        async with app.store.read() as repo:
            final = await repo.final_decisions(1)
            by_number = {i.number: i for i in await repo.items(1)}
        assert all(n not in final for n in undecided)  # left undecided, as the commit says
        told = [n.text for n in notifier.notices if n.kind == "failure" and "RV-1" in n.text]
        assert told and all("none of its 1 removal(s)" in t for t in told), told
        labels = {n: (by_number[n].state, by_number[n].outcome) for n in undecided}
        assert all(outcome != "sign-off failed: not removed" for _, outcome in labels.values()), (
            f"undecided items, on no removal list, are recorded as failed removals: {labels}")
