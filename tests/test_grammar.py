"""The chat grammar: the same words everywhere, and never a guess that acts."""

from __future__ import annotations

import pytest

from handlers.grammar import (
    Approve,
    Deny,
    Evidence,
    Extend,
    Help,
    History,
    Mine,
    Pending,
    Profiles,
    Release,
    RequestAccess,
    Revoke,
    Status,
    Unknown,
    Verify,
    WhoHas,
    clean,
    parse,
)

IDS = ["prod-db-read", "staging-admin", "analytics-read"]


@pytest.mark.parametrize(("text", "expected"), [
    ("help", Help()),
    ("profiles", Profiles()),
    ("mine", Mine()),
    ("pending", Pending()),
    ("verify", Verify()),
    ("request prod-db-read", RequestAccess("prod-db-read")),
    ("request prod-db-read for 2h", RequestAccess("prod-db-read", "2h")),
    ("request Prod-DB-Read for 2 hours because INC-4411 lag", RequestAccess("prod-db-read", "2 hours",
                                                                           "INC-4411 lag", "INC-4411")),
    ("request prod-db-read because CHG-7", RequestAccess("prod-db-read", None, "CHG-7", "CHG-7")),
    ("exception prod-db-read for 2d because migration", RequestAccess("prod-db-read", "2d", "migration",
                                                                      exception=True)),
    ("extend REQ-7 by 1h", Extend(7, "1h")),
    ("extend req-7 by 1h because more", Extend(7, "1h", "more")),
    ("release REQ-3", Release(3)),
    ("status 3", Status(3)),
    ("approve REQ-12", Approve(12)),
    ("approve REQ-12 looks good", Approve(12, "looks good")),
    ("deny REQ-12 because not now", Deny(12, "not now")),
    ("deny REQ-12", Deny(12, None)),
    ("revoke REQ-2 because left", Revoke(2, "left")),
    ("who has prod-db-read", WhoHas("prod-db-read")),
    ("history Bob@Example.com", History("bob@example.com")),
    ("evidence 2026-11-01 2026-11-30", Evidence("2026-11-01", "2026-11-30")),
    ("I need prod-db-read for 2 hours to fix INC-4411", RequestAccess("prod-db-read", "2 hours", "fix INC-4411",
                                                                       "INC-4411")),
])
def test_parse(text, expected):
    assert parse(text, IDS) == expected


@pytest.mark.parametrize("text", [
    "hello", "approve", "approve everyone", "deny", "I need prod-db-read and staging-admin",
    "prod-db-read", "release all", "request prod-db-read please now", "drop table requests;",
    "extend REQ-1 for 2h",
])
def test_unclear_is_never_acted_on(text):
    assert isinstance(parse(text, IDS), Unknown | Help)


def test_clean_drops_controls_and_bidi():
    assert clean("a\u202eb\x00c\td\u2066") == "abc d"
    assert clean("  many   spaces\n") == "many spaces"


def test_overlong_text_is_refused():
    assert isinstance(parse("request prod-db-read because " + "x" * 5000, IDS), Unknown)
