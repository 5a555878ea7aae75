"""The identity provider failing in the middle of a command: a clear answer, nothing half-recorded.

People come from Okta (the stand-in). The approval chain is the requester's manager, so a decision
reads the requester at the provider under the write lock. When that look-up fails (500 after the
provider's own retries), ``accessbot chat`` answers that the provider did not answer, naming nobody
(an outsider must not learn whose request it is), the request stays pending with no decision
recorded, and the chain still verifies. Once the provider answers again, the same words go through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.standins.okta import OktaStandIn
from tests.support import EXAMPLES, cli, provider_policy

ANN, BEN, PAT = "ann@example.com", "ben@example.com", "pat.lead@example.com"
UNAVAILABLE = "Could not finish `approve`: the identity provider did not answer (HTTP 500). Try again in a moment."


def _okta_cli(okta: OktaStandIn, database_url: str, policy: Path
              ) -> tuple[Callable[[str, str], str], list[str], dict[str, str]]:
    """``accessbot chat`` with people from Okta (the stand-in): one line as one person, and the CLI's
    arguments and environment for the other commands."""
    env = {"ACCESSBOT_IDENTITY": "okta", "ACCESSBOT_OKTA_URL": okta.url, "ACCESSBOT_OKTA_TOKEN": okta.token}
    args = ["--database-url", database_url, "--policy", str(policy), "--directory", str(EXAMPLES / "directory.yaml")]

    def chat(email: str, line: str) -> str:
        out = cli("chat", "--as", email, *args, input=line + "\n", env=env)
        assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stdout + out.stderr
        return out.stdout

    return chat, args, env


def manager_team(okta: OktaStandIn, tmp_path: Path, version: str) -> tuple[Path, str]:
    """Ann and Ben under Pat at Okta (the stand-in), and a policy whose ``tools`` profile (an Okta group) Pat, their
    manager, approves: the policy file's path and the group's id."""
    group = okta.add_group("tools")
    okta.add_user(PAT, department="Engineering")
    okta.add_user(ANN, department="Engineering", manager=PAT)
    okta.add_user(BEN, department="Engineering", manager=PAT)
    policy = tmp_path / "policy.yaml"
    policy.write_text(provider_policy("okta", group, version=version, approval="[manager]", auto_approve=False))
    return policy, group


def test_a_decision_the_provider_cannot_answer_for_is_not_recorded(database_url: str, tmp_path: Path) -> None:
    with OktaStandIn() as okta:
        policy, group = manager_team(okta, tmp_path, "provider-unavailable-1")
        chat, args, env = _okta_cli(okta, database_url, policy)

        assert "REQ-1 submitted" in chat(ANN, "request tools for 2h")
        okta.fail_path(f"/users/{ANN}", status=500)
        for who in (PAT, BEN):  # the approver, and an outsider who may not see REQ-1
            out = chat(who, "approve REQ-1")
            assert UNAVAILABLE in out or "There is no request REQ-1 that you can see." in out, out
            assert ANN not in out, out
        assert UNAVAILABLE in chat(PAT, "approve REQ-1")

        okta.clear_path_faults()
        assert "pending" in chat(ANN, "status REQ-1").lower()
        audit = cli("audit", "export", *args, env=env)
        assert '"approval.granted"' not in audit.stdout and '"request.approved"' not in audit.stdout, audit.stdout
        verified = cli("audit", "verify", *args, env=env)
        assert verified.returncode == 0 and "OK" in verified.stdout, verified.stdout + verified.stderr

        out = chat(PAT, "approve REQ-1")
        assert "Approved REQ-1" in out, out
        assert okta.member_emails(group) == [ANN]


def test_a_revoke_is_not_said_to_have_failed_once_it_is_recorded(database_url: str, tmp_path: Path) -> None:
    """The security team revokes ann's grant while Okta cannot answer for ann: either nothing is recorded
    and the answer says to try again, or the grant is revoked and the answer says so (never "try again"
    over a grant already ended, which a retry then calls not active)."""
    sam = "sam.sec@example.com"
    with OktaStandIn() as okta:
        group = okta.add_group("tools")
        okta.add_user(PAT, department="Engineering")
        okta.add_user(sam, department="Security")
        okta.add_user(ANN, department="Engineering", manager=PAT)
        policy = tmp_path / "policy.yaml"
        policy.write_text(provider_policy("okta", group, version="provider-unavailable-2", approval="[manager]"))
        chat, _, _ = _okta_cli(okta, database_url, policy)

        assert "auto-approved" in chat(ANN, "request tools for 2h")
        assert okta.member_emails(group) == [ANN]
        okta.fail_path(f"/users/{ANN}", status=500)
        out = chat(sam, "revoke REQ-1 because leaving the project")
        okta.clear_path_faults()
        state = chat(ANN, "status REQ-1").lower()
        if "did not answer" in out:
            assert "state: active" in state and okta.member_emails(group) == [ANN], out + state
        else:
            assert "revoked" in out and "state: revoked" in state, out + state
