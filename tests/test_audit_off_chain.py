"""An event stored outside the chain: ``seq`` 0 or below.

The chain starts at seq 1, so a walk from seq 1 never meets a row planted below it, yet the request's history
(``status``, the dashboard) and the readers of review decisions select events by request or type, not by seq:
such a row would be shown as recorded while ``audit verify`` said OK. The serving role may INSERT into
``audit_events``; the database refuses a seq below 1, and a row planted there by the owner is named by
``audit verify`` and makes an evidence pack's ``verified`` false."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from handlers.audit import GENESIS, canonical_body, canonical_json, event_hash
from store.db import make_sync_engine
from tests.support import chat, cli, copy_examples
from tests.tamper import tamper

FORGED = {"seq": 0, "ts": "2026-01-05T09:00:00.000Z", "type": "approval.granted", "actor": "mark.mgr@example.com",
          "request_id": "REQ-1", "profile": "staging-admin", "data": {"comment": "ok", "step": 1},
          "prev_hash": GENESIS}
INSERT = ("INSERT INTO audit_events (seq, ts, type, actor, request_id, profile, data, prev_hash, hash) "
          "VALUES (:seq, :ts, :type, :actor, :request_id, :profile, :data, :prev_hash, :hash)")


def _row(seq: int) -> dict:
    body = {**FORGED, "seq": seq}
    return {**body, "data": json.dumps(body["data"], sort_keys=True, separators=(",", ":")),
            "hash": event_hash(GENESIS, body)}


@pytest.fixture
def requested(database_url, tmp_path):  # type: ignore[no-untyped-def]
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h because deploy", db=database_url, files=files)
    assert cli("audit", "verify", db=database_url).returncode == 0
    return database_url, files


@pytest.mark.parametrize("seq", [0, -1])
def test_the_serving_role_cannot_insert_an_event_below_seq_1(requested, seq) -> None:
    url, _ = requested
    engine = make_sync_engine(url)
    try:
        with pytest.raises(Exception, match="seq starts at 1"), engine.begin() as conn:
            conn.execute(text(INSERT), _row(seq))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_events WHERE seq < 1")).scalar() == 0
    finally:
        engine.dispose()


def test_verify_names_an_event_planted_below_seq_1(requested, tmp_path) -> None:
    url, files = requested
    tamper(url, (INSERT, _row(0)))  # the owner, with the guards off
    status = chat("bob@example.com", "status REQ-1", db=url, files=files)
    assert "#0 " in status  # the request's history shows it: it must not pass for recorded
    r = cli("audit", "verify", db=url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stdout.startswith("BROKEN at seq 0: ") and "outside the chain" in r.stdout, r.stdout
    assert "BROKEN at seq 0" in chat("sam.sec@example.com", "verify", db=url, files=files)

    today = datetime.now(UTC).date().isoformat()
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", "2026-01-01", "--to", today, "--out", str(out), db=url, files=files)
    assert r.returncode == 1 and "chain verified: False" in r.stdout, r.stdout + r.stderr
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("manifest.json"))["audit"]["verified"] is False


def _append(url: str, **fields: object) -> int:
    """Insert the next event with a valid hash, as the serving role may; returns its seq."""
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            seq, prev = conn.execute(text("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
        body = {**FORGED, "seq": int(seq) + 1, "prev_hash": prev, **fields}
        row = {**body, "data": json.dumps(body["data"], sort_keys=True, separators=(",", ":")),
               "hash": event_hash(prev, body)}
        with engine.begin() as conn:
            conn.execute(text(INSERT), row)
        return int(seq) + 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("ts", ["2026-01-05T09:00:00.000Z", "2999-01-05 09:00:00", "2999-01-05T09:00:00.000+01:00"])
def test_verify_names_an_event_whose_time_goes_back_or_is_no_utc_time(requested, ts) -> None:
    """Each event's ``ts`` is when it was recorded, never before the event ahead of it, UTC with ``Z``: a period's
    events are one segment of the chain only so. An event appended with a hash of its own but dated into a
    period already past (or written in another form) is named, not verified."""
    url, _ = requested
    seq = _append(url, ts=ts)
    r = cli("audit", "verify", db=url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stdout.startswith(f"BROKEN at seq {seq}: ts "), r.stdout


def _append_text(url: str, data: str) -> int:
    """Insert the next event whose stored ``data`` is ``data`` as it stands, with a valid hash over that text (as
    the serving role may); returns its seq."""
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            seq, prev, ts = conn.execute(text("SELECT seq, hash, ts FROM audit_events ORDER BY seq DESC LIMIT 1")
                                         ).one()
        row = {**FORGED, "seq": int(seq) + 1, "ts": ts, "type": "policy.checked", "actor": "system", "request_id": None,
               "profile": None, "prev_hash": prev, "data": data}  # a type no pack row is made from
        body = canonical_body(row["seq"], ts, row["type"], row["actor"], row["request_id"], row["profile"], data, prev)
        row["hash"] = hashlib.sha256((prev + body).encode("utf-8")).hexdigest()
        with engine.begin() as conn:
            conn.execute(text(INSERT), row)
        return int(seq) + 1
    finally:
        engine.dispose()


NOT_CANONICAL = {
    "a key twice": ('{"comment":"ok","comment":"forged","step":1}', "key 'comment' is written twice"),
    "keys out of order": ('{"step":1,"comment":"ok"}', "not written as canonical_json writes it"),
    "spaces": ('{"comment": "ok","step":1}', "not written as canonical_json writes it"),
    "an escaped letter": ('{"comment":"\\u006fk","step":1}', "not written as canonical_json writes it"),
    "another number form": ('{"comment":"ok","step":1.0e0}', "not written as canonical_json writes it"),
    # the body is assembled as text: this data would end the data value and give the event a second actor
    "fields after it": ('{"comment":"ok","step":1},"actor":"mallory@example.com"', "not JSON"),
}


@pytest.mark.parametrize("data,why", NOT_CANONICAL.values(), ids=NOT_CANONICAL.keys())
def test_verify_names_an_event_whose_data_is_not_canonical_json(requested, tmp_path, data, why) -> None:
    """The hash covers the stored ``data`` text; a reader parses it (a key written twice reads as its last
    value) and an export writes it again as canonical JSON, which the pack's own verifier then finds out of form.
    An event appended with a hash over such a text is named by audit verify, the chat word and the export, as
    the offline check names it; events recorded after it do not hide it."""
    url, files = requested
    seq = _append_text(url, data)
    chat("bob@example.com", "request prod-db-read for 1h because report", db=url, files=files)  # recorded after
    r = cli("audit", "verify", db=url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stdout.startswith(f"BROKEN at seq {seq}: data is not canonical JSON: ") and why in r.stdout, r.stdout
    assert f"BROKEN at seq {seq}: data is not canonical JSON" in chat("sam.sec@example.com", "verify", db=url,
                                                                      files=files)

    today = datetime.now(UTC).date().isoformat()
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", "2026-01-01", "--to", today, "--out", str(out), db=url, files=files)
    assert r.returncode == 1 and "chain verified: False" in r.stdout, r.stdout + r.stderr
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        script = tmp_path / "verify_pack.py"
        script.write_bytes(zf.read("verify_pack.py"))
    assert manifest["audit"]["verified"] is False and manifest["audit"]["segment_verified"] is False
    offline = subprocess.run([sys.executable, "-I", str(script), str(out)], capture_output=True, text=True,
                             timeout=300)
    assert offline.returncode == 1 and "FAIL" in offline.stdout, offline.stdout + offline.stderr


def test_a_canonical_data_text_verifies(requested) -> None:
    """The check of the data's form refuses nothing the store writes: an event appended with canonical data
    (non-ASCII text, nesting, numbers) verifies."""
    url, _ = requested
    _append_text(url, canonical_json({"comment": "ok é \u2028 \"q\"", "step": 1, "n": [1.5, -2, None, {"b": 1,
                                                                                                      "a": True}]}))
    r = cli("audit", "verify", db=url)
    assert r.returncode == 0 and r.stdout.startswith("OK "), r.stdout + r.stderr


@pytest.mark.parametrize("data", ["[1]", '"x"', "7", "true"])
def test_verify_names_an_event_whose_data_is_no_object(requested, data) -> None:
    """Canonical JSON, but no object: the pack's verifier cannot read such an event (``data is not a JSON
    object``), so the live check names it the same way rather than say OK."""
    url, _ = requested
    seq = _append_text(url, data)
    r = cli("audit", "verify", db=url)
    assert r.returncode == 1 and r.stdout.startswith(f"BROKEN at seq {seq}: data is not a JSON object"), \
        r.stdout + r.stderr


def test_a_check_from_the_middle_compares_its_first_event_with_the_one_before(requested, tmp_path) -> None:
    """A back-dated event appended after the period's last event falls in no segment by its time and opens the part
    of the chain the export checks after the segment; the dashboard's check of what was appended since it looked
    starts at it too. Each such check starts from the time of the event before, so that event is named there as
    the whole walk names it, and the pack is not called verified."""
    import asyncio

    from store.repository import SqlStore

    url, files = requested
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            last_ts, prev = conn.execute(text("SELECT ts, hash FROM audit_events ORDER BY seq DESC LIMIT 1")).one()
    finally:
        engine.dispose()
    earlier = datetime.strptime(str(last_ts), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp() - 60
    ts = datetime.fromtimestamp(earlier, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + str(last_ts)[-4:]
    seq = _append(url, ts=ts)  # a minute before the last event, inside the period

    today = datetime.now(UTC).date().isoformat()
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", "2026-01-01", "--to", today, "--out", str(out), db=url, files=files)
    assert r.returncode == 1 and "chain verified: False" in r.stdout, r.stdout + r.stderr

    async def from_the_middle() -> object:
        store = SqlStore(url)
        try:
            return await store.verify_audit(first_seq=seq, prev_hash=prev)
        finally:
            await store.close()

    result = asyncio.run(from_the_middle())
    assert not result.ok and result.bad_seq == seq and "earlier than the event before" in result.reason, result
