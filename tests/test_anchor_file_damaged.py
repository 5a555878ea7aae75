"""`accessbot audit verify --anchors FILE` on a damaged anchor file says what is wrong with it (exit 1, one line)
instead of a traceback: a byte that is not UTF-8, a seq no database column holds, a line nested past what
Python parses."""

from __future__ import annotations

import json

import pytest

from tests.support import chat, cli, copy_examples

DAMAGE = [
    ("not-utf8", b'{"seq": 1, "hash": "' + b"a" * 64 + b'"}\n\xff\xfe\n', "not UTF-8"),
    ("huge-seq", json.dumps({"seq": 10**30, "hash": "a" * 64}).encode() + b"\n", "no valid seq"),
    ("bool-seq", json.dumps({"seq": True, "hash": "a" * 64}).encode() + b"\n", "no valid seq"),
    ("deep", b"[" * 100_000 + b"]" * 100_000 + b"\n", "not JSON"),
]


@pytest.mark.parametrize("name,content,said", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_anchor_file_is_a_problem_not_a_traceback(database_url, tmp_path, name, content, said) -> None:
    files = copy_examples(tmp_path)
    chat("bob@example.com", "request staging-admin for 1h because deploy", db=database_url, files=files)
    anchor = tmp_path / "a.anchors"
    anchor.write_bytes(content)
    anchor.chmod(0o600)
    r = cli("audit", "verify", "--anchors", str(anchor), db=database_url)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert said in r.stdout + r.stderr, r.stdout + r.stderr
