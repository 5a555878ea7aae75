"""A mover whose grant was approved but not yet provisioned (SPEC §3.6): Graph refused the add (503) when the last
approval landed, so the grant waits, `approved`, for the retry. The holder then moves out of Engineering. The
sweep judges the grant as it judges a running one (the leaver sweep already ends such a grant): revoked, reason
`ineligible: not eligible`, and the add that was never carried out is dropped. The provider coming back must not
add someone the profile no longer admits, not even until the next sweep."""

from __future__ import annotations

from tests.faults.conftest import World, utc_in

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


def _move(data: dict) -> None:
    for u in data["users"]:
        if u["email"] == BOB:
            u["department"] = "Finance"


def test_a_grant_waiting_for_its_add_is_revoked_when_its_holder_moves(world: World) -> None:
    graph = world.graph
    world.chat(BOB, "request entra-ops for 1h")
    graph.writes_only = True  # look-ups answer; the membership write is refused
    graph.down(status=503, retry_after=0.05)
    assert "Approved REQ-1" in world.chat(MARK, "approve REQ-1")
    assert world.state(1) == "approved"

    world.files.edit_directory(_move)
    out = world.sweep(as_of=utc_in(seconds=20))
    assert world.state(1) == "revoked", out
    (revoked,) = [e for e in world.events() if e["type"] == "grant.revoked"]
    assert revoked["request_id"] == "REQ-1" and revoked["data"]["reason"] == "ineligible: not eligible"

    graph.up()
    world.sweep(as_of=utc_in(seconds=40))
    world.sweep(as_of=utc_in(seconds=80))
    assert graph.member_emails(world.entra_group) == []
    assert 204 not in [r.status for r in graph.received("POST", "/members/$ref")]  # never added
    assert world.event_counts("REQ-1")["grant.provisioned"] == 0
    world.verify()
