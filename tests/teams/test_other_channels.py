"""The Teams route answers Teams only: an activity of another Bot Framework channel, or naming its tenant
once, is refused.

The Bot Framework channel signs tokens for every channel of the bot's registration (Teams, Web Chat,
Direct Line, ...) with the same keys; what binds a token to a channel is the key's ``endorsements``
and the activity's ``channelId``. In Web Chat / Direct Line the *client* writes ``from`` and
``channelData``: only in Teams does Microsoft vouch for ``from.aadObjectId`` and the tenant. The bot
identifies people by ``from.aadObjectId`` (docs/teams.md §3, SPEC §3.2 "Identity comes from the
authenticated chat user"), so an activity of another channel must never be taken as a Teams user's.
"""

from __future__ import annotations

import pytest

from tests.teams.conftest import (  # noqa: F401  (fixtures)
    AAD,
    TENANT,
    TeamsHarness,
    connector,
    issuer,
    teams_secured,
)

ALICE = "alice@example.com"


async def _pending(h: TeamsHarness) -> list:
    async with h.app.store.read() as repo:
        return await repo.find_requests(states=["pending"])


@pytest.mark.parametrize("channel", ["webchat", "directline", "emulator"])
async def test_an_activity_of_another_bot_framework_channel_does_not_act_as_a_teams_user(
        teams_secured: TeamsHarness, channel: str) -> None:  # noqa: F811
    """A correctly signed token (the stand-in key endorses ``msteams`` only) for an activity whose channel is
    Web Chat / Direct Line, whose client wrote Alice's aadObjectId and the served tenant into the activity:
    refused, nothing recorded."""
    h = teams_secured
    before = len(await h.events())
    act = h.activity("message_personal", ALICE, text="request staging-admin for 2h because INC-1 outage",
                     channelId=channel)
    # what a Direct Line client controls: from (with an aadObjectId) and channelData; the conversation
    # Direct Line makes names no tenant
    act["conversation"].pop("tenantId", None)
    act["channelData"] = {"tenant": {"id": TENANT}}
    act["from"]["aadObjectId"] = AAD[ALICE]
    status, _ = await h.post(act)
    await h.idle()
    pending = await _pending(h)
    assert status in (401, 403) and pending == [], (
        f"a {channel} activity was taken as a Teams user's (HTTP {status}); requests filed: "
        f"{[(r.requester, r.profile) for r in pending]}")
    assert len(await h.events()) == before


async def test_an_activity_naming_its_tenant_once_is_not_admitted(teams_secured: TeamsHarness) -> None:  # noqa: F811
    """docs/teams.md: every activity names its tenant twice and *both* must be served. An activity whose
    conversation names no tenant (only the client-writable channelData does) is admitted today."""
    h = teams_secured
    before = len(await h.events())
    act = h.activity("message_personal", ALICE, text="request staging-admin for 2h because INC-1 outage")
    act["conversation"].pop("tenantId", None)
    status, _ = await h.post(act)
    await h.idle()
    assert status == 403, status
    assert len(await h.events()) == before


async def test_a_token_signed_by_a_key_not_endorsed_for_teams_is_refused(teams_secured: TeamsHarness) -> None:  # noqa: F811
    """The key that signed the token endorses Web Chat and Direct Line only: whatever the activity says of its
    channel, it is no Teams activity (401), and nothing is recorded."""
    h = teams_secured
    assert h.issuer is not None
    h.issuer.endorsements = ["webchat", "directline"]
    try:
        before = len(await h.events())
        status, _ = await h.say(ALICE, "request staging-admin for 2h because INC-1 outage")
        assert status == 401 and len(await h.events()) == before
    finally:
        h.issuer.endorsements = ["msteams"]  # the issuer serves the whole session
