"""A person page's trail holds the events about that person (a termination, a membership removed) whatever the
letters of their address: the audit chain stores ``data`` as canonical JSON with non-ASCII letters as they are,
so the search for them must spell the address the same way (not as ``\\u00e9``)."""

from __future__ import annotations

import re
from urllib.parse import quote

TYPES = re.compile(r'<strong class="type">([^<]+)</strong>')


def hire(email: str, name: str):  # type: ignore[no-untyped-def]
    def change(data: dict) -> None:
        data["users"].append({"email": email, "name": name, "department": "Engineering", "title": "Engineer",
                              "employment_type": "FTE", "manager": "mark.mgr@example.com", "active": True})

    return change


async def test_a_leaver_with_a_non_ascii_address_has_the_termination_on_their_page(web_any_db) -> None:
    h = web_any_db
    h.files.edit_directory(hire("josé@example.com", "José Ruiz"))
    h.files.add_to_group("sg-prod-k8s-admin", "josé@example.com")
    h.files.set_active("josé@example.com", False)
    report = await h.app.service.sweep()
    assert report.terminated == ["josé@example.com"], report.lines()
    recorded = {e["type"] for e in await h.events() if e["data"].get("user") == "josé@example.com"}
    assert {"user.terminated", "membership.removed"} <= recorded

    cookie = await h.sign_in("sam.sec@example.com")
    page = await h.get("/dashboard/people/" + quote("josé@example.com", safe="@"), cookie=cookie)
    assert page.status == 200, page.text
    trail = page.text.split("<h2>Trail</h2>", 1)[1]
    assert {"user.terminated", "membership.removed"} <= set(TYPES.findall(trail)), trail

