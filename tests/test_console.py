"""The console and the command line as a new user meets them (issue 9, item 18)."""

from __future__ import annotations

import json

from tests.support import cli, copy_examples


def test_piped_chat_exit_code_says_whether_every_line_was_understood_and_allowed(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    ok = cli("chat", "--as", "bob@example.com", input="help\nprofiles\nmine\n", db=sqlite_url, files=files)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for line in ("request prod-db-read for 3d because INC-1 x",  # refused
                 "hello there",                                  # not understood
                 "pending",                                      # not allowed
                 "status REQ-99"):                               # no such request
        r = cli("chat", "--as", "bob@example.com", input=f"help\n{line}\nmine\n", db=sqlite_url, files=files)
        assert r.returncode == 1, (line, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert "Your open requests" in r.stdout or "no open requests" in r.stdout  # later lines still run


def test_chat_without_a_terminal_or_input_says_who_and_how(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    r = cli("chat", "--as", "bob@example.com", input="", db=sqlite_url, files=files)
    assert r.returncode == 0
    assert "bob@example.com" in r.stdout and "Bob" in r.stdout
    assert "echo help | accessbot chat --as bob@example.com" in r.stdout


def test_a_bad_policy_names_its_file(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    bad = tmp_path / "broken-policy.yaml"
    bad.write_text("version: 1\nprofiles:\n  - id: Bad_Id\n    aproval: []\n")
    for args in (("chat", "--as", "bob@example.com"), ("sweep",)):
        r = cli(*args, "--policy", str(bad), "--directory", str(files.directory), "--database-url", sqlite_url,
                input="help\n")
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert str(bad) in r.stderr.splitlines()[0], r.stderr
        assert "line 3" in r.stderr


def test_an_empty_as_of_is_an_error_not_now(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    r = cli("sweep", "--as-of", "", db=sqlite_url, files=files)
    assert r.returncode == 2 and "--as-of" in r.stderr and "Traceback" not in r.stderr, r.stderr
    events = cli("audit", "export", db=sqlite_url).stdout.splitlines()
    assert events == [], events  # nothing ran (and no database was made for it)
    r = cli("sweep", "--as-of", "   ", db=sqlite_url, files=files)
    assert r.returncode == 2


def test_state_is_not_said_twice(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    out = cli("chat", "--as", "bob@example.com", db=sqlite_url, files=files,
              input="request analytics-read for 2h\nrelease REQ-1\nstatus REQ-1\n").stdout
    assert "state: released\n" in out and "released (released)" not in out, out
    out = cli("chat", "--as", "sam.sec@example.com", db=sqlite_url, files=files,
              input="revoke REQ-1 because x\n").stdout
    events = [json.loads(x) for x in cli("audit", "export", db=sqlite_url).stdout.splitlines()]
    assert [e["type"] for e in events if e["type"].startswith("grant.")] == ["grant.provisioned", "grant.released"]


def test_a_request_one_may_not_see_looks_like_one_that_does_not_exist(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    cli("chat", "--as", "alice@example.com", input="request staging-admin for 2h\n", db=sqlite_url, files=files)
    words = ("status", "release", "cancel", "approve", "deny", "extend")
    lines = {w: f"{w} REQ-{{n}}" + (" because x" if w == "deny" else " by 1h" if w == "extend" else "")
             for w in words}

    def replies(n: int) -> list[str]:
        text = "\n".join(line.format(n=n) for line in lines.values()) + "\n"
        r = cli("chat", "--as", "frank@example.com", input=text, db=sqlite_url, files=files)
        assert r.returncode == 1
        return [x.replace(f"REQ-{n}", "REQ-?") for x in r.stdout.splitlines()]

    hidden, missing = replies(1), replies(999)
    assert hidden == missing and len(hidden) == len(words), (hidden, missing)
    assert "There is no request REQ-?" in hidden[0]
    events = [json.loads(x) for x in cli("audit", "export", db=sqlite_url).stdout.splitlines()]
    refused = [(e["data"]["command"], e["request_id"]) for e in events if e["type"] == "command.refused"]
    assert refused == [("status", "REQ-1"), ("release", "REQ-1"), ("cancel", "REQ-1"), ("extend", "REQ-1")]
    assert [(e["actor"], e["data"]["reason"]) for e in events if e["type"] == "approval.refused"] == [
        ("frank@example.com", "not-an-approver")] * 2
    assert not any(e["request_id"] == "REQ-999" for e in events)


def test_report_access_without_a_profile_lists_every_profile(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    cli("chat", "--as", "alice@example.com", db=sqlite_url, files=files,
        input="request analytics-read for 2h\nrequest prod-db-read for 30m because INC-7 paged\n")
    r = cli("report", "access", "--format", "json", db=sqlite_url, files=files)
    assert r.returncode == 0, r.stderr
    assert sorted(row["profile"] for row in json.loads(r.stdout)) == ["analytics-read", "prod-db-read"]
    r = cli("report", "access", "--profile", "analytics-read", "--format", "json", db=sqlite_url, files=files)
    assert [row["request_id"] for row in json.loads(r.stdout)] == ["REQ-1"]
    r = cli("report", "access", "--profile", "nope", db=sqlite_url, files=files)
    assert r.returncode == 1 and "no profile" in r.stdout + r.stderr
    out = cli("chat", "--as", "sam.sec@example.com", input="report access\n", db=sqlite_url, files=files).stdout
    assert "REQ-1" in out and "REQ-2" in out, out
