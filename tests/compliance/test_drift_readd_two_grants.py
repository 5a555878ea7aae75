"""A drift re-add queued for one of two grants of the same group (SPEC §3.6): when the grant it was planned for
ends while it waits, the other grant still backs the membership. The re-add is carried out, not dropped, the end
of the one grant does not take the holder out, and the finding closes ``restored`` with the grant that backs the
membership (the holder told so), not ``ended``. Through Okta's stand-in, which answers the first add 503; on
SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.sweeps import sweep
from tests.standins import Fault
from tests.standins.okta import OktaStandIn
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples

ALICE, SAM = "alice@example.com", "sam.sec@example.com"


async def test_a_queued_readd_another_running_grant_backs_lands_restored(database_url, tmp_path: Path):
    with OktaStandIn() as okta:
        gid = okta.add_group("prod-db-read")
        alice = okta.add_user(ALICE, department="Engineering")
        files = copy_examples(tmp_path)
        text = files.policy.read_text()
        for group in ("sg-prod-db-read", "sg-analytics-read"):  # two profiles granting the same Okta group
            text = text.replace(f"    provider: directory\n    group: {group}\n",
                                f"    provider: okta\n    group: {gid}\n", 1)
        files.policy.write_text(text)
        settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory),
                            env={}, identity="directory", okta_url=okta.url, okta_token=okta.token)
        clock, notifier = MutableClock(), RecordingNotifier()
        async with build_app(settings, clock=clock, notifier=notifier) as app:
            h = Harness(app, clock, notifier, files)
            for n, line in ((1, "request prod-db-read for 30m because INC-7 page"),
                            (2, "request analytics-read for 1d because reports")):  # both auto-approved
                r = await h.say(ALICE, line)
                assert r.ok and (await h.request(n)).state == "active", r.text
            path = f"/groups/{gid}/users/{alice}"
            with okta.lock:
                okta.members[gid].remove(alice)  # by hand at Okta, not through the bot
                okta.path_faults[path] = Fault("status", status=503)
            h.clock.advance(minutes=1)
            await sweep(h.app.deps)
            (detected,) = await h.events("drift.detected")
            filed = detected["data"]["request_id"]
            other = "REQ-1" if filed == "REQ-2" else "REQ-2"
            assert ALICE not in okta.member_emails(gid) and not await h.events("membership.added")
            okta.clear_path_faults()

            h.clock.advance(minutes=2)
            r = await h.say(ALICE, f"release {filed}")  # the grant the re-add was planned for ends; the other runs
            assert r.ok, r.text
            assert not okta.received("DELETE", path), "the release took her out although another grant holds it"
            h.clock.advance(minutes=2)
            await sweep(h.app.deps)
            assert ALICE in okta.member_emails(gid)
            assert not await h.events("membership.add_dropped")
            (added,) = await h.events("membership.added")
            assert added["data"]["reason"] == "drift"
            (resolved,) = await h.events("drift.resolved")
            assert (resolved["data"]["resolution"], resolved["data"]["request_id"]) == ("restored", other), resolved
            assert any("added back" in n.text and other in n.text for n in notifier.to(ALICE)), notifier.to(ALICE)
            assert any("added back" in n.text for n in notifier.to(SAM, "drift")), notifier.to(SAM)

            h.clock.advance(minutes=2)
            await sweep(h.app.deps)  # nothing left to settle: she stays, the finding stays resolved
            assert ALICE in okta.member_emails(gid) and len(await h.events("drift.resolved")) == 1
