"""A sentence asking for a grant to END must never file (and auto-approve) a request (SPEC §4.1)."""

from __future__ import annotations

import json

import pytest

from tests.support import cli, copy_examples

ENDING = [
    "I want analytics-read to be revoked",
    "I need analytics-read access to be removed",
    "I would like analytics-read to be released now",
    "can I get analytics-read to be removed?",
]


@pytest.mark.parametrize("line", ENDING)
def test_asking_for_access_to_end_grants_nothing(sqlite_url, tmp_path, line):
    """Bob is an engineer: analytics-read is auto-approved for him, so any of these that acts grants at once."""
    files = copy_examples(tmp_path)
    r = cli("chat", "--as", "bob@example.com", input=line + "\n", db=sqlite_url, files=files)
    assert "Traceback" not in r.stderr, r.stderr
    events = [json.loads(x) for x in cli("audit", "export", db=sqlite_url, check=True).stdout.splitlines()]
    types = [e["type"] for e in events]
    assert "request.submitted" not in types and "grant.provisioned" not in types, (line, r.stdout, types)
    assert "REQ-1" not in r.stdout, r.stdout
