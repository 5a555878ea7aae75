"""The drift `gone` grace is not thrown away by one sweep that could not list the group."""

from __future__ import annotations

from handlers.sweeps import sweep
from tests.support import harness

BOB, CAROL = "bob@example.com", "carol@example.com"


def _drop(email: str):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        data["users"] = [u for u in data["users"] if u["email"] != email]
    return change


async def test_one_unreadable_listing_does_not_restart_the_drift_gone_grace(database_url, tmp_path):
    """Carol (drift D-1) really left the group at T. Sweeps at T and T+70min both find her gone: two sweeps at
    least safety.unknown_grace (1h) apart agree, so D-1 resolves `gone` (README). In between, at T+40min, one
    sweep met the directory file mid-rewrite (not valid YAML) and could list nothing. That sweep saw nothing
    either way; it must not erase the time the grace has already run (else a source that is unreadable once
    an hour keeps a finding open forever)."""
    async with harness(database_url, tmp_path) as h:
        h.files.add_to_group("sg-prod-db-read", CAROL)
        report = await sweep(h.app.deps)
        assert report.drift == [f"{CAROL} in directory/sg-prod-db-read"], report.lines()

        def without_carol(data: dict) -> None:
            data["groups"]["sg-prod-db-read"] = [m for m in data["groups"]["sg-prod-db-read"] if m != CAROL]

        h.files.edit_directory(without_carol)
        h.clock.advance(seconds=30)
        await sweep(h.app.deps)  # T: the grace starts
        assert await h.events("drift.resolved") == []
        whole = h.files.directory.read_text()

        h.clock.advance(minutes=40)
        h.files.directory.write_text(whole[: len(whole) // 2] + "\n  - email: [unterminated\n")
        await sweep(h.app.deps)  # unreadable: saw nothing
        h.files.directory.write_text(whole)
        h.files.edit_directory(lambda d: None)

        h.clock.advance(minutes=30)
        await sweep(h.app.deps)  # T+70min: agrees with T
        resolved = await h.events("drift.resolved")
        assert [e["data"]["resolution"] for e in resolved] == ["gone"], [e["data"] for e in resolved]
