"""Free phrasing (SPEC §4.1): a sentence asking for access to END, a negation, or another
person's name must never become a request. Bob is an engineer: analytics-read is auto-approved for him, so
any of these that acts grants at once. Through the real console channel (accessbot chat)."""

from __future__ import annotations

import json

import pytest

from tests.support import cli, copy_examples

LINES = [
    "I want analytics-read to be revoked",
    "I need analytics-read access to be removed",
    "I would like analytics-read to be released now",
    "can I get analytics-read to be removed?",
    # asking for the access to end, in words the fix's list does not hold or with two words between
    "I want analytics-read to be completely and permanently revoked",
    "I want analytics-read to be switched off",
    "I'd like analytics-read to be deprovisioned",
    "I need analytics-read to be cut off",
    # a negation inside the reason
    "I need analytics-read to never be granted to me again",
    "I want analytics-read to not be active anymore",
    # another person's name (SPEC §4.1: never becomes a request)
    "I need analytics-read so Carol can run the report",
    "I need analytics-read because my colleague needs it",
]


@pytest.mark.parametrize("line", LINES)
def test_ending_negated_or_for_someone_else_files_nothing(sqlite_url, tmp_path, line):
    files = copy_examples(tmp_path)
    r = cli("chat", "--as", "bob@example.com", input=line + "\n", db=sqlite_url, files=files)
    assert "Traceback" not in r.stderr, r.stderr
    events = [json.loads(x) for x in cli("audit", "export", db=sqlite_url, check=True).stdout.splitlines()]
    types = [e["type"] for e in events]
    assert "request.submitted" not in types and "grant.provisioned" not in types, (line, r.stdout, types)


def test_a_legitimate_free_request_still_works(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    r = cli("chat", "--as", "bob@example.com", input="I need analytics-read for 2h to fix INC-4411\n",
            db=sqlite_url, files=files)
    events = [json.loads(x) for x in cli("audit", "export", db=sqlite_url, check=True).stdout.splitlines()]
    assert "request.submitted" in [e["type"] for e in events], r.stdout


@pytest.mark.parametrize("line", [
    "I need prod-db-admin for 1h to drop the stale index", "I need prod-db-admin for 1h to remove a stuck lock",
    "I need staging-admin for 2h to be able to deploy", "I need staging-admin for 2h so the job can run",
    "I need staging-admin for 2h so I can deploy", "I need staging-admin for 2h because Postgres needs a restart",
    "I need staging-admin for 2h because Kafka will be down", "I need staging-admin for 2h to close the incident",
    "I need prod-db-read for 1h to check why the consumer is not keeping up",
])
def test_reasons_that_mention_ending_or_others_in_passing_still_ask(line):
    from handlers.phrasing import free_request

    assert isinstance(free_request(line, ["prod-db-admin", "staging-admin", "prod-db-read"]), tuple), line
