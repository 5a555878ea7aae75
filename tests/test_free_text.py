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


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    """Half an emoji (JSON can carry ``\\ud83d`` alone) cannot be stored as UTF-8: it becomes U+FFFD, a whole
    emoji stays as it is."""
    from handlers.text import clean

    assert clean("looks good \ud83d") == "looks good \ufffd"
    assert clean("\udc00 ok \U0001f600") == "\ufffd ok \U0001f600"
    assert clean("looks good \ud83d").encode("utf-8")


async def test_a_comment_with_half_an_emoji_is_recorded_through_the_cli_service(database_url, tmp_path) -> None:
    async with harness(database_url, tmp_path) as h:
        await h.say("bob@example.com", "request staging-admin for 1h")
        reply = await h.say("mark.mgr@example.com", "approve REQ-1 looks good \ud83d")
        assert reply.ok, reply.text
        assert (await h.request(1)).state == "active"
