"""An approver who left for good stops holding the step that asked them (SPEC §3.6, §3.2).

Someone an open step asked who is missing from the directory makes it wait: a blip or a half-written file must
not fail a request. Once the leaver sweep has confirmed them gone (missing for two sweeps at least
``safety.unknown_grace`` apart, recorded ``user.terminated``), the step is judged without them: if nobody else
can decide it, it fails closed naming the step, as it does for an approver found inactive; if the directory
names a new manager, the step is re-routed as usual. Each command is a separate ``accessbot`` process.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import Files, chat, cli
from tests.test_pinned_steps import BOB, DANA, SAM, SASHA, drop_users, events, state, world  # noqa: F401

MARK, PAT = "mark.mgr@example.com", "pat.lead@example.com"


def _sweep(db: str, files: Files, later: timedelta = timedelta(0)) -> str:
    args = ["sweep"] + (["--as-of", (datetime.now(UTC) + later).isoformat()] if later else [])
    return cli(*args, db=db, files=files, check=True).stdout


def _terminated(db: str) -> list[str]:
    return [e["data"]["user"] for e in events(db, "user.terminated")]


def test_a_manager_step_fails_closed_once_its_deleted_manager_is_a_confirmed_leaver(
        world: tuple[str, Files]) -> None:  # noqa: F811
    db, files = world
    chat(BOB, "request staging-admin for 1h", db=db, files=files)
    drop_users(files, MARK)  # Bob's entry still names him: nobody else may decide the step
    out = _sweep(db, files)
    assert "fail: 0" in out and "not found, waiting for the grace: 1 — mark.mgr@example.com" in out, out
    out = _sweep(db, files, timedelta(minutes=30))  # within safety.unknown_grace (1h): he may come back
    assert "fail: 0" in out and state(db, 1) == "pending" and _terminated(db) == [], out
    out = _sweep(db, files, timedelta(hours=2))
    assert _terminated(db) == [MARK], out
    assert "fail: 1 — REQ-1" in out, out
    [failed] = events(db, "request.failed")
    assert failed["data"]["rule"] == "step 1: manager", failed
    assert not events(db, "grant.provisioned")
    assert "fail: 0" in _sweep(db, files, timedelta(hours=3))  # once


def test_a_manager_step_is_rerouted_when_the_directory_names_a_new_manager(world: tuple[str, Files]) -> None:  # noqa: F811
    db, files = world
    chat(BOB, "request staging-admin for 1h", db=db, files=files)
    drop_users(files, MARK)
    _sweep(db, files)

    def new_manager(data: dict) -> None:
        for u in data["users"]:
            if u["email"] == BOB:
                u["manager"] = PAT

    files.edit_directory(new_manager)
    out = _sweep(db, files, timedelta(hours=2))
    assert _terminated(db) == [MARK] and "reroute: 1 — REQ-1" in out and "fail: 0" in out, out
    assert "Approved REQ-1" in chat(PAT, "approve REQ-1", db=db, files=files)
    assert state(db, 1) == "active"


def test_an_all_of_step_fails_closed_once_a_member_it_asked_is_a_confirmed_leaver(
        world: tuple[str, Files]) -> None:  # noqa: F811
    db, files = world
    chat(BOB, "request break-glass", db=db, files=files)
    drop_users(files, SASHA)
    chat(SAM, "approve REQ-1", db=db, files=files)
    assert "fail: 0" in _sweep(db, files)
    assert "fail: 0" in _sweep(db, files, timedelta(minutes=30))
    out = _sweep(db, files, timedelta(hours=2))
    assert _terminated(db) == [SASHA] and "fail: 1 — REQ-1" in out, out
    [failed] = events(db, "request.failed")
    assert failed["data"]["rule"] == "step 1: all_of security", failed


def test_an_n_of_step_goes_on_with_those_left(world: tuple[str, Files]) -> None:  # noqa: F811
    db, files = world
    chat(BOB, "request two-of-three", db=db, files=files)
    drop_users(files, SASHA)  # two of the trio are left: the step can still be decided
    chat(SAM, "approve REQ-1", db=db, files=files)
    _sweep(db, files)
    out = _sweep(db, files, timedelta(hours=2))
    assert _terminated(db) == [SASHA] and "fail: 0" in out, out
    chat(DANA, "approve REQ-1", db=db, files=files)
    assert state(db, 1) == "active"


def test_an_n_of_step_fails_closed_when_fewer_than_n_are_left(world: tuple[str, Files]) -> None:  # noqa: F811
    db, files = world
    chat(BOB, "request two-of-three", db=db, files=files)
    drop_users(files, SASHA, DANA)
    chat(SAM, "approve REQ-1", db=db, files=files)
    out = _sweep(db, files)
    assert "fail: 0" in out, out
    out = _sweep(db, files, timedelta(hours=2))
    assert sorted(_terminated(db)) == sorted([SASHA, DANA]) and "fail: 1 — REQ-1" in out, out
    [failed] = events(db, "request.failed")
    assert failed["data"]["rule"] == "step 1: 2 of trio", failed


def test_a_directory_that_cannot_be_read_confirms_no_approver_gone(world: tuple[str, Files]) -> None:  # noqa: F811
    """A half-written directory file for hours (every look-up failing, not answering 'not found') terminates no
    approver and fails no step; once it reads again with the manager there, nothing happened."""
    db, files = world
    chat(BOB, "request staging-admin for 1h", db=db, files=files)
    good = files.directory.read_text()
    files.directory.write_text(good[: len(good) // 2] + "\n  - {unclosed: [")
    for later in (timedelta(0), timedelta(hours=2), timedelta(hours=4)):
        cli("sweep", "--as-of", (datetime.now(UTC) + later).isoformat(), db=db, files=files)
    assert _terminated(db) == [] and state(db, 1) == "pending"
    assert events(db, "request.failed") == []
    files.directory.write_text(good)
    out = _sweep(db, files, timedelta(hours=5))
    assert "fail: 0" in out and _terminated(db) == [] and state(db, 1) == "pending", out
