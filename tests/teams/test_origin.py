"""Teams events record the channel and the acting person's aadObjectId."""

from __future__ import annotations

from tests.teams.conftest import AAD

BOB, MARK = "bob@example.com", "mark.mgr@example.com"


async def test_teams_events_carry_the_channel_and_the_aad_object_id(teams):
    h = teams
    status, _ = await h.say(BOB, "request staging-admin for 1h")
    assert status == 200
    await h.click(MARK, "approve", {"request_id": 1})
    events = {e["type"]: e for e in await h.events()}
    assert (events["request.submitted"]["data"]["channel"],
            events["request.submitted"]["data"]["channel_user_id"]) == ("teams", AAD[BOB])
    assert (events["approval.granted"]["data"]["channel"],
            events["approval.granted"]["data"]["channel_user_id"]) == ("teams", AAD[MARK])
