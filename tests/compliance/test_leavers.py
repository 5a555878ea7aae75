"""Leavers remove everything in a managed group; a person not found waits for the grace (SPEC §3.6)."""

from __future__ import annotations

from handlers.reports import termination_rows
from handlers.sweeps import sweep
from tests.support import harness

BOB, CAROL, SAM = "bob@example.com", "carol@example.com", "sam.sec@example.com"


class _Events:
    def __init__(self, h) -> None:  # type: ignore[no-untyped-def]
        self.h = h

    async def events_of_type(self, *types: str):  # type: ignore[no-untyped-def]
        for e in await self.h.events():
            if e["type"] in types:
                yield e


async def test_leaver_loses_grants_and_standing_memberships(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        h.files.add_to_group("sg-prod-db-read", BOB)  # standing, added outside the bot
        h.files.add_to_group("sg-staging-admin", BOB)
        assert BOB in await h.members("sg-prod-db-read")
        h.files.set_active(BOB, False)
        h.clock.advance(minutes=5)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [BOB] and report.revoked == ["REQ-1"]
        assert sorted(report.removed) == [f"{BOB} from directory/sg-prod-db-read",
                                          f"{BOB} from directory/sg-staging-admin"]
        for group in ("sg-prod-db-read", "sg-staging-admin", "sg-analytics-read"):
            assert BOB not in await h.members(group), group
        terminated = await h.events("user.terminated")
        assert len(terminated) == 1 and terminated[0]["data"]["memberships"] == [
            "directory/sg-prod-db-read", "directory/sg-staging-admin"]
        revoked = await h.events("grant.revoked")
        assert [(e["request_id"], e["data"]["reason"]) for e in revoked] == [("REQ-1", "terminated")]
        removed = await h.events("membership.removed")
        assert sorted((e["data"]["group"], e["data"]["user"], e["data"]["reason"], e["data"]["provider"])
                      for e in removed) == [("sg-prod-db-read", BOB, "terminated", "directory"),
                                            ("sg-staging-admin", BOB, "terminated", "directory")]
        assert any(n.recipient == SAM and BOB in n.text for n in h.notifier.notices)

        # a second sweep changes nothing, and records no second termination
        before = len(await h.events())
        h.clock.advance(minutes=5)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [] and len(await h.events()) == before

        # added back behind the bot's back: removed again, still one termination
        await h.app.deps.providers["directory"].add_member("sg-prod-db-read", BOB)
        report = await sweep(h.app.deps, drift=False)
        assert report.removed == [f"{BOB} from directory/sg-prod-db-read"]
        assert BOB not in await h.members("sg-prod-db-read")
        assert len(await h.events("user.terminated")) == 1
        assert len(await h.events("membership.removed")) == 3

        rows = await termination_rows(_Events(h), 24)
        assert len(rows) == 1 and rows[0]["user"] == BOB
        assert rows[0]["grants"] == "REQ-1"
        assert rows[0]["memberships"] == "directory/sg-prod-db-read;directory/sg-staging-admin"
        assert rows[0]["within_sla"] == "yes" and float(rows[0]["hours_to_revoke"]) < 1


async def test_unknown_person_waits_for_the_grace(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok
        h.files.add_to_group("sg-prod-db-read", BOB)

        def drop_bob(data: dict) -> None:
            data["users"] = [u for u in data["users"] if u["email"] != BOB]

        h.files.edit_directory(drop_bob)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [] and report.unconfirmed == [BOB]
        assert BOB in await h.members("sg-prod-db-read") and (await h.request(1)).state == "active"
        h.clock.advance(minutes=59)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [] and (await h.request(1)).state == "active"
        assert await h.events("user.terminated") == []

        # found again: the grace starts over when the person disappears once more
        h.files.edit_directory(lambda data: None)
        h.files.set_active(CAROL, True)

        h.clock.advance(minutes=2)  # two sweeps 61 minutes apart: a leaver now
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [BOB] and report.revoked == ["REQ-1"]
        assert BOB not in await h.members("sg-prod-db-read")
        (terminated,) = await h.events("user.terminated")
        assert terminated["data"]["found"] is False


async def test_person_found_again_restarts_the_grace(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-prod-db-read", BOB)
        original = h.files.directory.read_text()

        def drop_bob(data: dict) -> None:
            data["users"] = [u for u in data["users"] if u["email"] != BOB]

        h.files.edit_directory(drop_bob)
        assert (await sweep(h.app.deps, drift=False)).unconfirmed == [BOB]
        h.clock.advance(minutes=40)
        h.files.directory.write_text(original)
        h.files.edit_directory(lambda data: None)
        assert (await sweep(h.app.deps, drift=False)).unconfirmed == []
        h.clock.advance(minutes=40)
        h.files.edit_directory(drop_bob)
        assert (await sweep(h.app.deps, drift=False)).unconfirmed == [BOB]
        h.clock.advance(minutes=40)  # 120 minutes since first missing, but only 40 since missing again
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [] and BOB in await h.members("sg-prod-db-read")


async def test_a_leavers_pending_request_is_withdrawn_and_its_approver_told(database_url, tmp_path):
    """The request is cancelled with the termination; the manager its step asked holds a card with live buttons:
    they are told it was withdrawn (written to the outbox with the cancellation), and their click decides nothing."""
    async with harness(database_url, tmp_path) as h:
        reply = await h.say(BOB, "request staging-admin for 1h")
        assert reply.ok and reply.request.state == "pending", reply.text
        h.files.set_active(BOB, False)
        h.clock.advance(minutes=5)
        report = await sweep(h.app.deps, drift=False)
        assert report.terminated == [BOB]
        [cancelled] = await h.events("request.cancelled")
        assert cancelled["data"]["reason"] == "terminated"
        [told] = [n for n in h.notifier.to("mark.mgr@example.com", "outcome") if n.request_id == 1]
        assert "withdrawn" in told.text and "no longer active" in told.text, told.text
        r = await h.say("mark.mgr@example.com", "approve REQ-1")
        assert not r.ok and "cancelled" in r.text, r.text
