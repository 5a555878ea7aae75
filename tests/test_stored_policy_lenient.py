"""A policy version the store recorded while it was in force is read as it was accepted then.

The policy check grew stricter (an approval chain no requester could finish is refused since, SPEC §2.1). A
version recorded before, whose exception chain the check refuses today, still judges the requests submitted under
it to their end: their own chain, not the policy in force (which would have decided them by another chain), and the
evidence pack checks their grants against that version's maximum. What makes a file meaningless still fails."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, update

from bot.bootstrap import build_app
from bot.settings import Settings
from handlers.policy import PolicyError, parse_policy
from store import schema as t
from tests.support import Harness, MutableClock, RecordingNotifier, copy_examples

BOB, MARK, DANA = "bob@example.com", "mark.mgr@example.com", "dana.dba@example.com"
SAM, SASHA = "sam.sec@example.com", "sasha.sec@example.com"
STAGING = '''    approval:
      - manager

  - id: analytics-read'''
# one person counts once per request: the second all_of of the same two people can never be met
UNFINISHABLE = '''    approval:
      - manager
    exception:
      approval: [{all_of: security}, {all_of: security}]
      max_duration: 1d

  - id: analytics-read'''


def test_a_stored_version_is_read_without_the_checks_that_came_after_it(tmp_path) -> None:
    files = copy_examples(tmp_path)
    raw = files.policy.read_text().replace(STAGING, UNFINISHABLE).encode()
    with pytest.raises(PolicyError, match="exception chain"):
        parse_policy(raw)  # a new file like it is refused, naming the chain
    stored = parse_policy(raw, stored=True)
    assert stored.profile("staging-admin").exception is not None  # type: ignore[union-attr]
    with pytest.raises(PolicyError):  # a stored file that is meaningless still fails
        parse_policy(raw.replace(b"approval:\n      - manager\n    exception", b"approval: 7\n    exception"),
                     stored=True)


async def test_a_request_of_a_version_refused_today_is_judged_by_its_own_chain(database_url, tmp_path) -> None:
    """The version an older release accepted is in the store as that release wrote it (a row of ``policy_versions``
    and a request naming it, written here with SQL); the policy in force adds a step to the chain."""
    files = copy_examples(tmp_path)
    old = files.policy.read_text().replace(STAGING, UNFINISHABLE).replace('version: "2026.11"', 'version: "2026.10"')
    files.policy.write_text(files.policy.read_text().replace(
        STAGING, STAGING.replace("      - manager\n", "      - manager\n      - {any_of: dba}\n")))
    settings = Settings(database_url=database_url, policy=str(files.policy), directory=str(files.directory))
    async with build_app(settings, clock=MutableClock(), notifier=RecordingNotifier()) as app:
        h = Harness(app, app.deps.clock, RecordingNotifier(), files)  # type: ignore[arg-type]
        reply = await h.say(BOB, "request staging-admin for 1h")
        assert reply.ok and reply.request is not None and len(reply.request.steps) == 2, reply.text
        raw = old.encode()
        sha = hashlib.sha256(raw).hexdigest()
        async with app.store.write() as repo:
            await repo.conn.execute(insert(t.policy_versions).values(sha256=sha, version="2026.10", raw=raw,
                                                                     loaded_at=datetime(2026, 10, 1, tzinfo=UTC)))
            await repo.conn.execute(update(t.requests).where(t.requests.c.id == 1).values(
                policy_sha256=sha, policy_version="2026.10"))
    async with build_app(settings, clock=MutableClock(), notifier=RecordingNotifier()) as app:
        h = Harness(app, app.deps.clock, RecordingNotifier(), files)  # type: ignore[arg-type]
        status = await h.say(BOB, "status REQ-1")
        assert status.request is not None and [s.label for s in status.request.steps] == ["manager"], status.text
        assert status.request.policy_version == "2026.10"
        reply = await h.say(MARK, "approve REQ-1")
        assert reply.ok, reply.text
        assert (await h.request(1)).state == "active"  # its own chain: the manager was all it needed
