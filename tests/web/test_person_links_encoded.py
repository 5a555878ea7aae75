"""A link built from data puts it in the URL path percent-encoded: an address with ``#``, ``?``, ``%``, ``/``,
``+`` or ``'`` in it (the directory accepts any of them before the ``@``) links to that person's own page,
and the route decodes it back."""

from __future__ import annotations

import html
import re

import pytest
from markupsafe import escape

ODD = ["o'brien+x%y@example.com", "a/b#c?d@example.com", "pc%2Ft@example.com", "sp&ce+%41@example.com"]


@pytest.mark.parametrize("email", ODD)
async def test_the_requester_link_leads_to_the_requesters_own_page(web_harness, email: str) -> None:
    h = web_harness

    def add(data: dict) -> None:
        frank = next(u for u in data["users"] if u["email"] == "frank@example.com")
        data["users"].append({**frank, "email": email, "name": "Odd Address", "slack_id": None})

    h.files.edit_directory(add)
    reply = await h.say(email, "request analytics-read for 2d because quarter close")
    assert reply.ok and reply.request is not None, reply.text
    for viewer in ("sam.sec@example.com", email):  # the security team, and the person themselves
        cookie = await h.sign_in(viewer)
        page = await h.get(f"/dashboard/requests/{reply.request.id}", cookie=cookie)
        assert page.status == 200, page.text
        href = html.unescape(re.search(r'<dt>Requester</dt><dd><a href="([^"]+)"', page.text).group(1))
        assert "#" not in href and "?" not in href and href.count("/") == 3, href
        person = await h.get(href, cookie=cookie)
        assert person.status == 200, (href, person.status)
        assert f"<dt>Email</dt><dd>{escape(email.lower())}</dd>" in person.text, href
        ids = re.findall(r'<a href="(/dashboard/requests/[^"]+)">', person.text)
        assert ids
        for i in ids:
            assert (await h.get(html.unescape(i), cookie=cookie)).status == 200, i
