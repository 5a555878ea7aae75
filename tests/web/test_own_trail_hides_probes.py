"""One's own person page must not tell apart a request one may not see from one that does not exist.

Chat answers ``status REQ-n`` / ``approve REQ-n`` the same for a request the asker may not see and for one
that does not exist (SPEC §4.1), and the dashboard answers both with the same 403 page. But the refused
attempt on a request that exists is recorded (``command.refused`` / ``approval.refused`` with the request's
id, its current step and whether it is an extension), and ``/dashboard/people/<own email>`` shows every event
whose actor is the viewer. Anyone could probe another person's request from chat and read on their own
page whether it exists, whether it was still open, at which step of its chain it waits, and whether it is an
extension round -- none of which they may ``status``. Hence a viewer outside the security team sees on their own
page only the events that name no request or one they may ``status``; the security team still sees every
event on anyone's page.
"""

from __future__ import annotations

import re

SEQ = re.compile(r'data-seq="(\d+)"')


async def trail(h, cookie: str) -> tuple[set[str], str]:
    """The seqs shown in frank's trail, and the trail's HTML."""
    page = await h.get("/dashboard/people/frank@example.com", cookie=cookie)
    assert page.status == 200
    section = page.text.split("<h2>Trail</h2>", 1)[1]
    return set(SEQ.findall(section)), section


async def test_probing_a_hidden_request_leaves_nothing_on_ones_own_page_that_a_missing_one_does_not(
        web_any_db) -> None:
    """Frank's probes (``status``, ``approve``) of alice's request leave nothing on his own page that probing a
    request that does not exist would not; the security team still sees them on his page."""
    h = web_any_db
    hidden = await h.say("alice@example.com", "request staging-admin for 1h")  # waits on mark.mgr
    assert hidden.request is not None
    ref = hidden.request.id
    cookie = await h.sign_in("frank@example.com")  # neither the requester, an approver, nor the security team
    assert (await h.get(f"/dashboard/requests/{ref}", cookie=cookie)).status == 403

    before, _ = await trail(h, cookie)
    missing = []
    for text in ("status REQ-99999", "approve REQ-99999 ok"):  # a request that does not exist
        reply = await h.say("frank@example.com", text)
        missing.append(reply.text)
        assert not reply.ok
    after_missing, _ = await trail(h, cookie)
    assert after_missing == before  # nothing to see for a request that does not exist

    answers = []
    for text in (f"status {ref}", f"approve {ref} ok"):  # the same words about alice's hidden request
        reply = await h.say("frank@example.com", text)
        answers.append(reply.text.replace(ref, "REQ-99999"))
        assert not reply.ok
    assert answers == missing  # chat does not tell them apart
    after_hidden, section = await trail(h, cookie)
    new = after_hidden - after_missing
    shown = [" ".join(re.sub(r"<[^>]+>", " ", li).split())[:120]
             for li in section.split("<li ")[1:] if any(f'data-seq="{s}"' in li for s in new)]
    assert not new, ("frank's own page shows his probes of a request he may not see "
                     f"(and a missing one leaves nothing): {shown}")
    security = await h.sign_in("sam.sec@example.com")
    seen_by_security, _ = await trail(h, security)
    refused = {str(e["seq"]) for e in await h.events() if e["actor"] == "frank@example.com"
               and e["type"] in ("command.refused", "approval.refused")}
    assert refused and refused <= seen_by_security
