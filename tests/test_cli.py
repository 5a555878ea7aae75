"""End to end through the real command line: subprocesses, piped input, one shared database."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.support import ROOT, chat, cli, copy_examples


def _events(db: str) -> list[dict]:
    return [json.loads(x) for x in cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout.splitlines()]


def test_full_lifecycle_through_the_console(database_url, tmp_path):
    files = copy_examples(tmp_path)
    db = database_url
    out = chat("bob@example.com", "help", "profiles", "request prod-db-read for 2h because INC-4411 replica lag",
               db=db, files=files)
    assert "REQ-1 submitted" in out and "mark.mgr@example.com" in out
    assert "[to mark.mgr@example.com]" in out  # the approver is told
    for who in ("mark.mgr@example.com", "dana.dba@example.com", "sam.sec@example.com"):
        assert "Approved REQ-1" in chat(who, "approve REQ-1", db=db, files=files)
    out = chat("sasha.sec@example.com", "approve REQ-1 ok", db=db, files=files)
    assert "provisioning sg-prod-db-read" in out and "is active" in out
    out = chat("bob@example.com", "mine", db=db, files=files)
    assert "REQ-1 prod-db-read (standard) active" in out and "left" in out

    later = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dry = cli("sweep", "--as-of", later, "--dry-run", db=db, files=files, check=True).stdout
    assert "would expire: 1 — REQ-1" in dry
    out = cli("sweep", "--as-of", later, db=db, files=files, check=True).stdout
    assert "expire: 1 — REQ-1" in out
    again = cli("sweep", "--as-of", later, db=db, files=files, check=True).stdout
    assert "expire: 0" in again
    out = chat("sam.sec@example.com", "status REQ-1", "who has prod-db-read", "verify", db=db, files=files)
    assert "state: expired" in out and "grant.expired" in out and "no active grants" in out
    types = [e["type"] for e in _events(db)]
    assert types[:4] == ["policy.loaded", "request.submitted", "approval.requested", "approval.granted"]
    assert types.count("grant.provisioned") == 1 and types.count("grant.expired") == 1
    assert cli("audit", "verify", db=db).returncode == 0


def test_refusals_extend_release_cancel_revoke_through_the_console(database_url, tmp_path):
    files = copy_examples(tmp_path)
    db = database_url
    out = chat("carol@example.com", "request prod-db-read for 1h because INC-1 x", db=db, files=files)
    assert "Refused (ineligible: employment_type=Contractor)" in out
    out = chat("alice@example.com", "request prod-db-read for 30m because INC-7 paged",
               "extend REQ-1 by 1h", "cancel REQ-1", "release REQ-1", "release REQ-1", db=db, files=files)
    assert "auto-approved" in out and "Extension of REQ-1" in out and "withdrawn" in out
    assert "REQ-1 released" in out and "REQ-1 is released" in out
    out = chat("bob@example.com", "request staging-admin for 1h", "cancel REQ-2", "request staging-admin",
               db=db, files=files)
    assert "REQ-2 cancelled" in out and "REQ-3 submitted" in out
    chat("mark.mgr@example.com", "approve REQ-3", db=db, files=files)
    out = chat("bob@example.com", "revoke REQ-3 because x", db=db, files=files)
    assert "security team only" in out
    out = chat("sam.sec@example.com", "revoke REQ-3 because leaving the project", db=db, files=files)
    assert "REQ-3 revoked" in out
    out = chat("bob@example.com", "approve REQ-77", "status nonsense", "request", db=db, files=files)
    assert "There is no request REQ-77" in out and "Refused (profile)" in out


def test_termination_through_sweep(database_url, tmp_path):
    files = copy_examples(tmp_path)
    db = database_url
    chat("bob@example.com", "request analytics-read for 1d", db=db, files=files)
    files.set_active("bob@example.com", False)
    out = cli("sweep", db=db, files=files, check=True).stdout
    assert "terminate: 1 — bob@example.com" in out and "revoke: 1 — REQ-1" in out
    types = [e["type"] for e in _events(db)]
    assert types[-2:] == ["user.terminated", "grant.revoked"]
    out = chat("bob@example.com", "mine", db=db, files=files)
    assert "not active" in out


def test_unknown_user_and_bad_files(tmp_path):
    files = copy_examples(tmp_path)
    db = f"sqlite:///{tmp_path}/x.db"
    r = cli("chat", "--as", "nobody@example.com", input="help\n", db=db, files=files)
    assert r.returncode == 1 and "not in the directory" in r.stdout
    bad = tmp_path / "bad-directory.yaml"
    bad.write_text("users:\n  - email: ok@example.com\n  - email: not-an-email\n")
    r = cli("chat", "--as", "bob@example.com", input="help\n", db=db, files=files.__class__(files.policy, bad))
    assert r.returncode == 1 and "line 3" in r.stderr and "Traceback" not in r.stderr
    badpol = tmp_path / "bad-policy.yaml"
    badpol.write_text("version: 1\nprofiles:\n  - id: Bad_Id\n    aproval: []\n")
    r = cli("policy", "check", str(badpol))
    assert r.returncode == 1 and "line 3" in r.stderr and "Traceback" not in r.stderr
    r = cli("chat", "--as", "bob@example.com", input="help\n", db=db, files=files.__class__(badpol, files.directory))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    ok = cli("policy", "check", str(ROOT / "examples" / "policy.yaml"))
    assert ok.returncode == 0 and "OK" in ok.stdout
    r = cli("sweep", "--as-of", "yesterday", db=db, files=files)
    assert r.returncode == 2 and "ISO 8601" in r.stderr


def test_fifty_concurrent_approvals_one_transition(database_url, tmp_path):
    """Fifty approvers of one any_of step click at once, each in their own process."""
    files = copy_examples(tmp_path)
    people = [f"approver{i:02d}@example.com" for i in range(50)]
    files.edit_directory(lambda d: d["users"].extend(
        {"email": p, "name": p, "department": "Engineering", "active": True} for p in people))
    crowd = "  platform: [pat.lead@example.com]\n  crowd: [" + ", ".join(people) + "]"
    files.policy.write_text(files.policy.read_text().replace("  platform: [pat.lead@example.com]", crowd)
        .replace("    approval:\n      - manager\n\n  - id: analytics-read",
                 "    approval:\n      - {any_of: crowd}\n      - manager\n\n  - id: analytics-read"))
    db = database_url
    assert "REQ-1 submitted" in chat("bob@example.com", "request staging-admin for 1h", db=db, files=files)
    procs = [subprocess.Popen([sys.executable, "-m", "bot.cli", "chat", "--as", p, "--database-url", db,
                               "--policy", str(files.policy), "--directory", str(files.directory)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT) for p in people]
    outs = [p.communicate("approve REQ-1\n", timeout=300) for p in procs]
    assert sorted(p.returncode for p in procs) == [0] + [1] * 49, [o[1] for o in outs if o[1]]  # 49 refused
    winners = [o[0] for o in outs if "Approved REQ-1" in o[0]]
    assert len(winners) == 1, [o[0] for o in outs]
    events = _events(db)
    assert len([e for e in events if e["type"] == "approval.granted"]) == 1
    assert len([e for e in events if e["type"] == "approval.requested" and e["data"]["step"] == 2]) == 1
    assert cli("audit", "verify", db=db).returncode == 0


def test_an_as_of_past_the_calendars_end_is_refused_by_name(tmp_path):
    """`--as-of 9999-12-31T23:59:59Z` (or an offset that carries a timestamp past year 9999 or before year 1) is
    a timestamp Python can read but no timer can count from: refused in one line, never a traceback."""
    files = copy_examples(tmp_path)
    db = f"sqlite:///{tmp_path}/x.db"
    for moment in ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                   "0001-01-01T00:00:00Z"):
        for args in (("sweep", "--dry-run", "--as-of", moment), ("review", "start", "quarterly-privileged",
                                                                "--as-of", moment)):
            r = cli(*args, db=db, files=files)
            assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stdout, r.stderr[-800:])
            assert "--as-of" in r.stderr and "1970" in r.stderr, r.stderr
    r = cli("sweep", "--dry-run", "--as-of", "2026-12-02T10:00:00+05:30", db=db, files=files)
    assert r.returncode == 0 and "sweep as of 2026-12-02T04:30:00.000Z" in r.stdout, r.stdout + r.stderr
