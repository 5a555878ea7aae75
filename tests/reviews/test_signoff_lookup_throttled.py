"""One sign-off approver the identity provider cannot answer for (throttled, 5xx) must not stop the sweep's
review timers (the project's rule, tests/test_leaver_lookups.py: "one person the identity provider cannot
answer for does not stop the sweep"; run_review_timers: "one campaign's trouble does not stop the others").

``fail_stuck_signoffs`` (handlers/reviews/close.py), new in run_review_timers, looks every approver of every
waiting sign-off up at the IdP (``signoff_chain`` -> ``deps.person``) outside any try: a ProviderError for one
approver propagates out of ``sweep()``. Every open campaign's reminders, escalations and closes stop for as
long as that one look-up fails. A correct sweep records the failure (report.failed), leaves the waiting
sign-off as it is (a throttled look-up is not "left the directory"), and runs the other campaigns' timers."""

from __future__ import annotations

from typing import Any

from handlers.ports import ProviderError
from tests.reviews.test_close import sign_off_harness
from tests.reviews.test_start import REVIEW

DANA = "dana.dba@example.com"


async def test_a_throttled_signoff_approver_lookup_does_not_stop_the_review_timers(database_url, tmp_path,
                                                                                   monkeypatch):
    async with sign_off_harness(database_url, tmp_path, f"[{{any_of: security}}, {{user: {DANA}}}]") as h:
        assert (await h.say("sam.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sasha.sec@example.com", "approve RV-1")).ok  # step 2 waits for dana
        reply = await h.say("sam.sec@example.com", f"review start {REVIEW}")  # RV-2, open
        assert reply.ok and "RV-2" in reply.text, reply.text

        directory = h.app.deps.directory
        look_up = directory.get_user

        async def throttled(email: str) -> Any:
            if email.lower() == DANA:
                raise ProviderError(f"user {email}: HTTP 429", transient=True, retry_after=1, status=429)
            return await look_up(email)

        monkeypatch.setattr(directory, "get_user", throttled)
        h.clock.advance(days=4)  # past RV-2's remind_after (3bd)
        report = await h.app.service.sweep()  # raised ProviderError
        reminded = [e for e in await h.events("review.reminded") if e["data"]["review_id"] == "RV-2"]
        assert reminded, report.lines()
        async with h.app.store.read() as repo:
            assert (await repo.get_campaign(1)).state == "signoff"  # still waits for dana
