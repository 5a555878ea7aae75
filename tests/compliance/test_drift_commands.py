"""Drift findings get D-n ids and are resolved from chat; old ones are escalated once (SPEC §3.6)."""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.support import harness

PAT, BOB, ALICE, SAM = "pat.lead@example.com", "bob@example.com", "alice@example.com", "sam.sec@example.com"


async def test_drift_is_listed_removed_from_chat_gone_and_escalated(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-prod-db-read", PAT)
        h.files.add_to_group("sg-staging-admin", ALICE)
        report = await sweep(h.app.deps)
        assert len(report.drift) == 2
        detected = {e["data"]["user"]: e["data"]["id"] for e in await h.events("drift.detected")}
        assert sorted(detected.values()) == ["D-1", "D-2"]
        pat_id, alice_id = detected[PAT], detected[ALICE]
        assert any(pat_id in n.text and "drift remove" in n.text for n in h.notifier.to(SAM, "drift"))

        listing = await h.say(SAM, "drift")
        assert listing.ok and pat_id in listing.text and alice_id in listing.text
        refused = await h.say(BOB, f"drift remove {pat_id} because no")
        assert not refused.ok and refused.rule == "security-only"
        assert (await h.events("command.refused"))[-1]["data"]["command"] == "drift remove"
        assert (await h.say(SAM, f"drift remove {pat_id}")).rule == "reason"
        assert (await h.say(SAM, "drift remove D-99 because x")).rule == "not-found"

        r = await h.say(SAM, f"drift remove {pat_id} because no approval on record")
        assert r.ok and "resolved" in r.text, r.text
        assert PAT not in await h.members("sg-prod-db-read")
        (removed,) = await h.events("membership.removed")
        assert removed["data"] | {"correlation_id": None, "as_of": None} == {"as_of": None,
            "provider": "directory", "group": "sg-prod-db-read", "user": PAT, "reason": "drift", "correlation_id": None}
        (resolved,) = await h.events("drift.resolved")
        assert resolved["data"]["id"] == pat_id and resolved["data"]["resolution"] == "removed"
        assert (await h.say(SAM, f"drift remove {pat_id} because again")).rule == "resolved"

        # open past the SLA: escalated once, also after the sweeps forget a day's inbound event keys
        h.clock.advance(hours=25)
        await sweep(h.app.deps)
        await sweep(h.app.deps)
        assert [e["data"]["id"] for e in await h.events("drift.escalated")] == [alice_id]
        for _ in range(3):
            h.clock.advance(days=1)
            await sweep(h.app.deps)
        assert [e["data"]["id"] for e in await h.events("drift.escalated")] == [alice_id]

        # the member leaves by other means: resolved as gone once two sweeps an unknown grace apart agree
        await h.app.deps.providers["directory"].remove_member("sg-staging-admin", ALICE)
        await sweep(h.app.deps)
        assert [e for e in await h.events("drift.resolved") if e["data"]["id"] == alice_id] == []
        h.clock.advance(hours=1)
        await sweep(h.app.deps)
        gone = [e["data"] for e in await h.events("drift.resolved") if e["data"]["id"] == alice_id]
        assert len(gone) == 1 and gone[0]["resolution"] == "gone"
        assert (await h.say(SAM, "drift")).text == "No open drift findings."
