"""The README's console tour, played through the real command line as written there."""

from __future__ import annotations

from tests.support import ROOT, cli, copy_examples

README = (ROOT / "README.md").read_text()


def test_the_tour_works_as_the_readme_tells_it(sqlite_url, tmp_path):
    files = copy_examples(tmp_path)

    def say(who: str, line: str, expect: str, code: int = 0) -> str:
        assert line in README, f"the README no longer shows {line!r}"
        r = cli("chat", "--as", who, input=line + "\n", db=sqlite_url, files=files)
        assert expect in r.stdout and r.returncode == code, (line, r.stdout, r.stderr)
        return r.stdout

    say("alice@example.com", "request prod-db-read for 2h because INC-4411 replica lag",
        "Request REQ-1 submitted: prod-db-read for 2h. Waiting on step 1 (manager): mark.mgr@example.com.")
    say("mark.mgr@example.com", "approve REQ-1 looks fine", "Approved REQ-1")
    for who in ("dana.dba@example.com", "sam.sec@example.com", "sasha.sec@example.com"):
        say(who, "approve REQ-1", "Approved REQ-1")
    say("alice@example.com", "mine", "REQ-1 prod-db-read (standard) active")
    say("alice@example.com", "extend REQ-1 by 1h because still digging", "Extension of REQ-1 by 1h submitted")
    say("alice@example.com", "release REQ-1", "REQ-1 released")
    say("sam.sec@example.com", "status REQ-1", "state: released")
    assert "accessbot sweep --as-of 2026-12-01T00:00:00Z" in README
    assert cli("sweep", "--as-of", "2026-12-01T00:00:00Z", db=sqlite_url, files=files).returncode == 0
    assert cli("audit", "verify", db=sqlite_url).stdout.startswith("OK ")

    # the refusals and the rest, in the order the README tells them
    say("carol@example.com", "request prod-db-read", "Refused (ineligible: employment_type=Contractor)", 1)
    say("alice@example.com", "request prod-db-read for 3d because INC-1 x", "Refused (duration>max)", 1)
    say("alice@example.com", "request prod-db-read for 1h because no ticket", "Refused (ticket)", 1)
    say("alice@example.com", "request prod-db-read for 30m because INC-7 page", "auto-approved")
    assert "as `bob@example.com`, `exception prod-db-read for 2d because INC-9 migration weekend`" in README
    say("bob@example.com", "exception prod-db-read for 2d because INC-9 migration weekend",
        "Exception request REQ-3 submitted")
