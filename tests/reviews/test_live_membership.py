"""The live check (SPEC §7): nobody certifies a stale snapshot, and the review never records a removal of a
membership that had already gone. An item whose person left its group before a decision is gone (whether the
reviewer opened the batch, decided in words without opening it, or left it to the close's default); an item
decided before its person left keeps its decision, and its removal finds nothing to remove. On SQLite and
PostgreSQL."""

from __future__ import annotations

from tests.reviews.test_decisions import started
from tests.support import harness


def leaves(h, email: str, group: str) -> None:  # type: ignore[no-untyped-def]
    h.files.edit_directory(lambda d: d["groups"][group].remove(email))


async def removed_events(h, email: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [e for e in await h.events("membership.removed") if e["data"]["user"] == email]


async def test_a_removal_decided_in_words_after_the_member_left_is_refused_and_the_item_gone(database_url,
                                                                                            tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob, alice = items["bob@example.com"].number, items["alice@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {alice}")).ok
        for who in ("sam.sec@example.com", "pat.lead@example.com"):
            assert (await h.say(who, "keep RV-1 all")).ok
        leaves(h, "bob@example.com", "sg-prod-db-read")  # by other means, before mark decides
        reply = await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because no sign-in since January")
        assert not reply.ok and reply.rule == "gone", reply.text
        (gone,) = await h.events("review.item_gone")
        assert (gone["actor"], gone["data"]["item"]) == ("mark.mgr@example.com", bob)
        assert (await h.say("sasha.sec@example.com", "review close RV-1")).ok
        (closed,) = await h.events("review.closed")
        assert closed["data"]["gone"] == 1, closed["data"]
        assert await removed_events(h, "bob@example.com") == []


async def test_keep_all_after_a_member_left_decides_the_others_and_says_which_is_gone(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob, alice = items["bob@example.com"].number, items["alice@example.com"].number
        leaves(h, "bob@example.com", "sg-prod-db-read")
        reply = await h.say("mark.mgr@example.com", "keep RV-1 all")
        assert reply.ok and f"keep recorded for 1 item(s) ({alice})" in reply.text, reply.text
        assert f"1 item(s) gone, nothing to decide: no longer in their group ({bob})" in reply.text, reply.text
        assert [e["data"]["item"] for e in await h.events("review.decided")] == [alice]


async def test_an_undecided_item_whose_member_left_is_gone_at_the_close_not_removed(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        alice, bob = items["alice@example.com"].number, items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", f"keep RV-1 {alice}")).ok  # bob's item stays undecided
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        leaves(h, "bob@example.com", "sg-prod-db-read")
        assert (await h.say("sasha.sec@example.com", "review close RV-1")).ok  # if_not_reviewed: remove
        (gone,) = await h.events("review.item_gone")
        assert (gone["actor"], gone["data"]["item"]) == ("system", bob)
        assert [e for e in await h.events("review.decided") if e["data"]["item"] == bob] == []
        (closed,) = await h.events("review.closed")
        assert closed["data"]["gone"] == 1, closed["data"]
        assert await removed_events(h, "bob@example.com") == []


async def test_a_decision_made_before_the_member_left_stands_and_removes_nothing(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        for who in ("mark.mgr@example.com", "sam.sec@example.com", "pat.lead@example.com"):
            assert (await h.say(who, "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because no sign-in since January")).ok
        leaves(h, "bob@example.com", "sg-prod-db-read")
        assert (await h.say("mark.mgr@example.com", "review RV-1")).ok  # re-opened: the live check runs
        assert await h.events("review.item_gone") == []
        reply = await h.say("mark.mgr@example.com", f"keep RV-1 {bob} because changed my mind")
        assert not reply.ok and reply.rule == "gone", reply.text  # nothing to decide any more
        assert (await h.say("sasha.sec@example.com", "review close RV-1")).ok
        assert (await h.say("sam.sec@example.com", "approve RV-1")).ok
        async with h.app.store.read() as repo:
            item = next(i for i in await repo.items(1) if i.number == bob)
            final = await repo.final_decisions(1)
        assert final[bob].decision == "remove"
        assert "nothing to remove" in (item.outcome or "") and "before a decision" not in (item.outcome or "")
        (closed,) = await h.events("review.closed")
        assert (closed["data"]["gone"], closed["data"]["removed"]) == (0, 1), closed["data"]
        assert await removed_events(h, "bob@example.com") == []
