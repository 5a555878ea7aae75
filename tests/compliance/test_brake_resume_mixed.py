"""A resumed pause is not held for ever by new removals (SPEC §3.6), through the real command line.

After ``resume removals``, the held removals (or what is left of them) run at the next sweep; a sweep that also
finds a few new removals, the whole still within ``safety.max_removals``, runs them all, as it would have run the
new ones had nothing been paused. A new set above the limit is a new pause.
"""

from __future__ import annotations

import json

from tests.support import Files, chat, cli, copy_examples

SAM = "sam.sec@example.com"
GROUP = "sg-analytics-read"
WAVE = ["a1@example.com", "a2@example.com", "a3@example.com"]
LATE = ["b1@example.com", "b2@example.com", "b3@example.com"]


def _world(tmp_path) -> Files:  # type: ignore[no-untyped-def]
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text() + "\nsafety: {max_removals: 2}\n")

    def hire(data: dict) -> None:
        for email in WAVE + LATE:
            data["users"].append({"email": email, "name": email.split("@")[0], "department": "Sales",
                                  "active": True})
        data["groups"][GROUP] = [*(data["groups"].get(GROUP) or []), *WAVE, *LATE]

    files.edit_directory(hire)
    return files


def _active(files: Files, emails: list[str], active: bool) -> None:
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in emails:
                u["active"] = active

    files.edit_directory(change)


def _sweep(db: str, files: Files) -> str:
    return cli("sweep", db=db, files=files, check=True).stdout


def _events(db: str, kind: str) -> list[dict]:
    out = cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout
    return [e for e in map(json.loads, out.splitlines()) if e["type"] == kind]


def _removed(db: str) -> list[str]:
    return sorted(e["data"]["user"] for e in _events(db, "membership.removed"))


def test_a_resumed_pause_lets_what_is_left_of_it_run_with_new_removals_under_the_limit(tmp_path, sqlite_url):
    db, files = sqlite_url, _world(tmp_path)
    _active(files, WAVE, False)
    out = _sweep(db, files)
    assert "removals paused by the safety brake: 3" in out, out
    assert "Resumed" in chat(SAM, "resume removals", db=db, files=files)
    # before the next sweep, two of the wave turn out to be a mistake, and one other person leaves
    _active(files, WAVE[:2], True)
    _active(files, LATE[:1], False)
    out = _sweep(db, files)
    assert "paused" not in out and "terminate: 2 — a3@example.com, b1@example.com" in out, out
    assert _removed(db) == [WAVE[2], LATE[0]]
    assert [e["data"]["count"] for e in _events(db, "automation.paused")] == [3]
    assert [(e["actor"], e["data"]["count"]) for e in _events(db, "automation.resumed")] == [(SAM, 3)]
    # the pause is over: a later sweep under the limit runs as usual, and a second resume has nothing to resume
    assert "Nothing is paused" in chat(SAM, "resume removals", db=db, files=files)


def test_after_a_resume_a_new_set_above_the_limit_pauses_anew(tmp_path, sqlite_url):
    db, files = sqlite_url, _world(tmp_path)
    _active(files, WAVE, False)
    assert "removals paused by the safety brake: 3" in _sweep(db, files)
    assert "Resumed" in chat(SAM, "resume removals", db=db, files=files)
    _active(files, WAVE[:2], True)
    _active(files, LATE, False)  # one held removal and three new ones: four, above the limit
    out = _sweep(db, files)
    assert "removals paused by the safety brake: 4" in out and "terminate: 0" in out, out
    assert [e["data"]["count"] for e in _events(db, "automation.paused")] == [3, 4]
    assert _removed(db) == [] and "terminate: 0" in _sweep(db, files)
