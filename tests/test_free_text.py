"""Every free-text field of every command is cleaned and limited at the service, whatever built it."""

from __future__ import annotations

from handlers.grammar import Approve, Extend, RequestAccess, Revoke
from tests.support import harness, hidden_characters

BOB, MARK, SAM = "bob@example.com", "mark.mgr@example.com", "sam.sec@example.com"


async def test_commands_built_by_a_channel_are_cleaned_once(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        svc = h.app.service
        bob, mark, sam = [await svc.identify(x) for x in (BOB, MARK, SAM)]
        r = await svc.handle(bob, RequestAccess("staging-admin", "1h\u202e", "fix\x00 it\u2067", "CHG-1\x1b"))
        assert r.ok, r.text
        r = await svc.handle(mark, Approve(1, "ok" + "!" * 2500))
        assert not r.ok and r.rule == "comment" and "2000" in r.text
        assert await h.events("approval.granted") == []
        assert (await svc.handle(mark, Approve(1, "fine\u202e\x07"))).ok
        assert (await svc.handle(bob, Extend(1, "1h", "more\u2066 time\r\nplease"))).ok
        assert (await svc.handle(sam, Revoke(1, "left\u202e the\x00 team"))).ok
        events = await h.events()
        assert hidden_characters(events) == []
        by_type = {e["type"]: e["data"] for e in events}
        assert by_type["request.submitted"]["justification"] == "fix it"
        assert by_type["request.submitted"]["ticket"] == "CHG-1"
        assert by_type["approval.granted"]["comment"] == "fine"
        assert by_type["request.extension_requested"]["justification"] == "more time please"
        assert by_type["grant.revoked"]["comment"] == "left the team"
