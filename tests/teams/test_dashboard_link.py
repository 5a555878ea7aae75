"""The chat word ``dashboard`` in Teams: the one-time sign-in link reaches only the asker's personal chat.

Asked in a channel or a group chat, the link goes to the asker's 1:1 chat with the bot (started through
the Bot Connector when there is none yet) and the conversation it was asked in hears only where it went;
when no personal chat can be had, it hears where to ask instead. The link is then used against the
dashboard the same server serves: once, within five minutes, for the person who asked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.teams.bot import ASK_PRIVATELY, SENT_PRIVATELY
from tests.teams.cardcheck import texts_of
from tests.teams.conftest import AAD, TENANT, TeamsHarness, conversation_id
from tests.teams.standins import Posted

ALICE, BOB = "alice@example.com", "bob@example.com"
LINK = re.compile(r"/dashboard/link/[A-Za-z0-9_-]{20,}")
CHANNEL_CONVERSATION = "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2;messageid=1763884800000"
GROUP_CONVERSATION = "19:meeting_7f3c2b1a9e8d4c6b@thread.v2"


def everything(p: Posted) -> str:
    return json.dumps(p.body)


def links_in(posted: list[Posted]) -> list[tuple[str, str, str]]:
    """(kind, conversation, link path) for every link the bot posted anywhere."""
    return [(p.kind, p.conversation, m) for p in posted for m in LINK.findall(everything(p))]


def text_of(p: Posted) -> str:
    return p.text + (texts_of(p.card) if p.card else "")


def in_channel(h: TeamsHarness, email: str, text: str) -> dict[str, Any]:
    act = h.activity("message_personal", email, text=f"<at>accessbot</at> {text}")
    act["conversation"] = {"conversationType": "channel", "isGroup": True, "id": CHANNEL_CONVERSATION,
                           "tenantId": TENANT, "name": "General"}
    act["channelData"] = {"tenant": {"id": TENANT}, "team": {"id": "19:team@thread.tacv2", "name": "Ops"},
                          "channel": {"id": "19:4a95f7d8db4c4e7fae857bcebe0623e6@thread.tacv2", "name": "General"}}
    act["entities"] = [{"type": "mention", "text": "<at>accessbot</at>", "mentioned": act["recipient"]}]
    return act


def in_group_chat(h: TeamsHarness, email: str, text: str, *, typed: bool = True) -> dict[str, Any]:
    act = h.activity("message_personal", email, text=text)
    act["conversation"] = {"conversationType": "groupChat", "isGroup": True, "id": GROUP_CONVERSATION,
                           "tenantId": TENANT}
    if not typed:  # a group that does not name its type is still a group
        del act["conversation"]["conversationType"]
    return act


async def ask(h: TeamsHarness, activity: dict[str, Any]) -> None:
    status, _ = await h.post(activity)
    assert status in (200, 201), status
    await h.idle()


async def use(h: TeamsHarness, path: str, cookie: str | None = None) -> tuple[int, str, str]:
    """POST the link's confirmation form as the browser would: (status, page, session cookie set)."""
    headers = {"Origin": h.url, **({"Cookie": cookie} if cookie else {})}
    async with h.http.post(h.url + path, headers=headers, allow_redirects=False) as resp:
        morsel = resp.cookies.get("accessbot_session")
        return resp.status, await resp.text(), f"accessbot_session={morsel.value}" if morsel else ""


async def test_in_a_personal_chat_the_link_is_the_answer_and_signs_in_once(teams: TeamsHarness) -> None:
    h = teams
    await ask(h, h.activity("message_personal", ALICE, text="dashboard"))
    [(kind, conversation, path)] = links_in(h.connector.of())
    assert (kind, conversation) == ("reply", conversation_id(ALICE))
    status, _, cookie = await use(h, path)
    assert status == 303 and cookie
    async with h.http.get(h.url + "/dashboard", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200 and "Alice Ng" in await resp.text()
    status, page, again = await use(h, path)
    assert status == 403 and "used already" in page and not again
    signed = await h.events("dashboard.signed_in")
    assert [(e["actor"], e["data"]["channel"]) for e in signed] == [(ALICE, "link")]


async def test_asked_in_a_channel_the_link_goes_to_a_new_personal_chat_only(teams: TeamsHarness) -> None:
    h = teams
    await ask(h, in_channel(h, ALICE, "dashboard"))
    [(kind, conversation, path)] = links_in(h.connector.of())
    [created] = h.connector.of("create")
    assert (kind, conversation) == ("send", created.conversation)
    assert created.body["isGroup"] is False and [m["id"] for m in created.body["members"]] == [AAD[ALICE]]
    assert created.body["tenantId"] == TENANT
    # the channel hears where the link went, never the link
    [answer] = h.connector.of(conversation=CHANNEL_CONVERSATION)
    assert answer.kind == "reply" and SENT_PRIVATELY in text_of(answer) and not LINK.search(everything(answer))
    # the new chat is remembered as alice's personal chat: the next link goes there without a new chat
    await ask(h, in_channel(h, ALICE, "dashboard"))
    assert len(h.connector.of("create")) == 1
    assert [c for _, c, _ in links_in(h.connector.of())] == [created.conversation] * 2
    # the link signs in alice, the person who asked, and nobody else's session takes it
    status, _, cookie = await use(h, path)
    assert status == 303 and cookie
    assert [e["actor"] for e in await h.events("dashboard.signed_in")] == [ALICE]


async def test_asked_in_a_channel_by_someone_with_a_personal_chat_it_goes_there(teams: TeamsHarness) -> None:
    h = teams
    status, _ = await h.post(h.activity("installation_update_add", ALICE))  # alice's 1:1 chat is known
    assert status == 200
    await ask(h, in_channel(h, ALICE, "dashboard"))
    assert [(k, c) for k, c, _ in links_in(h.connector.of())] == [("send", conversation_id(ALICE))]
    assert h.connector.of("create") == []


async def test_asked_in_a_group_chat_without_a_personal_chat_the_link_is_never_shown(teams: TeamsHarness) -> None:
    h = teams
    h.connector.refuse_create = 403  # the app is not installed for bob personally
    await ask(h, in_group_chat(h, BOB, "dashboard"))
    assert links_in(h.connector.of()) == []
    [answer] = h.connector.of(conversation=GROUP_CONVERSATION)
    assert ASK_PRIVATELY in text_of(answer)
    assert await h.events("dashboard.signed_in") == []
    # once bob has a personal chat, the same word in the group chat reaches him there
    h.connector.refuse_create = None
    await ask(h, in_group_chat(h, BOB, "dashboard"))
    [(kind, conversation, _)] = links_in(h.connector.of())
    assert kind == "send" and conversation != GROUP_CONVERSATION
    assert SENT_PRIVATELY in text_of(h.connector.of(conversation=GROUP_CONVERSATION)[-1])


async def test_a_group_chat_that_does_not_name_its_type_is_never_taken_for_a_personal_one(teams: TeamsHarness) -> None:
    h = teams
    await ask(h, in_group_chat(h, BOB, "dashboard", typed=False))
    [(kind, conversation, _)] = links_in(h.connector.of())
    assert kind == "send" and conversation != GROUP_CONVERSATION
    async with h.app.store.read() as repo:  # nor remembered as bob's personal chat (approval cards go there)
        ref = await repo.address("teams", BOB)
    assert ref is not None and ref["conversation"]["id"] == conversation


async def test_a_link_from_a_channel_request_expires_and_cannot_swap_another_session(teams: TeamsHarness) -> None:
    h = teams
    await ask(h, h.activity("message_personal", BOB, text="dashboard"))
    await ask(h, in_channel(h, ALICE, "dashboard"))
    bob_link, alice_link = (path for _, _, path in links_in(h.connector.of()))
    status, _, bob = await use(h, bob_link)
    assert status == 303
    # alice's link in bob's signed-in browser: refused, and left for alice
    status, page, swapped = await use(h, alice_link, cookie=bob)
    assert status == 403 and "signed in as bob@example.com" in page and not swapped
    h.clock.advance(minutes=5, seconds=1)
    status, page, late = await use(h, alice_link)
    assert status == 403 and "expired" in page and not late
    assert [e["actor"] for e in await h.events("dashboard.signed_in")] == [BOB]
