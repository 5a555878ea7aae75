"""The chat word ``dashboard`` in Slack: the one-time sign-in link reaches the asker alone.

``/access dashboard`` typed in a channel or a group DM is answered ephemerally through the command's
``response_url`` (only the asker sees it), or in the asker's DM; never by a message in the channel.
The link is then used against the dashboard the same server serves: once, within five minutes, for
the person who asked.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

from tests.slack.conftest import UID, SlackHarness, fixture

ALICE, BOB = "alice@example.com", "bob@example.com"
LINK = re.compile(r"/dashboard/link/[A-Za-z0-9_-]{20,}")


def links_posted(h: SlackHarness) -> list[tuple[str, str]]:
    """(where, link path) for every link the bot sent anywhere: a Web API call or a response_url."""
    found = [(f"{c.method}:{c.args.get('channel', '')}", m) for c in h.api.calls
             for m in dict.fromkeys(LINK.findall(json.dumps(c.args)))]  # text and blocks: one message
    found += [(f"response:{r.get('response_type')}", m) for r in h.api.responses
              for m in dict.fromkeys(LINK.findall(json.dumps(r)))]
    return found


async def command_in(h: SlackHarness, email: str, text: str, channel_id: str, channel_name: str,
                     response_url: str | None = None) -> None:
    form = fixture("slash_command")
    uid = UID[email]
    form.update(user_id=uid, user_name=uid.lower(), text=text, channel_id=channel_id, channel_name=channel_name,
                response_url=h.response_url() if response_url is None else response_url, trigger_id=h.trigger())
    sent = await h.post_raw(urlencode(form), "application/x-www-form-urlencoded")
    assert sent.status == 200, sent.text


async def use(h: SlackHarness, path: str, cookie: str | None = None) -> tuple[int, str, str]:
    headers = {"Origin": h.url, **({"Cookie": cookie} if cookie else {})}
    async with h.http.post(h.url + path, headers=headers, allow_redirects=False) as resp:
        morsel = resp.cookies.get("accessbot_session")
        return resp.status, await resp.text(), f"accessbot_session={morsel.value}" if morsel else ""


async def test_asked_in_a_channel_the_link_is_ephemeral_and_signs_in_once(slack: SlackHarness) -> None:
    h = slack
    await command_in(h, ALICE, "dashboard", "C0GENERAL", "general")
    [(where, path)] = links_posted(h)
    assert where == "response:ephemeral"
    assert not [c for c in h.api.calls_of("chat.postMessage") if str(c.args.get("channel", "")).startswith("C")]
    assert h.last_response()["response_type"] == "ephemeral"
    status, _, cookie = await use(h, path)
    assert status == 303 and cookie
    async with h.http.get(h.url + "/dashboard", headers={"Cookie": cookie}) as resp:
        assert resp.status == 200 and "Alice Ng" in await resp.text()
    status, page, again = await use(h, path)
    assert status == 403 and "used already" in page and not again
    signed = await h.events("dashboard.signed_in")
    assert [(e["actor"], e["data"]["channel"]) for e in signed] == [(ALICE, "link")]


async def test_asked_in_a_group_dm_the_link_is_ephemeral_too(slack: SlackHarness) -> None:
    h = slack
    await command_in(h, BOB, "dashboard", "G0MPDM42", "mpdm-alice--bob--carol-1")
    [(where, _)] = links_posted(h)
    assert where == "response:ephemeral"
    assert not [c for c in h.api.calls_of("chat.postMessage") if c.args.get("channel") != "D" + UID[BOB]]


async def test_without_a_response_url_the_link_goes_to_the_askers_dm(slack: SlackHarness) -> None:
    h = slack
    await command_in(h, ALICE, "dashboard", "C0GENERAL", "general", response_url="")
    [(where, _)] = links_posted(h)
    assert where == f"chat.postMessage:D{UID[ALICE]}"
    assert LINK.search(h.api.dm(UID[ALICE])[-1].all_text)


async def test_a_link_expires_and_cannot_swap_another_persons_session(slack: SlackHarness) -> None:
    h = slack
    await command_in(h, BOB, "dashboard", "C0GENERAL", "general")
    await command_in(h, ALICE, "dashboard", "C0GENERAL", "general")
    (_, bob_link), (_, alice_link) = links_posted(h)
    status, _, bob = await use(h, bob_link)
    assert status == 303
    status, page, swapped = await use(h, alice_link, cookie=bob)
    assert status == 403 and "signed in as bob@example.com" in page and not swapped
    async with h.http.get(h.url + "/dashboard", headers={"Cookie": bob}) as resp:
        assert resp.status == 200 and "Bob Ortiz" in await resp.text()  # still bob
    h.clock.advance(minutes=5, seconds=1)
    status, page, late = await use(h, alice_link)
    assert status == 403 and "expired" in page and not late
    assert [e["actor"] for e in await h.events("dashboard.signed_in")] == [BOB]
