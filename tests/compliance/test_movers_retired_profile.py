"""Movers (SPEC §3.6): a grant whose profile a later policy version dropped is still judged, by the version it
was granted under: retiring a profile must not let its holders keep access they are no longer eligible for."""

from __future__ import annotations

import re

from handlers.policy import load_policy
from handlers.sweeps import sweep
from tests.support import harness

BOB = "bob@example.com"


def _move(h, email: str, department: str) -> None:  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] == email:
                u["department"] = department

    h.files.edit_directory(change)


async def test_a_mover_loses_a_grant_of_a_profile_the_policy_no_longer_has(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        assert (await h.say(BOB, "request analytics-read for 1d")).ok  # auto-approved: Engineering
        assert (await h.request(1)).state == "active"

        text = h.files.policy.read_text()
        retired = re.sub(r"\n  - id: analytics-read\n(?:    .*\n|      .*\n)*", "\n", text)
        assert "analytics-read" not in retired
        h.files.policy.write_text(retired.replace('version: "2026.11"', 'version: "2026.12"'))
        h.app.deps.policy = load_policy(h.files.policy)
        await h.app.service.start()

        assert (await sweep(h.app.deps, drift=False)).revoked == []  # still eligible by its version
        _move(h, BOB, "Sales")
        report = await sweep(h.app.deps, drift=False)
        assert report.revoked == ["REQ-1"], report.lines()
        (revoked,) = await h.events("grant.revoked")
        assert revoked["data"]["reason"] == "ineligible: not eligible"
        assert BOB not in await h.members("sg-analytics-read")
