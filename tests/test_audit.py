"""The audit chain: verification names the first bad seq; PostgreSQL refuses edits itself."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from handlers.audit import GENESIS, ChainVerifier, canonical_body, canonical_json
from store.db import make_sync_engine
from tests.support import chat, cli, copy_examples
from tests.tamper import tamper


@pytest.fixture
def recorded(database_url, tmp_path):
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", "request analytics-read for 1d",
         "request prod-db-read for 1h because INC-1 x", db=database_url, files=files)
    chat("mark.mgr@example.com", "approve REQ-1", db=database_url, files=files)
    out = cli("audit", "verify", db=database_url, check=True).stdout
    assert out.startswith("OK ")
    return database_url


def _tamper(url: str, *statements: str | tuple[str, dict]) -> None:
    tamper(url, *statements)


def _verify(url: str) -> tuple[int, str]:
    r = cli("audit", "verify", db=url)
    assert "Traceback" not in r.stderr
    return r.returncode, r.stdout.strip()


def test_verify_ok_prints_count_and_head(recorded):
    code, out = _verify(recorded)
    events = [json.loads(x) for x in cli("audit", "export", db=recorded, check=True).stdout.splitlines()]
    assert code == 0 and out == f"OK {len(events)} events {events[-1]['hash']}"


def test_edit_detected(recorded):
    _tamper(recorded, "UPDATE audit_events SET actor = 'mallory@example.com' WHERE seq = 4")
    assert _verify(recorded) == (1, "BROKEN at seq 4: hash does not match")


def test_edit_of_data_detected(recorded):
    _tamper(recorded, """UPDATE audit_events SET data = '{"rule":"x"}' WHERE seq = 3""")
    code, out = _verify(recorded)
    assert code == 1 and "seq 3" in out


def test_delete_detected(recorded):
    _tamper(recorded, "DELETE FROM audit_events WHERE seq = 5")
    code, out = _verify(recorded)
    assert code == 1 and out.startswith("BROKEN at seq 5")


def test_reorder_detected(recorded):
    _tamper(recorded, "UPDATE audit_events SET seq = 1000 WHERE seq = 3",
            "UPDATE audit_events SET seq = 3 WHERE seq = 4",
            "UPDATE audit_events SET seq = 4 WHERE seq = 1000")
    code, out = _verify(recorded)
    assert code == 1 and out.startswith("BROKEN at seq 3")


def test_rehashed_tail_still_detected(recorded):
    """Editing an event and recomputing its own hash breaks the next event's prev_hash."""
    engine = make_sync_engine(recorded)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM audit_events WHERE seq = 2")).mappings().one()
    engine.dispose()
    from handlers.audit import event_hash

    body = {k: row[k] for k in ("seq", "ts", "type", "actor", "request_id", "profile", "prev_hash")}
    body["data"] = {"forged": True}
    digest = event_hash(row["prev_hash"], body)
    _tamper(recorded, ("UPDATE audit_events SET data = :d, hash = :h WHERE seq = 2",
                       {"d": '{"forged":true}', "h": digest}))
    code, out = _verify(recorded)
    assert code == 1 and out.startswith("BROKEN at seq 3")


@pytest.mark.postgres
def test_postgres_refuses_update_and_delete(pg_url, tmp_path):
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", db=pg_url, files=files)
    engine = make_sync_engine(pg_url)
    for statement in ("UPDATE audit_events SET actor = 'x' WHERE seq = 1", "DELETE FROM audit_events",
                      "TRUNCATE audit_events"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    engine.dispose()
    assert _verify(pg_url)[0] == 0


def test_sqlite_refuses_an_insert_over_an_existing_event(sqlite_url, tmp_path):
    """``REPLACE`` deletes the old row without firing SQLite's DELETE guard: a BEFORE INSERT guard refuses an
    insert whose seq is taken, whatever its conflict clause (migration 0011)."""
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", db=sqlite_url, files=files)
    engine = make_sync_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM audit_events WHERE seq = 1")).mappings().one()
        forged = {**row, "actor": "mallory@example.com"}
        columns = ", ".join(forged)
        values = ", ".join(f":{c}" for c in forged)
        for verb in ("INSERT OR REPLACE", "REPLACE", "INSERT OR IGNORE", "INSERT"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(f"{verb} INTO audit_events ({columns}) VALUES ({values})"), forged)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit_events WHERE seq = 1")).scalar() == row["actor"]
    finally:
        engine.dispose()
    assert _verify(sqlite_url)[0] == 0
    chat("bob@example.com", "request analytics-read for 1d", db=sqlite_url, files=files)  # appends still work
    assert _verify(sqlite_url)[0] == 0


def test_sqlite_refuses_a_replace_on_an_events_hidden_rowid(sqlite_url, tmp_path):
    """``seq`` is a BIGINT primary key, not an alias of SQLite's rowid: the table has a second key. A REPLACE
    naming an event's rowid with a free seq removed the event (the conflict resolved as a delete no guard
    sees), and a second one put a forged event back under the old seq."""
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", db=sqlite_url, files=files)
    columns = "seq, ts, type, actor, request_id, profile, data, prev_hash, hash"
    engine = make_sync_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            row = dict(conn.execute(text(f"SELECT rowid AS r, {columns} FROM audit_events WHERE seq = 1"))
                       .mappings().one())
        for seq in (10**9, 1):
            with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
                conn.execute(text(f"INSERT OR REPLACE INTO audit_events (rowid, {columns}) VALUES (:r, :seq, :ts, "
                                  ":type, 'mallory@example.com', :request_id, :profile, :data, :prev_hash, :hash)"),
                             {**row, "seq": seq})
        with engine.connect() as conn:
            assert conn.execute(text("SELECT actor FROM audit_events WHERE seq = 1")).scalar() == row["actor"]
            assert conn.execute(text("SELECT count(*) FROM audit_events WHERE seq = :s"), {"s": 10**9}).scalar() == 0
    finally:
        engine.dispose()
    assert _verify(sqlite_url)[0] == 0


def test_a_row_planted_at_rowid_minus_one_does_not_stop_the_audit_log(sqlite_url, tmp_path):
    """SQLite shows an insert that names no rowid (every insert of the bot) to a BEFORE INSERT trigger with
    ``NEW.rowid`` -1: the guard compares rowids above 0 only, so a row planted at -1 does not refuse every
    later event."""
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h", db=sqlite_url, files=files)
    engine = make_sync_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO audit_events (rowid, seq, ts, type, actor, request_id, profile, data, prev_hash, hash) "
                "SELECT -1, 10000000000, ts, type, 'mallory@example.com', request_id, profile, data, prev_hash, "
                "hash FROM audit_events WHERE seq = 1"))
    finally:
        engine.dispose()
    out = chat("bob@example.com", "request analytics-read for 1d", db=sqlite_url, files=files)
    assert "append-only" not in out and "REQ-2" in out, out


def test_an_event_time_is_written_as_it_always_was() -> None:
    """The text of ``ts`` is in every event's hash: a faster way of writing it must write the same text."""
    import random
    from datetime import timezone

    from handlers.audit import format_ts

    def before(moment: datetime) -> str:
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    pick = random.Random(7)
    for _ in range(20_000):
        offset = timezone(timedelta(minutes=pick.randint(-720, 720)))
        moment = datetime(pick.randint(2, 9998), pick.randint(1, 12), pick.randint(1, 28), pick.randint(0, 23),
                          pick.randint(0, 59), pick.randint(0, 59), pick.randint(0, 999_999), tzinfo=offset)
        assert format_ts(moment) == before(moment)
    assert format_ts(datetime(2026, 11, 23, 8, 0, 0, 999_999, tzinfo=UTC)) == "2026-11-23T08:00:00.999Z"


async def test_an_appended_event_hashes_as_its_body_says(database_url: str) -> None:
    """The store hashes the body as the verifiers assemble it from its columns; that is the hash of the event's
    canonical JSON, whatever its data holds."""
    from handlers.audit import event_hash
    from store.db import upgrade
    from store.repository import SqlStore

    upgrade(database_url)
    store = SqlStore(database_url)
    odd = {"reason": "naïve “quotes” \\ \" \u202e\u0000 ☃", "n": 3, "f": 1.5, "none": None, "yes": True,
           "list": [1, "two", {"b": 2, "a": 1}], "nested": {"z": [], "é": {}}}
    try:
        async with store.write() as repo:
            events = [await repo.append("test.event", actor="bob@example.com", ts=datetime.now(UTC), data=odd),
                      await repo.append("test.event", actor="Zoë <z@example.com>", ts=datetime.now(UTC),
                                        request_id="REQ-9", profile="prod-db-read", data={})]
        for e in events:
            body = {k: getattr(e, k) for k in ("seq", "ts", "type", "actor", "request_id", "profile", "data",
                                               "prev_hash")}
            assert event_hash(e.prev_hash, body) == e.hash
        assert (await store.verify_audit()).ok
    finally:
        await store.close()


def _stored_chain(datas: list[str]) -> list[tuple[int, str, str, str, str]]:
    """(seq, prev_hash, hash, body, data) of events whose stored data texts are ``datas``, each hashed as is."""
    prev, out = GENESIS, []
    for seq, data in enumerate(datas, 1):
        body = canonical_body(seq, "2026-11-01T08:00:00.000Z", "policy.checked", "system", None, None, data, prev)
        digest = hashlib.sha256((prev + body).encode("utf-8")).hexdigest()
        out.append((seq, prev, digest, body, data))
        prev = digest
    return out


@pytest.mark.parametrize("bad,broken,count", [(3, None, 600), (3, 590, 600), (400, None, 600), (400, 401, 600),
                                              (600, None, 600), (256, None, 256)])
def test_data_not_canonical_is_named_before_any_later_break(bad, broken, count) -> None:
    """The data texts are checked a batch at a time: one not canonical is still the break named (with the count
    and head as the walk stood before it), though the walk went on past it to a later break or to the end."""
    datas = [canonical_json({"comment": f"c{i}", "step": i}) for i in range(count)]
    datas[bad - 1] = '{"comment":"ok","comment":"forged","step":1}'
    chain = _stored_chain(datas)
    verifier = ChainVerifier()
    for seq, prev, digest, body, data in chain:
        if seq == broken:
            digest = "0" * 64
        if not verifier.feed_canonical(seq, prev, digest, body, "2026-11-01T08:00:00.000Z", data):
            break
    result = verifier.result()
    assert (result.ok, result.bad_seq, result.count) == (False, bad, bad - 1), result
    assert result.head_hash == chain[bad - 1][1]
    assert result.reason == "data is not canonical JSON: key 'comment' is written twice (a reader takes the last)"
