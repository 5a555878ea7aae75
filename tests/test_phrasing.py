"""Free phrasing acts only on one person asking for one profile for themselves (SPEC §4.1)."""

from __future__ import annotations

import json

import pytest

from handlers.grammar import RequestAccess, Unknown, parse
from tests.support import cli, copy_examples

IDS = ["prod-db-read", "staging-admin", "analytics-read"]

ACTING = [
    ("I need prod-db-read for 2 hours to fix INC-4411", ("prod-db-read", "2 hours", "fix INC-4411")),
    ("I need prod-db-read to fix INC-4411 for 2 hours", ("prod-db-read", "2 hours", "fix INC-4411")),
    ("i need access to prod-db-read for 2h because INC-1 lag", ("prod-db-read", "2h", "INC-1 lag")),
    ("I want staging-admin for 1h", ("staging-admin", "1h", None)),
    ("I'd like analytics-read for 1d because quarterly numbers", ("analytics-read", "1d", "quarterly numbers")),
    ("I would like access to staging-admin for 3h", ("staging-admin", "3h", None)),
    ("I would like to get staging-admin for 3h please", ("staging-admin", "3h", None)),
    ("can I get prod-db-read for 2h because INC-1?", ("prod-db-read", "2h", "INC-1")),
    ("Could I have prod-db-read for 30m to check INC-9?", ("prod-db-read", "30m", "check INC-9")),
    ("may I please get access to analytics-read?", ("analytics-read", None, None)),
    ("could you give me staging-admin for 2h so that I can deploy", ("staging-admin", "2h", "I can deploy")),
    ("please give me prod-db-read for 1h because INC-2 is not fixed yet",
     ("prod-db-read", "1h", "INC-2 is not fixed yet")),
    ("hi, I need prod-db-read for 2h for INC-77", ("prod-db-read", "2h", "INC-77")),
    ("I need the staging-admin role for 2h, thanks", ("staging-admin", "2h", None)),
    ("I still need analytics-read", ("analytics-read", None, None)),
    ("requesting staging-admin for 1h because release 4.2", ("staging-admin", "1h", "release 4.2")),
    ("I need prod-db-read for 2h to help carol fix INC-3", ("prod-db-read", "2h", "help carol fix INC-3")),
]

NOT_ACTING = [
    # negations
    "I no longer need analytics-read",
    "I don't need analytics-read anymore",
    "I do not want prod-db-read",
    "I dont need staging-admin",
    "I need staging-admin no more",
    "I want to stop using prod-db-read",
    "no need for analytics-read",
    # ending access is not asking for it
    "I would like to release staging-admin",
    "I want to give up prod-db-read",
    "I need staging-admin removed",
    "please remove me from analytics-read",
    # questions about needing or having access
    "does carol need staging-admin?",
    "do I need prod-db-read?",
    "Do I have analytics-read",
    "should I request prod-db-read?",
    "who else has prod-db-read?",
    "I need prod-db-read?",
    "is staging-admin approved by my manager?",
    "can carol get prod-db-read?",
    # other people
    "carol needs staging-admin",
    "give carol prod-db-read for 2h",
    "I need prod-db-read for carol",
    "can I get prod-db-read for carol?",
    "I need analytics-read for bob@example.com",
    "I need prod-db-read for 2h to help bob@example.com",
    "request staging-admin on behalf of dana",
    "I need prod-db-read for my colleague",
    "we need staging-admin for 1h",
    "she needs analytics-read",
    # more than one profile, or no clear shape
    "I need prod-db-read and staging-admin",
    "I need prod-db-read, right?",
    "I need prod-db-read too",
    "tell me about prod-db-read",
    "prod-db-read",
    "I need access",
]


@pytest.mark.parametrize(("text", "expected"), ACTING)
def test_clear_requests_act(text, expected):
    profile, duration, reason = expected
    cmd = parse(text, IDS)
    assert isinstance(cmd, RequestAccess), (text, cmd)
    assert (cmd.profile, cmd.duration, cmd.reason, cmd.exception) == (profile, duration, reason, False)


@pytest.mark.parametrize("text", NOT_ACTING)
def test_negations_questions_and_other_people_never_act(text):
    cmd = parse(text, IDS)
    assert isinstance(cmd, Unknown), (text, cmd)
    assert cmd.hint, text  # a clarifying answer, not a bare "not understood"


def test_clarifying_answers_say_what_to_do():
    assert "release REQ-n" in parse("I no longer need analytics-read", IDS).hint
    assert "release REQ-n" in parse("I would like to release staging-admin", IDS).hint
    hint = parse("does carol need staging-admin?", IDS).hint
    assert "nothing was requested" in hint and "request staging-admin" in hint
    assert "someone else" in parse("I need analytics-read for bob@example.com", IDS).hint


def test_through_the_console_nothing_is_requested(sqlite_url, tmp_path):
    """Alice is an engineer on call: analytics-read would be auto-approved if any of these acted."""
    files = copy_examples(tmp_path)
    lines = ["I no longer need analytics-read", "does carol need staging-admin?", "do I need prod-db-read?",
             "I would like to release staging-admin", "I need analytics-read for carol@example.com",
             "carol needs analytics-read"]
    r = cli("chat", "--as", "alice@example.com", input="\n".join(lines) + "\n", db=sqlite_url, files=files)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout.count("nothing was requested") == len(lines), r.stdout
    assert "REQ-1" not in r.stdout
    events = [json.loads(x) for x in cli("audit", "export", db=sqlite_url, check=True).stdout.splitlines()]
    assert [e["type"] for e in events] == ["policy.loaded"]
    # a polite ask is a request like "I need"
    r = cli("chat", "--as", "alice@example.com", input="can I get analytics-read for 2h because INC-1?\n",
            db=sqlite_url, files=files)
    assert "REQ-1 auto-approved" in r.stdout, r.stdout
