"""The Slack review modal left open while someone else decides: the modal pre-selects each item's decision and
Slack sends every pre-selected option back on submit; the modal's private_metadata says what it showed, and a
choice left as shown is not a decision (handlers/reviews/decide.py ``_against_shown``). The campaign (no REQ-1
here): group:security (sam, sasha) reviews 1 (orphan) and 2 (pat.lead), mark 3 (bob), pat 4 and 5."""

from __future__ import annotations

from tests.slack.conftest import SlackHarness
from tests.slack.review_modal_support import SAM, opened, started, submission, with_metadata

SASHA = "sasha.sec@example.com"


async def final(h: SlackHarness) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for e in await h.events("review.decided"):
        out[e["data"]["item"]] = (e["actor"], e["data"]["decision"])
    return out


def prefilled(modal: dict) -> dict[int, str]:
    out = {}
    for b in modal["blocks"]:
        if str(b.get("block_id", "")).startswith("item-") and b.get("element", {}).get("initial_option"):
            out[int(b["block_id"][5:])] = b["element"]["initial_option"]["value"]
    return out


async def test_an_untouched_prefilled_choice_does_not_revert_a_decision_made_while_the_modal_was_open(
        slack: SlackHarness) -> None:
    """Sam keeps 1 and 2. Sasha opens her modal: both pre-selected 'keep (decided by sam)'. While it is open sam
    removes 1 with a reason. Sasha submits without touching anything but adding a note: Slack sends item-1=keep,
    as the modal showed it. The save records a new keep by sasha on 1, reverting sam's removal she never saw."""
    h = slack
    await started(h)
    await h.command(SAM, "keep RV-1 1 2")
    await h.settle()
    assert await final(h) == {1: (SAM, "keep"), 2: (SAM, "keep")}
    modal = await opened(h, SASHA)
    shown = prefilled(modal)
    assert shown == {1: "keep", 2: "keep"}
    await h.command(SAM, "remove RV-1 1 because orphan account, its manager has left")
    await h.settle()
    assert (await final(h))[1] == (SAM, "remove")
    await h.interact(with_metadata(submission(h, "U0SASHA", "RV-1", shown, "looked at both"),
                                   modal["private_metadata"]))
    await h.settle()
    assert (await final(h))[1] == (SAM, "remove"), await final(h)


async def test_an_untouched_prefilled_removal_does_not_demand_a_justification_after_a_change(
        slack: SlackHarness) -> None:
    """Sam removes 1; sasha's modal shows it pre-selected 'remove'. Sam then keeps 1. Sasha keeps 2 (no reason
    needed for a keep) and submits; item-1=remove comes back untouched: the save is refused with 'Say why' and a
    command.refused 'no justification' is recorded against sasha for a removal she never chose."""
    h = slack
    await started(h)
    await h.command(SAM, "remove RV-1 1 because orphan account")
    await h.settle()
    modal = await opened(h, SASHA)
    assert prefilled(modal) == {1: "remove"}
    await h.command(SAM, "keep RV-1 1 because the new manager vouches for it")
    await h.settle()
    await h.interact(with_metadata(submission(h, "U0SASHA", "RV-1", {1: "remove", 2: "keep"}, None),
                                   modal["private_metadata"]))
    await h.settle()
    refused = [e["data"]["reason"] for e in await h.events("command.refused") if e["actor"] == SASHA]
    assert refused == [] and (await final(h)).get(2) == (SASHA, "keep"), (refused, await final(h))
