"""The people an ``all_of`` / ``n_of`` step needs are fixed when the step opens (SPEC §2.1, §3.2).

A member who disappears from the directory afterwards makes the step wait; one found inactive
makes it fail closed naming the step; the step is never satisfied by fewer people than it asked.
Each command is a separate ``accessbot`` process, the directory file edited between them, on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import Files, chat, cli, copy_examples

BOB, SAM, SASHA, DANA = "bob@example.com", "sam.sec@example.com", "sasha.sec@example.com", "dana.dba@example.com"
PROFILES = """
  - id: break-glass
    title: Break glass
    owner: pat.lead@example.com
    risk: high
    provider: directory
    group: sg-break-glass
    eligible:
      - department: Engineering
    duration: {default: 1h, max: 2h}
    justification: optional
    approval:
      - {all_of: security}

  - id: two-of-three
    title: Two of three
    owner: pat.lead@example.com
    risk: high
    provider: directory
    group: sg-two-of-three
    eligible:
      - department: Engineering
    duration: {default: 1h, max: 2h}
    justification: optional
    approval:
      - {n_of: 2, from: trio}
"""


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> tuple[str, Files]:
    files = copy_examples(tmp_path)
    trio = "  trio: [sam.sec@example.com, sasha.sec@example.com, dana.dba@example.com]\n"
    text = files.policy.read_text().replace("  platform: [pat.lead@example.com]\n",
                                            "  platform: [pat.lead@example.com]\n" + trio)
    files.policy.write_text(text + PROFILES)
    return database_url, files


def drop_users(files: Files, *emails: str) -> list[dict]:
    """Remove people from the directory file (as a half-written file would); returns them."""
    gone: list[dict] = []

    def change(data: dict) -> None:
        gone.extend(u for u in data["users"] if u["email"] in emails)
        data["users"] = [u for u in data["users"] if u["email"] not in emails]

    files.edit_directory(change)
    return gone


def restore_users(files: Files, users: list[dict]) -> None:
    files.edit_directory(lambda data: data["users"].extend(users))


def state(db: str, n: int) -> str:
    out = cli("audit", "export", "--format", "jsonl", db=db).stdout
    events = [json.loads(line) for line in out.splitlines() if line]
    ends = {"request.approved": "approved", "grant.provisioned": "active", "request.failed": "failed"}
    current = "pending"
    for e in events:
        if e["request_id"] == f"REQ-{n}" and e["type"] in ends:
            current = ends[e["type"]]
    return current


def events(db: str, type_: str) -> list[dict]:
    out = cli("audit", "export", "--format", "jsonl", db=db).stdout
    return [e for e in (json.loads(line) for line in out.splitlines() if line) if e["type"] == type_]


def members(files: Files, db: str, group: str) -> list[str]:
    out = chat(SAM, f"who has {group}", db=db, files=files)
    return [line.split(" — ")[0].strip() for line in out.splitlines() if " — REQ-" in line]


def test_all_of_waits_for_a_member_missing_from_the_directory(world: tuple[str, Files]) -> None:
    db, files = world
    chat(BOB, "request break-glass", db=db, files=files)
    [asked] = events(db, "approval.requested")
    assert asked["data"]["approvers"] == [SAM, SASHA]
    gone = drop_users(files, SASHA)
    out = chat(SAM, "approve REQ-1", db=db, files=files)
    assert "1 of 2" in out, out
    assert state(db, 1) == "pending"
    cli("sweep", db=db, files=files, check=True)
    assert state(db, 1) == "pending" and not events(db, "request.failed")  # waits: she may come back
    restore_users(files, gone)
    out = chat(SASHA, "approve REQ-1", db=db, files=files)
    assert state(db, 1) == "active", out
    assert members(files, db, "break-glass") == [BOB]
    assert cli("audit", "verify", db=db).returncode == 0


def test_all_of_fails_closed_when_a_member_turns_inactive(world: tuple[str, Files]) -> None:
    db, files = world
    chat(BOB, "request break-glass", db=db, files=files)
    files.set_active(SASHA, False)
    out = chat(SAM, "approve REQ-1", db=db, files=files)
    assert "1 of 2" in out, out
    assert state(db, 1) == "pending"
    dry = cli("sweep", "--dry-run", db=db, files=files, check=True).stdout
    assert "would fail: 1 — REQ-1" in dry and "would remind: 0" in dry, dry  # said, not done
    assert state(db, 1) == "pending" and not events(db, "request.failed")
    out = cli("sweep", db=db, files=files, check=True).stdout
    assert "fail: 1 — REQ-1" in out, out
    [failed] = events(db, "request.failed")
    assert failed["data"]["rule"] == "step 1: all_of security"
    assert not events(db, "grant.provisioned")


def test_n_of_with_fewer_than_n_left_waits(world: tuple[str, Files]) -> None:
    db, files = world
    chat(BOB, "request two-of-three", db=db, files=files)
    gone = drop_users(files, SASHA, DANA)
    out = chat(SAM, "approve REQ-1", db=db, files=files)
    assert "1 of 2" in out, out
    cli("sweep", db=db, files=files, check=True)
    assert state(db, 1) == "pending" and not events(db, "request.failed")
    restore_users(files, gone)
    chat(DANA, "approve REQ-1", db=db, files=files)
    assert state(db, 1) == "active"
    granted = [(e["actor"], e["data"]["step"]) for e in events(db, "approval.granted")]
    assert granted == [(SAM, 1), (DANA, 1)]



def test_a_manager_step_waits_for_a_manager_missing_from_the_directory(world: tuple[str, Files]) -> None:
    """Not only ``all_of`` / ``n_of``: a manager step whose manager a half-written directory file leaves out waits
    for them, as any step waits for someone it asked who is not found (found inactive, it fails closed)."""
    db, files = world
    mark = "mark.mgr@example.com"
    chat(BOB, "request staging-admin for 1h", db=db, files=files)
    [asked] = events(db, "approval.requested")
    assert asked["data"]["approvers"] == [mark]
    gone = drop_users(files, mark)
    out = cli("sweep", db=db, files=files, check=True).stdout
    assert "fail: 0" in out and "reroute: 0" in out, out
    assert state(db, 1) == "pending" and not events(db, "request.failed")  # waits: he may come back
    restore_users(files, gone)
    out = chat(mark, "approve REQ-1", db=db, files=files)
    assert state(db, 1) == "active", out


def test_an_any_of_step_waits_while_everyone_it_asked_is_missing(world: tuple[str, Files]) -> None:
    db, files = world
    chat(BOB, "request prod-db-read for 1h because INC-9 paged", db=db, files=files)
    chat("mark.mgr@example.com", "approve REQ-1", db=db, files=files)  # step 2 asks the dba group
    asked = events(db, "approval.requested")[-1]["data"]["approvers"]
    assert asked == [DANA, "dev.dba@example.com"]
    gone = drop_users(files, *asked)
    cli("sweep", db=db, files=files, check=True)
    assert state(db, 1) == "pending" and not events(db, "request.failed")
    restore_users(files, gone)
    chat(DANA, "approve REQ-1", db=db, files=files)
    assert [e["actor"] for e in events(db, "approval.granted")][-1] == DANA
    assert events(db, "approval.requested")[-1]["data"]["step"] == 3  # on to the security pair
