"""A column of a stored event changed to another storage type (SQLite keeps whatever a column is given).

``seq`` is a BIGINT primary key, not SQLite's rowid alias: it takes 3.5 as well as 3, which a walk reading it with
``int`` took for event 3 (audit verify said OK over a row whose seq was changed). A text column given a blob of the
same bytes failed the walk with a traceback instead of naming it. Each is named by audit verify and the chat word;
an evidence export writes the pack unverified (or refuses it) instead of failing with a traceback."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime

import pytest

from tests.support import chat, cli, copy_examples
from tests.tamper import tamper

TAMPERS = {
    "seq as a real": ("UPDATE audit_events SET seq = 3.5 WHERE seq = 3", "BROKEN at seq 3: seq 3.5 is stored as float"),
    "type as a blob": ("UPDATE audit_events SET type = CAST(type AS BLOB) WHERE seq = 2",
                       "BROKEN at seq 2: type is stored as bytes, not text"),
    "prev_hash as a blob": ("UPDATE audit_events SET prev_hash = CAST(prev_hash AS BLOB) WHERE seq = 2",
                            "BROKEN at seq 2: prev_hash is stored as bytes, not text"),
    "ts as a blob": ("UPDATE audit_events SET ts = CAST(ts AS BLOB) WHERE seq = 3",
                     "BROKEN at seq 3: ts is stored as bytes, not text"),
}


@pytest.mark.parametrize("change,said", TAMPERS.values(), ids=TAMPERS.keys())
def test_a_column_stored_as_another_type_is_named(sqlite_url, tmp_path, change, said) -> None:
    """SQLite only: PostgreSQL's columns hold their declared type (nothing to tamper that way there)."""
    database_url = sqlite_url
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h because deploy", db=database_url, files=files)
    chat("bob@example.com", "request staging-admin for 2h because deploy again", db=database_url, files=files)
    assert cli("audit", "verify", db=database_url).returncode == 0
    tamper(database_url, change)

    r = cli("audit", "verify", db=database_url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert r.stdout.startswith(said), r.stdout
    assert said in chat("sam.sec@example.com", "verify", db=database_url, files=files)

    today = datetime.now(UTC).date().isoformat()
    out = tmp_path / "pack.zip"
    r = cli("evidence", "export", "--from", "2026-01-01", "--to", today, "--out", str(out), db=database_url,
            files=files)
    # written unverified, or refused for what the changed event no longer says (a type the export does not know)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    if out.exists():
        assert "chain verified: False" in r.stdout, r.stdout
        with zipfile.ZipFile(out) as zf:
            assert json.loads(zf.read("manifest.json"))["audit"]["verified"] is False
    else:
        assert "no evidence pack written" in r.stderr, r.stderr
