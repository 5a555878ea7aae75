"""Block Kit builders: pure, valid by slack_sdk's models, and inside Slack's limits even for huge inputs."""

from __future__ import annotations

from pathlib import Path

import yaml

from cards import slack as blocks
from handlers.views import FormRequest, ProfileView, Reply, RequestView, StepView
from tests.slack.blockcheck import check_message, check_view

ROOT = Path(__file__).resolve().parent.parent.parent


def view(n: int = 7, *, state: str = "pending", justification: str = "fix INC-4411", steps: int = 3,
         approvers: int = 2, waiting: tuple[str, ...] = ("mark.mgr@example.com",)) -> RequestView:
    pool = tuple(f"a{j}@example.com" for j in range(approvers))
    chain = tuple(StepView(index=i + 1, label=f"step-{i}", approvers=pool, approved_by=(), need=1,
                           status="open" if i == 0 else "waiting") for i in range(steps))
    return RequestView(id=f"REQ-{n}", number=n, requester="alice@example.com", requester_name="Alice Ng",
                       profile="prod-db-read", profile_title="Production database, read-only", risk="high",
                       kind="standard", state=state, duration="2h", justification=justification, ticket="INC-4411",
                       submitted_at="2026-11-23T08:00:00Z", provider="directory", group="sg-prod-db-read",
                       policy_version="2026.11", steps=chain, waiting_on=waiting,
                       facts=(("department", "Engineering"),), time_left="1h" if state == "active" else None,
                       expires_at="2026-11-23T10:00:00Z" if state == "active" else None)


def profile(i: int, eligible: bool = True) -> ProfileView:
    return ProfileView(id=f"profile-{i}", title="A very long profile title " * 5, risk="low", eligible=eligible,
                       reason=None if eligible else "ineligible: department", default_duration="1h",
                       max_duration="8h", justification_required=True, ticket_required=False, exception_allowed=True)


def test_approval_message_buttons_only_for_who_can_decide() -> None:
    v = view()
    mine = blocks.approval_message(v, viewer="mark.mgr@example.com")
    check_message(mine)
    [actions] = [b for b in mine["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [("approve", "REQ-7:r0:s1"),
                                                                                 ("deny", "REQ-7:r0:s1")]
    other = blocks.approval_message(v, viewer="bob@example.com")
    check_message(other)
    assert not [b for b in other["blocks"] if b["type"] == "actions"]
    decided = blocks.approval_message(view(state="active", waiting=()), viewer="mark.mgr@example.com")
    assert "REQ-7 is active" in str(decided["blocks"]) and not [b for b in decided["blocks"] if b["type"] == "actions"]


def test_user_text_is_escaped_and_huge_inputs_stay_inside_limits() -> None:
    nasty = "<!channel> <@U0BOSS> <https://evil.example|click> & " + "x" * 6000
    v = view(justification=nasty, steps=30, approvers=200)
    message = blocks.approval_message(v, viewer="mark.mgr@example.com", note=nasty)
    check_message(message)
    text = str(message["blocks"])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "<@U0BOSS>" not in text
    for fallback in (message["text"], blocks.status_message(v, note=nasty)["text"], blocks.text_message(nasty)["text"]):
        assert "<!channel>" not in fallback and "<@U0BOSS>" not in fallback  # notifications show this text
    assert message["blocks"][-1]["type"] == "actions"  # the buttons survive any trimming
    check_message(blocks.status_message(v, note=nasty))
    check_message(blocks.expiring_message(view(state="active"), note=nasty))
    long = blocks.text_message("\n".join(f"line {i} " + "y" * 300 for i in range(500)))
    check_message(long)
    assert len(long["blocks"]) == blocks.MAX_MESSAGE_BLOCKS
    many = blocks.requests_message("Pending", [view(i) for i in range(1, 400)], extra=["drift: " + "z" * 5000])
    check_message(many)


def test_modals_and_home_inside_limits() -> None:
    form = FormRequest(profile="profile-4", duration="2h", justification="j" * 5000, ticket=None,
                       missing=("ticket",), errors={"duration": "too long " * 40},
                       profiles=tuple(profile(i, eligible=i % 3 != 0) for i in range(250)))
    modal = blocks.request_modal(form)
    check_view(modal)
    select = next(b for b in modal["blocks"] if b.get("block_id") == "profile")["element"]
    assert len(select["options"]) == blocks.MAX_OPTIONS and select["initial_option"]["value"] == "profile-4"
    assert all(o["value"] != "profile-0" for o in select["options"])  # only eligible profiles are offered
    errors = blocks.form_errors(form)
    assert set(errors) == {"ticket", "duration"} and all(len(e) <= 150 for e in errors.values())
    check_view(blocks.deny_modal("REQ-7"))
    check_view(blocks.extend_modal("REQ-7", duration="2h"))
    check_view(blocks.result_modal("Not denied", "x" * 10000))
    own = [view(i, state="active" if i % 2 else "pending") for i in range(1, 200)]
    home = blocks.home_view(own=own, waiting_on_me=[view(i) for i in range(300, 360)],
                            queue=[view(i) for i in range(400, 600)], name="Sam Security")
    check_view(home)
    assert home["type"] == "home"


def test_refusals_point_at_their_field_and_values_parse_strictly() -> None:
    def errors(rule: str) -> set[str]:
        return set(blocks.refusal_errors(Reply(text="no", ok=False, kind="refusal", rule=rule)))

    assert errors("duration>max") == {"duration"} and errors("ticket") == {"ticket"}
    assert errors("justification") == {"justification"}
    assert errors("ineligible: employment_type=Contractor") == {"profile"} and errors("already-active") == {"profile"}
    assert blocks.parse_request_value("REQ-7") == 7 == blocks.parse_request_value(" req-7 ")
    for bad in ("REQ-0", "REQ-abc", "REQ-1234567890", "", None, 7, "REQ-7; approve REQ-8"):
        assert blocks.parse_request_value(bad) is None, bad
    assert blocks.modal_values({"values": {"profile": {"profile": {"type": "static_select", "selected_option": None}},
                                           "duration": {"duration": {"type": "plain_text_input", "value": " 2h "}}}}
                               ) == {"profile": None, "duration": "2h"}


def test_manifest_declares_one_url_the_command_the_event_and_only_the_scopes_used() -> None:
    manifest = yaml.safe_load((ROOT / "manifest" / "slack" / "manifest.yaml").read_text())
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/access"
    settings = manifest["settings"]
    urls = {command["url"], settings["event_subscriptions"]["request_url"], settings["interactivity"]["request_url"]}
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert settings["interactivity"]["is_enabled"] and not settings["socket_mode_enabled"]
    assert manifest["features"]["app_home"]["home_tab_enabled"]
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {"commands", "chat:write", "im:write", "users:read",
                                                              "users:read.email"}
    assert "user" not in manifest["oauth_config"]["scopes"]


def test_a_notification_text_is_escaped_once() -> None:
    """A status read by an approver (several lines) reuses the approval message's text: escaped once, so
    that ``&`` in a name shows as ``&`` and not as ``&amp;``; a cut never leaves half an entity."""
    v = RequestView(**{**view().__dict__, "requester_name": "Tom & <Jerry>"})
    status = Reply(text="REQ-7: prod-db-read\n  state: pending", kind="request", request=v)
    text = blocks.reply_message(status, viewer="mark.mgr@example.com")["text"]
    assert "Tom &amp; &lt;Jerry&gt;" in text and "&amp;amp;" not in text and "&amp;lt;" not in text, text
    cut = blocks.text_message("x" * (blocks.MAX_FALLBACK - 3) + "<<<<")["text"]
    assert cut.endswith("…") and not any(cut[:-1].endswith(p) for p in ("&", "&l", "&lt")), cut[-8:]


def test_a_step_whose_re_route_is_held_says_so_on_the_card() -> None:
    """As on the Teams card and in ``status``: whoever sees the request (the security team) sees that passing the
    step on is held, and gets no buttons; the manager it stays with does."""
    held = StepView(index=1, label="manager", approvers=("mark.mgr@example.com",), approved_by=(), need=1,
                    status="open", held_for=("pat.lead@example.com",))
    v = RequestView(**{**view().__dict__, "steps": (held,), "waiting_on": ("mark.mgr@example.com",)})
    message = blocks.approval_message(v, viewer="sam.sec@example.com")
    check_message(message)
    assert "mark.mgr@example.com; passing it to pat.lead@example.com is held by the safety brake" in str(
        message["blocks"])
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    assert [b for b in blocks.approval_message(v, viewer="mark.mgr@example.com")["blocks"] if b["type"] == "actions"]
