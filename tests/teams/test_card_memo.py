"""A card click's answer is built once while what it shows stays the same, and again as soon as anything it shows
changes: the request, its chain, the people in it, whether the one who clicks may decide it or asked for it, the
note. Approvers who may all decide the open step get one card: it shows nothing else of who clicked."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.teams import invoke
from tests.teams.cardcheck import actions_of, texts_of
from tests.teams.conftest import TeamsHarness

BOB, MARK, DANA = "bob@example.com", "mark.mgr@example.com", "dana.dba@example.com"
SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"


def retitle(path: Path, email: str, title: str) -> None:
    data = yaml.safe_load(path.read_text())
    for user in data["users"]:
        if user["email"] == email:
            user["title"] = title
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def verbs(card: dict) -> list[str]:
    return [a.get("verb") for a in actions_of(card)]


async def test_a_card_refreshed_again_is_built_once_and_follows_every_change(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    assert h.channel is not None
    invokes = h.channel.bot.invokes
    for email in (BOB, MARK, DANA, SAM, SASHA):
        await h.post(h.activity("installation_update_add", email))
    await h.say(BOB, "request prod-db-read for 2h because INC-7 memo check ticket INC-7")
    built = invokes.built
    first = await h.click(MARK, "refresh", {"request_id": 1})
    again = await h.click(MARK, "refresh", {"request_id": 1})
    assert again == first and verbs(first) == ["approve", "deny"]
    assert invokes.built == built + 1  # the second refresh answered with the card the first built

    # someone who may not see the request is refused, never answered with the card kept for it
    pat = await h.click("pat.lead@example.com", "refresh", {"request_id": 1})
    assert verbs(pat) == [] and "You may not see this request." in texts_of(pat) and "INC-7" not in str(pat)
    # another viewer gets their own card, never the one kept for Mark
    dana = await h.click(DANA, "refresh", {"request_id": 1})
    assert verbs(dana) == [] and invokes.built == built + 2
    # the requester gets the status card
    own = await h.click(BOB, "refresh", {"request_id": 1})
    assert own != first and verbs(own) == [] and invokes.built == built + 3

    # a fact the card shows changes in the directory file: the card shows it at the next refresh
    retitle(Path(h.app.settings.directory), BOB, "Principal Engineer Memo")
    changed = await h.click(MARK, "refresh", {"request_id": 1})
    assert "Principal Engineer Memo" in texts_of(changed) and "Principal Engineer Memo" not in texts_of(first)

    # a decision: Mark's buttons go, Dana's come
    await h.say(MARK, "approve REQ-1")
    decided = await h.click(MARK, "refresh", {"request_id": 1})
    assert verbs(decided) == [] and "approved by mark.mgr@example.com" not in texts_of(first)
    assert verbs(await h.click(DANA, "refresh", {"request_id": 1})) == ["approve", "deny"]
    await h.say(DANA, "approve REQ-1")

    # the security step (2 of security): both members may decide it, and both get the one card built for it
    built = invokes.built
    sam = await h.click(SAM, "refresh", {"request_id": 1})
    sasha = await h.click(SASHA, "refresh", {"request_id": 1})
    assert verbs(sam) == ["approve", "deny"] and sasha == sam and invokes.built == built + 1
    # once Sam has decided, his card is another: Sasha's still has its buttons
    await h.say(SAM, "approve REQ-1")
    sam = await h.click(SAM, "refresh", {"request_id": 1})
    sasha = await h.click(SASHA, "refresh", {"request_id": 1})
    assert verbs(sam) == [] and verbs(sasha) == ["approve", "deny"]


async def test_the_cards_kept_are_bounded(teams: TeamsHarness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    h = teams
    assert h.channel is not None
    invokes = h.channel.bot.invokes
    monkeypatch.setattr(invoke, "CARDS_KEPT", 2)
    for email in (BOB, MARK, DANA):
        await h.post(h.activity("installation_update_add", email))
    await h.say(BOB, "request prod-db-read for 2h because INC-7 memo check ticket INC-7")
    for email in (MARK, DANA, BOB, MARK):  # three cards kept at most two: Mark's was let go and is built again
        await h.click(email, "refresh", {"request_id": 1})
    assert len(invokes._cards) == 2
    built = invokes.built
    await h.click(BOB, "refresh", {"request_id": 1})
    assert invokes.built == built
