"""The policy and the directory file are parsed once, and again only when their bytes change."""

from __future__ import annotations

import os

from handlers.policy import policy_parses
from tests.support import harness

ALICE, MARK = "alice@example.com", "mark.mgr@example.com"


async def test_files_are_parsed_again_when_and_only_when_their_bytes_change(sqlite_url, tmp_path) -> None:
    async with harness(sqlite_url, tmp_path) as h:
        directory = h.app.deps.providers["directory"]
        await h.say(ALICE, "status")
        policy_before, directory_before = policy_parses(), directory.parses
        assert directory_before == 1
        for i in range(5):
            reply = await h.say(ALICE, f"request staging-admin for 1h because deploy {i}")
            assert reply.ok, reply.text
            assert (await h.say(MARK, f"approve REQ-{i + 1}")).ok
            assert (await h.say(ALICE, f"release REQ-{i + 1}")).ok
            await h.say(ALICE, "status")
        assert (policy_parses(), directory.parses) == (policy_before, directory_before), "no parse per command"

        # the same bytes with a new modification time (a touch, a copy of the same file): read, not parsed
        st = h.files.directory.stat()
        os.utime(h.files.directory, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
        await h.say(ALICE, "status")
        assert directory.parses == directory_before

        # new bytes: parsed once, and the change is seen by the very next command
        h.files.set_active(ALICE, False)
        reply = await h.say(ALICE, "request staging-admin for 1h because deploy again")
        assert not reply.ok
        assert directory.parses == directory_before + 1
        await h.say(MARK, "status")
        await h.say(ALICE, "status")
        assert directory.parses == directory_before + 1
        assert policy_parses() == policy_before, "no policy parse per command (a changed file: test_policy_reload)"
