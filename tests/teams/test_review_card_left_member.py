"""A reviewer's card stays usable after a member whose item they had already decided leaves the group.

SPEC §7: "an item no longer in the group is shown as gone and cannot be decided", and a decided item keeps
its decision. The card (and the Slack modal) still shows such an item with its
keep/remove choice prefilled with the recorded decision, so every save posts it back (Teams sends every
input's value; "keep all" takes every item the card showed that is not shown gone). handlers/reviews/decide.py
``decide`` skips that item's choice and records the others; refusing the whole submission ("item gone") would
leave the reviewer unable to save anything on that page."""

from __future__ import annotations

from pathlib import Path

from tests.reviews.test_start import staff  # noqa: F401
from tests.support import Files
from tests.teams.cardcheck import check_card, texts_of
from tests.teams.conftest import TeamsHarness, connector, teams  # noqa: F401
from tests.teams.test_review_card_submits import bulk_data, save_data
from tests.teams.test_reviews import MARK, inputs, started


async def test_card_save_after_a_decided_member_left(teams: TeamsHarness) -> None:  # noqa: F811
    h = teams
    await started(h)  # mark reviews alice (3) and bob (4)
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-4": "remove",
                                                     "comment": "no sign-in since January"}))
    assert "remove recorded for 1 item(s) (4)" in texts_of(card), texts_of(card)
    files = Files(Path(h.app.settings.policy), Path(h.app.settings.directory))
    files.edit_directory(lambda d: d["groups"]["sg-prod-db-read"].remove("bob@example.com"))  # bob leaves

    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    shown = inputs(card)
    # what the card posts back when mark picks keep for alice and presses save
    data = {**save_data(card), **{k: v for k, v in shown.items() if k.startswith("item-") and v},
            "item-3": "keep", "comment": "on call"}
    card = check_card(await h.click(MARK, "review", data))
    kept = [e for e in await h.events("review.decided") if e["data"]["item"] == 3]
    assert kept and kept[-1]["data"]["decision"] == "keep", (shown, texts_of(card))


async def test_keep_all_on_the_card_after_a_decided_member_left(teams: TeamsHarness) -> None:  # noqa: F811
    h = teams
    await started(h)
    card = check_card(await h.click(MARK, "review", {"review_id": "RV-1", "page": 0, "shown": {}, "item-4": "remove",
                                                     "comment": "no sign-in since January"}))
    assert "remove recorded" in texts_of(card), texts_of(card)
    files = Files(Path(h.app.settings.policy), Path(h.app.settings.directory))
    files.edit_directory(lambda d: d["groups"]["sg-prod-db-read"].remove("bob@example.com"))
    card = check_card(await h.click(MARK, "refresh", {"review_id": "RV-1", "page": 0}))
    card = check_card(await h.click(MARK, "review", {**bulk_data(card, "keep"), "comment": "on call"}))
    kept = [e for e in await h.events("review.decided") if e["data"]["item"] == 3]
    assert kept and kept[-1]["data"]["decision"] == "keep", texts_of(card)
