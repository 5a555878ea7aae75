"""The soak's outside checks (bench/soak_checks.py) find what they are meant to find."""

from __future__ import annotations

from typing import Any

from bench.soak_checks import drift_reports, expected_members, lives

CHAINS = {"p": [("manager", 1)], "glass": [("all_of", 1)], "two": [("n_of", 2)]}
BOB, MARK, SAM, SASHA = "bob@x", "mark@x", "sam@x", "sasha@x"


class Log:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, type_: str, actor: str = "system", ref: str | None = "REQ-1", profile: str = "p",
                 ts: str = "2026-11-30T10:00:00.000Z", **data: Any) -> Log:
        self.events.append({"seq": len(self.events) + 1, "type": type_, "actor": actor, "request_id": ref,
                            "profile": profile, "ts": ts, "data": data})
        return self


def submitted(profile: str = "p", approvers: tuple[str, ...] = (MARK,)) -> Log:
    return (Log()("request.submitted", BOB, profile=profile, kind="standard", duration="1h")
            ("approval.requested", profile=profile, step=1, approvers=list(approvers)))


def check(log: Log) -> list[str]:
    return lives(log.events, CHAINS)[1]


def test_a_legal_life_passes() -> None:
    log = (submitted()("approval.granted", MARK, step=1)("request.approved", MARK, auto=False)
           ("grant.provisioned", expires_at="2026-11-30T11:00:00.000Z")
           ("request.extension_requested", BOB, extension=True, duration="1h")
           ("approval.requested", step=1, approvers=[MARK], extension=True)
           ("approval.granted", MARK, step=1, extension=True)("grant.extended", MARK, extension=True)
           ("grant.released", BOB))
    found, bad = lives(log.events, CHAINS)
    assert bad == [] and found["REQ-1"].state == "released"


def test_self_approval_double_counting_and_a_shrunk_all_of_step_are_violations() -> None:
    assert any("self-approval" in v for v in check(submitted(approvers=(BOB,))("approval.granted", BOB, step=1)))
    twice = submitted("two", (SAM, SASHA))("approval.granted", SAM, step=1)("approval.granted", SAM, step=1)
    assert any("counted twice" in v for v in check(twice))
    shrunk = (submitted("glass", (SAM, SASHA))("approval.granted", SAM, profile="glass", step=1)
              ("request.approved", SAM, profile="glass", auto=False))
    assert any("1 approval(s) of 2" in v for v in check(shrunk))


def test_ending_before_the_add_must_say_so_and_nothing_is_provisioned_after() -> None:
    approved = submitted()("approval.granted", MARK, step=1)("request.approved", MARK, auto=False)
    silent = Log()
    silent.events = [*approved.events]
    silent("grant.released", BOB)
    assert any("without saying so" in v for v in check(silent))
    said = Log()
    said.events = [*approved.events]
    said("grant.released", BOB, provisioned=False)("grant.provisioned", expires_at="2026-11-30T11:00:00.000Z")
    bad = check(said)
    assert len(bad) == 1 and "provisioned when not approved" in bad[0]


def test_a_grant_held_past_its_duration_and_false_drift_are_found() -> None:
    log = (submitted()("approval.granted", MARK, step=1)("request.approved", MARK, auto=False)
           ("grant.provisioned", expires_at="2026-11-30T13:00:00.000Z"))  # 3 h for a 1 h request
    assert any("runs 10800 s" in v for v in check(log))
    log("drift.detected", ref=None, provider="directory", group="g", user=BOB)
    assert len(drift_reports(log.events)) == 1


def test_expected_members_are_the_holders_of_active_grants() -> None:
    log = (submitted()("approval.granted", MARK, step=1)("request.approved", MARK, auto=False)
           ("grant.provisioned", expires_at="2026-11-30T11:00:00.000Z"))
    found, _ = lives(log.events, CHAINS)
    assert expected_members(found, {"p": ("directory", "g"), "q": ("entra", "h")}) == {
        ("directory", "g"): {BOB}, ("entra", "h"): set()}
