"""A reviewer's reminder and escalation count only the items that still need a decision, sent through the Slack
stand-in: an item whose person left its group after the campaign started (by other means, or with the grant
that held the membership) is gone for the close (handlers/reviews/close.py) and is not asked about by the sweep
either; a batch whose every undecided item has gone is neither reminded nor escalated. On SQLite and
PostgreSQL."""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.reviews.test_close import at
from tests.reviews.test_decisions import started
from tests.reviews.test_live_membership import leaves
from tests.slack.test_outbox_settled import _dm, _slack
from tests.support import harness

MARK, PAT, SAM = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"


async def test_items_whose_members_left_are_not_counted_and_an_empty_batch_is_not_reminded(
        database_url, tmp_path, slack_api):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        n = {u.split("@")[0]: i.number for u, i in items.items()}
        _slack(h, slack_api)
        h.clock.at = at(24)  # alice's grant expires: it takes her membership of sg-prod-db-read with it
        await sweep(h.app.deps, drift=False)
        leaves(h, "bob@example.com", "sg-prod-db-read")  # mark's batch: nothing left to decide
        leaves(h, "deploy-bot@example.com", "sg-prod-db-read")  # pat.lead's batch: sam.sec's item is left

        h.clock.at = at(26)  # 3 business days: the batches with undecided items are reminded
        report = await sweep(h.app.deps, drift=False)
        assert MARK not in " ".join(report.reviews_reminded), report.reviews_reminded
        assert f"RV-1 {PAT}" in report.reviews_reminded
        reminded = {e["data"]["reviewer"]: e["data"]["items"] for e in await h.events("review.reminded")}
        assert MARK not in reminded and reminded[PAT] == [n["sam.sec"]], reminded
        [told] = _dm(slack_api, PAT, "Reminder: RV-1")
        assert f"your decision on 1 item(s) ({n['sam.sec']})" in told, told
        assert _dm(slack_api, MARK, "Reminder: RV-1") == []

        h.clock.at = at(30)  # 5 business days: escalation, not of a batch with nothing left
        await sweep(h.app.deps, drift=False)
        escalated = {e["data"]["reviewer"]: e["data"] for e in await h.events("review.escalated")}
        assert MARK not in escalated and escalated[PAT]["items"] == [n["sam.sec"]], escalated
        assert not [t for t in _dm(slack_api, PAT, "still undecided") if f"of {MARK}" in t]
        assert await h.events("review.item_gone") == []  # the sweep asks nothing of them: the close marks them
