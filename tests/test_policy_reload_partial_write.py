"""A policy file read while it is still being written must not be put in force.

The watch reads the file as soon as its ``stat`` changed and installs whatever parses. A file written
in more than one go (``curl https://config/policy.yaml > policy.yaml`` over a slow link, a script that
writes it line by line, an editor writing in blocks) is seen half-written; a prefix cut at a line end is
often a valid policy. Here the prefix ends inside ``prod-k8s-admin``'s chain, after ``- owner`` and
before ``- {any_of: security}``: that version is recorded (``policy.loaded``, with the very label of the
full file), and a request filed in the window is judged by it "to its end" (SPEC §2.1): the owner alone
grants production cluster-admin that needs the security team's approval in every version the operator
ever wrote.
"""

from __future__ import annotations

import asyncio

from bot.policy_watch import PolicyWatch
from tests.support import EXAMPLES, harness

ALICE, PAT = "alice@example.com", "pat.lead@example.com"


async def test_a_half_written_policy_file_is_not_put_in_force(sqlite_url, tmp_path) -> None:
    async with harness(sqlite_url, tmp_path) as h:
        watch = PolicyWatch(h.app, h.files.policy)
        new = (EXAMPLES / "policy.yaml").read_bytes().replace(b'"2026.11"', b'"2026.12"')
        cut = len(b"\n".join(new.split(b"\n")[:83])) + 1  # ... approval:\n      - owner\n
        with open(h.files.policy, "wb", buffering=0) as f:  # noqa: ASYNC230 - the writer: one block, then the rest
            f.write(new[:cut])
            await watch.check()  # serve's 2-second check (or chat's next line) lands in between
            r = await h.say(ALICE, "request prod-k8s-admin for 2h because INC-42 node pressure")
            assert r.ok, r.text
            f.write(new[cut:])
        for _ in range(10):  # the whole file is in force a moment later
            await watch.check()
            if h.app.deps.policy.raw == new:
                break
            await asyncio.sleep(0.5)
        assert h.app.deps.policy.raw == new
        await h.say(PAT, "approve REQ-1 owner ok")
        req = await h.request(1)
        loaded = [e["data"]["sha256"] for e in await h.events("policy.loaded")]
        assert req.state != "active", (
            f"REQ-1 is active on the owner's approval alone: filed under {req.policy_version} "
            f"{req.policy_sha256[:12]}, the bytes of a half-written file ({len(loaded)} policy.loaded events)")
