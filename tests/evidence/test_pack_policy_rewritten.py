"""The policy files of a pack come from the store's policy_versions table, which the serving role may UPDATE
(every table but audit_events). A version whose stored text no longer has the SHA-256 it is filed under (and
that the chain's events name) is a store that contradicts the chain: `accessbot evidence export` refuses, names
the version and writes no file. Before, the rewritten text went into policy/ under the recorded SHA-256, and the
pack was written (and signed, with a key) although its own verify_pack.py fails it."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from store import schema as t
from store.db import make_sync_engine
from tests.support import MutableClock, cli, harness

REFUSED = "no evidence pack written: the database contradicts the audit chain"


async def test_a_rewritten_policy_version_stops_the_export(database_url, tmp_path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    async with harness(database_url, tmp_path, clock=MutableClock(now)) as h:
        assert (await h.say("alice@example.com", "request staging-admin for 1h because deploy")).ok
        files = h.files
    first, last = (now - timedelta(days=1)).date().isoformat(), (now + timedelta(days=1)).date().isoformat()
    honest = tmp_path / "honest.zip"
    done = cli("evidence", "export", "--from", first, "--to", last, "--out", str(honest), db=database_url,
               files=files)
    assert done.returncode == 0, done.stdout + done.stderr

    engine = make_sync_engine(database_url)
    try:
        with engine.begin() as conn:
            sha, raw = conn.execute(select(t.policy_versions.c.sha256, t.policy_versions.c.raw)).first()
            assert hashlib.sha256(bytes(raw)).hexdigest() == sha
            conn.execute(update(t.policy_versions).where(t.policy_versions.c.sha256 == sha).values(
                raw=bytes(raw).replace(b"staging-admin", b"staging-admln", 1)))
    finally:
        engine.dispose()
    out = tmp_path / "forged.zip"
    done = cli("evidence", "export", "--from", first, "--to", last, "--out", str(out), db=database_url, files=files)
    assert done.returncode == 1, done.stdout + done.stderr
    assert REFUSED in done.stdout + done.stderr and sha[:12] in done.stdout + done.stderr, done.stdout + done.stderr
    assert not out.exists()
