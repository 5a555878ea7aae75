"""The leavers', movers' and approval steps' unattended notices go through the outbox (handlers/outbox.py): a
sweep cut off after it recorded a termination, a revocation or a re-routed step still has them sent, once, by a
later sweep."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from handlers.compliance.views import DriftView, PauseView
from handlers.notice_views import decode_view, encode_view
from handlers.outbox import notice_lease
from handlers.reviews.links import ReviewLink
from handlers.sweeps import sweep
from tests.support import Harness, harness
from tests.test_notice_outbox import Channel, _outbox

BOB, MARK, PAT, SAM = "bob@example.com", "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com"


async def _cut_then_resume(h: Harness) -> Channel:
    """A sweep whose first send is cut off (a stop's grace ran out), then a sweep past the lease."""
    channel = Channel(cut=1)
    h.app.deps.notifier = channel
    try:
        await sweep(h.app.deps, drift=False)
        raise AssertionError("the send was not cut off")
    except asyncio.CancelledError:
        pass
    assert channel.sent == [] and {r["status"] for r in await _outbox(h)} == {"pending"}
    h.clock.advance(seconds=notice_lease(h.app.deps.notifier).total_seconds() + 1)
    await sweep(h.app.deps, drift=False)
    return channel


async def test_a_leavers_notice_cut_off_is_sent_by_the_next_sweep(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        h.files.add_to_group("sg-staging-admin", BOB)
        h.files.set_active(BOB, False)
        channel = await _cut_then_resume(h)
        assert len(await h.events("user.terminated")) == 1 and len(await h.events("grant.revoked")) == 1
        security = sorted(h.app.deps.policy.security_members())
        told = [n for n in channel.sent if "no longer active" in n.text]
        assert sorted(n.recipient for n in told) == security and SAM in security
        assert {n.text for n in told} == {f"{BOB} is no longer active: revoked REQ-1, directory/sg-staging-admin."}
        assert {r["status"] for r in await _outbox(h)} == {"sent"}
        h.clock.advance(hours=1)
        await sweep(h.app.deps, drift=False)
        assert len([n for n in channel.sent if "no longer active" in n.text]) == len(security)


async def test_a_movers_notices_cut_off_are_sent_by_the_next_sweep(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1d")).ok
        assert (await h.say(MARK, "approve REQ-1")).ok

        def finance(data: dict) -> None:
            next(u for u in data["users"] if u["email"] == BOB)["department"] = "Finance"

        h.files.edit_directory(finance)
        channel = await _cut_then_resume(h)
        assert (await h.request(1)).state == "revoked"
        [status] = channel.to(BOB, "status")
        assert "REQ-1" in status.text and "no longer eligible" in status.text and status.request_id == 1
        assert [n.text for n in channel.to(SAM, "info")] == [status.text]


async def test_a_rerouted_steps_cards_cut_off_are_sent_by_the_next_sweep(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request staging-admin for 1h")).ok

        def new_manager(data: dict) -> None:
            next(u for u in data["users"] if u["email"] == BOB)["manager"] = PAT

        h.files.edit_directory(new_manager)
        channel = await _cut_then_resume(h)
        assert len(await h.events("approval.rerouted")) == 1
        [card] = channel.to(PAT, "approval")
        assert card.request_id == 1 and "manager" in card.text
        [told] = channel.to(MARK, "outcome")
        assert "no longer yours" in told.text


async def test_a_drift_findings_card_cut_off_is_sent_by_the_next_sweep_as_a_card(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-prod-db-read", PAT)  # added by hand: no grant behind it
        channel = Channel(cut=1)
        h.app.deps.notifier = channel
        try:
            await sweep(h.app.deps)
            raise AssertionError("the send was not cut off")
        except asyncio.CancelledError:
            pass
        [found] = await h.events("drift.detected")
        assert found["data"]["id"] == "D-1" and channel.sent == []
        h.clock.advance(seconds=notice_lease(h.app.deps.notifier).total_seconds() + 1)
        await sweep(h.app.deps)
        assert len(await h.events("drift.detected")) == 1
        [card] = channel.to(SAM, "drift")
        assert "Drift D-1" in card.text and "drift remove D-1" in card.text
        view = card.view  # the card's view, kept with the notice and given back to the channel
        assert isinstance(view, DriftView), view
        assert (view.id, view.provider, view.group, view.user, view.member, view.escalated) == (
            "D-1", "directory", "sg-prod-db-read", PAT, True, False)

        h.clock.advance(seconds=h.app.deps.policy.safety.drift_sla.total_seconds() + 1)
        await sweep(h.app.deps)  # past the SLA: escalated once, with its card
        [again] = [n for n in channel.to(SAM, "drift") if n.view is not None and n.view.escalated]
        assert "still open past the SLA" in again.text and again.view.id == "D-1"
        assert {r["status"] for r in await _outbox(h)} == {"sent"}


def test_a_stored_view_comes_back_as_it_was_and_an_unknown_one_is_refused() -> None:
    due = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    for view in (DriftView("D-3", "entra", "g", "x@example.com", False, "2026-12-01T00:00:00Z", "REQ-4", True),
                 PauseView("terminated", 12, 5, ("a from p/g", "b from p/g"), "abc"),
                 ReviewLink("RV-2", "Quarterly", 3, due)):
        assert decode_view(encode_view(view)) == view
    assert decode_view(None) is None and decode_view('{"type": "later-kind"}') is None
    with pytest.raises(TypeError):
        encode_view(object())
