"""Reviewers' decisions (SPEC §7): keep/remove words with item lists and ranges, refusals (not your item,
your own item, remove without a reason, a stranger), review.opened once with the live check; on SQLite
and PostgreSQL."""

from __future__ import annotations

from tests.reviews.test_start import REVIEW, staff
from tests.support import harness


async def started(h):  # type: ignore[no-untyped-def]
    staff(h.files)
    reply = await h.say("alice@example.com", "request prod-db-read for 30m because INC-7 page")
    assert reply.ok, reply.text
    reply = await h.say("sam.sec@example.com", f"review start {REVIEW}")
    assert reply.ok, reply.text
    async with h.app.store.read() as repo:
        return {i.user: i for i in await repo.items(1)}


async def test_reviewer_decides_own_batch_and_last_decision_counts(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice, bob = items["alice@example.com"].number, items["bob@example.com"].number
        assert {alice, bob} == {3, 4}  # numbered by reviewer: group:security 1-2, mark.mgr 3-4, pat.lead 5-6
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {bob}")
        assert not reply.ok and reply.rule == "reason", reply.text  # justification: remove required
        reply = await h.say("mark.mgr@example.com", "keep RV-1 3-4")
        assert reply.ok and "2 item(s)" in reply.text, reply.text
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because no sign-in since January")
        assert reply.ok, reply.text
        decided = await h.events("review.decided")
        assert [(e["data"]["item"], e["data"]["decision"], e["actor"]) for e in decided] == [
            (3, "keep", "mark.mgr@example.com"), (4, "keep", "mark.mgr@example.com"),
            (bob, "remove", "mark.mgr@example.com")]
        assert decided[-1]["data"] == {**decided[-1]["data"], "review_id": "RV-1", "comment":
                                       "no sign-in since January", "recommendation": "remove"}
        async with h.app.store.read() as repo:
            final = await repo.final_decisions(1)
        assert final[bob].decision == "remove" and final[alice].decision == "keep"
        # all = the asker's own open items only
        reply = await h.say("pat.lead@example.com", "keep RV-1 all")
        assert reply.ok and "2 item(s)" in reply.text, reply.text


async def test_refusals_are_recorded(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        pat_item = items["pat.lead@example.com"].number  # reviewed by the security team
        sam_item = items["sam.sec@example.com"].number  # reviewed by pat.lead
        reply = await h.say("mark.mgr@example.com", f"keep RV-1 {pat_item}")
        assert not reply.ok and reply.rule == "not-your-item", reply.text
        reply = await h.say("sam.sec@example.com", f"keep RV-1 {sam_item}")  # security, but it is sam's own
        assert not reply.ok and reply.rule == "own-item", reply.text
        reply = await h.say("carol@example.com", "keep RV-1 all")
        assert not reply.ok and reply.rule == "not-allowed", reply.text
        reply = await h.say("carol@example.com", "keep RV-9 1")
        assert not reply.ok and reply.rule == "not-allowed", reply.text
        reply = await h.say("mark.mgr@example.com", "keep RV-1 3-x")
        assert not reply.ok and "not an item number" in reply.text, reply.text
        refused = [e["data"]["reason"] for e in await h.events("command.refused")]
        assert refused == ["not the reviewer of the item", "own item", "not a reviewer of it", "not a reviewer of it"]
        assert await h.events("review.decided") == []


async def test_open_records_once_and_the_live_check_marks_gone_and_inactive(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number

        def leave(data: dict) -> None:
            data["groups"]["sg-prod-db-read"].remove("bob@example.com")
            for u in data["users"]:
                if u["email"] == "deploy-bot@example.com":
                    u["active"] = False
        h.files.edit_directory(leave)
        reply = await h.say("mark.mgr@example.com", "review RV-1")
        assert reply.ok and "bob@example.com is no longer in sg-prod-db-read" in reply.text, reply.text
        assert f"{bob}. bob@example.com" in reply.text and "GONE" in reply.text
        reply = await h.say("mark.mgr@example.com", "review RV-1")
        assert reply.ok
        opened = await h.events("review.opened")
        assert len(opened) == 1 and opened[0]["data"]["reviewer"] == "mark.mgr@example.com"
        (gone,) = await h.events("review.item_gone")
        assert gone["data"]["item"] == bob and gone["data"]["review_id"] == "RV-1"
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left")
        assert not reply.ok and reply.rule == "gone", reply.text
        reply = await h.say("pat.lead@example.com", "review RV-1")
        assert "deploy-bot@example.com is no longer active" in reply.text, reply.text
