"""A request's checks run in SPEC §3.1's order: profile, ineligible, eligible, duration,
justification, ticket, chain steps — the first that fails is the rule refused with."""

from __future__ import annotations

import json

from handlers.grammar import RequestAccess
from tests.support import cli, copy_examples, harness


def _rules(db: str) -> list[str]:
    events = [json.loads(x) for x in cli("audit", "export", db=db, check=True).stdout.splitlines()]
    return [e["data"]["rule"] for e in events if e["type"] == "request.refused"]


def test_order_through_the_console(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)
    lines = ["request prod-db-read",                      # carol: no justification, no ticket, a contractor
             "request prod-db-read for 3d",
             "request analytics-read"]                     # Engineering: eligible, auto-approved
    out = cli("chat", "--as", "carol@example.com", input="\n".join(lines) + "\n", db=sqlite_url, files=files).stdout
    assert out.count("Refused (ineligible: employment_type=Contractor)") == 2, out
    out = cli("chat", "--as", "bob@example.com", db=sqlite_url, files=files,
              input="request prod-db-read for 3d\nrequest prod-db-read for 2x\nrequest prod-db-read for 2h\n"
                    "request prod-db-read for 2h because no ticket here\n").stdout
    assert "Refused (duration>max)" in out and "Refused (duration)" in out, out
    assert "Refused (justification)" in out and "Refused (ticket)" in out, out
    assert _rules(sqlite_url) == ["ineligible: employment_type=Contractor"] * 2 + [
        "duration>max", "duration", "justification", "ticket"]


async def test_forms_open_only_for_an_eligible_asker(sqlite_url, tmp_path):
    async with harness(sqlite_url, tmp_path) as h:
        carol = await h.app.service.identify("carol@example.com")
        r = await h.app.service.handle(carol, RequestAccess("prod-db-read"), forms=True)
        assert r.form is None and r.rule == "ineligible: employment_type=Contractor", r
        bob = await h.app.service.identify("bob@example.com")
        r = await h.app.service.handle(bob, RequestAccess("prod-db-read", "3d"), forms=True)
        assert r.form is not None and "duration" in r.form.errors and "maximum" in r.form.errors["duration"]
        assert set(r.form.missing) == {"justification", "ticket"}
        r = await h.app.service.handle(bob, RequestAccess("prod-db-read", "2h"), forms=True)
        assert r.form is not None and set(r.form.missing) == {"justification", "ticket"}
