"""The safety brake on re-routes (``safety.max_reroutes``), through the real command line.

A sweep that would pass more waiting ``manager`` steps to new managers than the limit passes none: it records
``approval.reroutes_held`` once per held set, tells the security team through the outbox, and the steps stay
with the managers they asked (who may still decide) until a security team member says ``resume reroutes``, or
the provider names the old managers again.
"""

from __future__ import annotations

import json
import sqlite3

from tests.support import Files, chat, cli, copy_examples

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
MARK, PAT, SAM, SASHA = "mark.mgr@example.com", "pat.lead@example.com", "sam.sec@example.com", "sasha.sec@example.com"


def _setup(tmp_path, db: str, people: tuple[str, ...], limit: int = 2) -> Files:
    files = copy_examples(tmp_path)
    files.policy.write_text(files.policy.read_text() + f"\nsafety: {{max_reroutes: {limit}}}\n")
    for n, who in enumerate(people, 1):
        out = chat(who, "request staging-admin for 1h", db=db, files=files)
        assert f"REQ-{n} submitted" in out, out
    return files


def _managers(files: Files, people: tuple[str, ...], manager: str) -> None:
    def change(data: dict) -> None:
        for u in data["users"]:
            if u["email"] in people:
                u["manager"] = manager

    files.edit_directory(change)


def _events(db: str, kind: str) -> list[dict]:
    out = cli("audit", "export", "--format", "jsonl", db=db, check=True).stdout
    return [e for e in map(json.loads, out.splitlines()) if e["type"] == kind]


def _sweep(db: str, files: Files) -> str:
    result = cli("sweep", db=db, files=files)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-800:]
    return result.stdout


def test_exactly_at_the_limit_every_step_is_rerouted(tmp_path, sqlite_url):
    files = _setup(tmp_path, sqlite_url, (ALICE, BOB))
    _managers(files, (ALICE, BOB), PAT)
    out = _sweep(sqlite_url, files)
    assert "reroute: 2 — REQ-1, REQ-2" in out, out
    assert "held" not in out, out
    assert _events(sqlite_url, "approval.reroutes_held") == []
    assert "Approved REQ-1" in chat(PAT, "approve REQ-1", db=sqlite_url, files=files)


def test_one_above_the_limit_holds_all_until_a_security_member_releases_them(tmp_path, sqlite_url):
    files = _setup(tmp_path, sqlite_url, (ALICE, BOB, CAROL))
    _managers(files, (ALICE, BOB, CAROL), PAT)
    out = _sweep(sqlite_url, files)
    assert "reroute: 0" in out, out
    assert "re-routes held by the safety brake (safety.max_reroutes): 3 — REQ-1, REQ-2, REQ-3" in out, out
    held = _events(sqlite_url, "approval.reroutes_held")
    assert len(held) == 1 and held[0]["actor"] == "system", held
    assert (held[0]["data"]["count"], held[0]["data"]["limit"], held[0]["data"]["requests"]) == (
        3, 2, ["REQ-1", "REQ-2", "REQ-3"])
    assert held[0]["data"]["reroutes"][0] == {"request": "REQ-1", "round": 0, "step": 1, "from": [MARK], "to": [PAT]}
    assert _events(sqlite_url, "approval.rerouted") == []
    # the security team is told through the outbox, written with the event
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        told = conn.execute("SELECT recipient, text FROM notice_outbox WHERE kind = 'brake'").fetchall()
    assert sorted(r for r, _ in told) == [SAM, SASHA], told
    assert "safety.max_reroutes (2)" in told[0][1] and "resume reroutes" in told[0][1], told

    # the same set on the next sweep: still held, nothing recorded again
    again = _sweep(sqlite_url, files)
    assert "reroute: 0" in again and "held by the safety brake (safety.max_reroutes): 3" in again, again
    assert len(_events(sqlite_url, "approval.reroutes_held")) == 1

    # while held, the step stays with the manager it asked: he sees and decides it, and sees that passing it on is
    # held; the one the provider names now (the attribute the brake distrusts) is not shown it: his status and his
    # click find nothing, and the click is recorded as held
    status = chat(MARK, "status REQ-1", db=sqlite_url, files=files)
    assert f"from {MARK}; passing it to {PAT} is held by the safety brake (safety.max_reroutes)" in status, status
    assert "Approved REQ-1" in chat(MARK, "approve REQ-1", db=sqlite_url, files=files)
    assert "no request REQ-2 that you can see" in chat(PAT, "status REQ-2", db=sqlite_url, files=files)
    assert "no request REQ-2 that you can see" in chat(PAT, "approve REQ-2", db=sqlite_url, files=files)
    assert [e["data"]["reason"] for e in _events(sqlite_url, "approval.refused")] == ["reroute-held"]
    # the security team sees the hold on the request
    status = chat(SAM, "status REQ-2", db=sqlite_url, files=files)
    assert f"passing it to {PAT} is held by the safety brake" in status, status

    # only the security team releases; the release is recorded with who gave it
    assert "security team only" in chat(BOB, "resume reroutes", db=sqlite_url, files=files)
    assert "Released" in chat(SASHA, "resume reroutes", db=sqlite_url, files=files)
    released = _events(sqlite_url, "approval.reroutes_released")
    assert [(e["actor"], e["data"]["count"]) for e in released] == [(SASHA, 3)], released
    assert "Already released by" in chat(SAM, "resume reroutes", db=sqlite_url, files=files)
    # the next sweep passes on what is left of the held set (REQ-1 was decided meanwhile), once
    out = _sweep(sqlite_url, files)
    assert "reroute: 2 — REQ-2, REQ-3" in out and "held" not in out, out
    assert "reroute: 0" in _sweep(sqlite_url, files)
    assert "Approved REQ-2" in chat(PAT, "approve REQ-2", db=sqlite_url, files=files)
    assert len(_events(sqlite_url, "approval.reroutes_held")) == 1


def test_a_hold_ends_by_itself_when_the_provider_names_the_old_managers_again(tmp_path, sqlite_url):
    files = _setup(tmp_path, sqlite_url, (ALICE, BOB, CAROL))
    _managers(files, (ALICE, BOB, CAROL), PAT)
    assert "held by the safety brake" in _sweep(sqlite_url, files)
    # fewer of the held re-routes is not a release: they wait for a person however few
    _managers(files, (ALICE, BOB), MARK)
    out = _sweep(sqlite_url, files)
    assert "reroute: 0" in out and "held by the safety brake (safety.max_reroutes): 1 — REQ-3" in out, out
    assert len(_events(sqlite_url, "approval.reroutes_held")) == 1  # within the hold in force: not recorded again
    _managers(files, (CAROL,), MARK)
    out = _sweep(sqlite_url, files)
    assert "reroute: 0" in out and "held" not in out, out
    assert [(e["actor"], e["data"]["count"]) for e in _events(sqlite_url, "approval.reroutes_released")] == [
        ("system", 0)]
    # afterwards, a change under the limit is passed on as usual
    _managers(files, (ALICE,), PAT)
    assert "reroute: 1 — REQ-1" in _sweep(sqlite_url, files)


def test_max_reroutes_in_the_policy_file(tmp_path):
    from handlers.policy import load_policy

    files = copy_examples(tmp_path)
    assert load_policy(files.policy).safety.max_reroutes == 25
    base = files.policy.read_text()
    files.policy.write_text(base + "\nsafety: {max_reroutes: 0}\n")
    assert load_policy(files.policy).safety.max_reroutes == 0
    line = base.count("\n") + 3
    for bad in ("-1", "lots", "2.5", "true"):
        files.policy.write_text(base + f"\nsafety:\n  max_reroutes: {bad}\n")
        out = cli("policy", "check", str(files.policy))
        assert out.returncode == 1, bad
        assert f"line {line}: safety.max_reroutes: must be a whole number, 0 or more" in out.stdout + out.stderr, bad


def test_a_new_reroute_kept_waiting_by_the_hold_is_held_like_the_others(tmp_path, sqlite_url):
    dana = "dana.dba@example.com"
    files = _setup(tmp_path, sqlite_url, (ALICE, BOB, CAROL, dana))
    _managers(files, (ALICE, BOB, CAROL), PAT)
    assert "held by the safety brake (safety.max_reroutes): 3" in _sweep(sqlite_url, files)
    # two of the held re-routes are no longer wanted, and a new one is: within the limit, but the hold in force
    # still wants a release, so the new one waits with it
    _managers(files, (BOB, CAROL), MARK)
    _managers(files, (dana,), MARK)
    out = _sweep(sqlite_url, files)
    assert "reroute: 0" in out and "held by the safety brake (safety.max_reroutes): 2 — REQ-1, REQ-4" in out, out
    # held, it stays with the manager it asked: the manager the provider names now does not decide it
    assert "Approved REQ-4" not in chat(MARK, "approve REQ-4", db=sqlite_url, files=files)
    assert [e["data"]["reason"] for e in _events(sqlite_url, "approval.refused")] == ["reroute-held"]
    assert _events(sqlite_url, "approval.granted") == []
    # released with the hold, it is passed on at the next sweep with what is left of the held set
    assert "Released" in chat(SASHA, "resume reroutes", db=sqlite_url, files=files)
    out = _sweep(sqlite_url, files)
    assert "reroute: 2 — REQ-1, REQ-4" in out and "held" not in out, out
    assert "Approved REQ-4" in chat(MARK, "approve REQ-4", db=sqlite_url, files=files)


def test_a_hold_edited_to_name_someone_the_step_never_asked_gives_them_nothing(tmp_path, sqlite_url):
    """The stored hold says whom each held step stays with; the request records whom its step asked. Someone the
    hold names whom the step never asked (a hand-edited row) may not decide it; the manager it asked still may."""
    files = _setup(tmp_path, sqlite_url, (ALICE, BOB, CAROL))
    _managers(files, (ALICE, BOB, CAROL), PAT)
    assert "held by the safety brake (safety.max_reroutes): 3" in _sweep(sqlite_url, files)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        (raw,) = conn.execute("SELECT value FROM compliance_state WHERE key = 'reroute_brake'").fetchone()
        state = json.loads(raw)
        for item in state["held"].values():
            item["from"] = [*item["from"], SAM]
        conn.execute("UPDATE compliance_state SET value = ? WHERE key = 'reroute_brake'", (json.dumps(state),))
    status = chat(SAM, "status REQ-1", db=sqlite_url, files=files)
    step = next(line for line in status.splitlines() if line.strip().startswith("1."))
    assert f"from {MARK};" in step and SAM not in step, status
    assert "not an approver of REQ-1" in chat(SAM, "approve REQ-1", db=sqlite_url, files=files)
    assert "Approved REQ-1" in chat(MARK, "approve REQ-1", db=sqlite_url, files=files)
