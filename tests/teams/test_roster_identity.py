"""Who a Teams sender is, with the embedded directory as identity source.

docs/teams.md §3: the sender's ``from.aadObjectId`` is looked up in the directory (``aad_object_id``);
only "a sender whose object id is not linked is looked up by the email / UPN of their Teams roster
entry". The directory links alice to one object id; a second Teams account (another object id) whose
roster entry shows alice's address must not become alice: the link the operator wrote says her Teams
account is another one.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.teams.conftest import (  # noqa: F401  (fixtures)
    AAD,
    TeamsHarness,
    connector,
    teams,
)

ALICE = "alice@example.com"
OTHER_OID = "0bad0000-0000-4000-8000-00000000a11c"


async def test_a_roster_email_does_not_override_the_object_id_the_directory_links(
        teams: TeamsHarness) -> None:  # noqa: F811
    h = teams
    act = h.activity("message_personal", "mallory@example.com",
                     text="request staging-admin for 2h because INC-1 outage")
    act["from"]["aadObjectId"] = OTHER_OID  # not alice's linked object id (AAD[ALICE])
    h.connector.roster[act["from"]["id"]] = {"id": act["from"]["id"], "email": ALICE, "userPrincipalName": ALICE,
                                             "objectId": OTHER_OID}
    status, _ = await h.post(act)
    await h.idle()
    assert status == 200
    submitted = await h.events("request.submitted")
    assert submitted == [], (f"a Teams account with object id {OTHER_OID} acted as {ALICE}, whom the directory "
                             f"links to {AAD[ALICE]}: {[(e['actor'], e['request_id']) for e in submitted]}")


async def test_two_people_with_one_aad_object_id_is_a_directory_error(teams: TeamsHarness) -> None:  # noqa: F811
    """Two emails in the directory file are refused (`appears twice`); two people carrying one
    ``aad_object_id`` are not: the Teams account silently becomes whichever comes first in the file."""
    h = teams
    path = Path(h.app.settings.directory)
    data = yaml.safe_load(path.read_text())  # noqa: ASYNC240
    bob = next(u for u in data["users"] if u["email"] == "bob@example.com")
    alice_index = next(i for i, u in enumerate(data["users"]) if u["email"] == ALICE)
    data["users"].remove(bob)
    bob["aad_object_id"] = AAD[ALICE]  # a copy-paste slip: bob now carries alice's object id ...
    data["users"].insert(alice_index, bob)  # ... and stands before her in the file
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # noqa: ASYNC240
    status, _ = await h.say(ALICE, "request staging-admin for 2h because INC-1 outage")
    assert status == 200
    submitted = await h.events("request.submitted")
    assert submitted == [], (f"alice's Teams account (object id {AAD[ALICE]}, which the file gives to two people) "
                             f"acted as {[e['actor'] for e in submitted]}")
