"""``who has`` on Teams: the group's members no grant explains are listed in one block, as many as it shows after
escaping, and how many more there are is said, never cut off unsaid."""

from __future__ import annotations

import re
from pathlib import Path

from cards.adaptive import MAX_TEXT
from tests.teams.cardcheck import check_card
from tests.teams.conftest import TeamsHarness, conversation_id

SAM = "sam.sec@example.com"


def _members(directory: Path, group: str, names: list[str]) -> None:
    """The directory file with ``group``, empty in it, holding ``names``."""
    text = directory.read_text()
    assert f"  {group}: []\n" in text
    directory.write_text(text.replace(f"  {group}: []\n", f"  {group}: [{', '.join(names)}]\n"))


async def test_who_has_says_how_many_members_without_a_grant_it_left_out(teams: TeamsHarness) -> None:
    h = teams
    names = [f"r_d*{i:03}@example.com" for i in range(300)]  # each grows by escaping
    _members(Path(h.app.settings.directory), "sg-staging-admin", names)
    await h.say(SAM, "who has staging-admin")
    card = check_card(h.connector.of("reply", conversation_id(SAM))[-1].card or {})
    line = [b["text"] for b in card["body"] if b["type"] == "TextBlock"
            and b["text"].startswith("Members without a grant (drift): ")]
    assert len(line) == 1, card["body"]
    more = re.search(r", … and (\d+) more$", line[0])
    assert more is not None, line[0][-60:]
    shown = line[0].replace("\\", "").removeprefix("Members without a grant (drift): ").split(", ")[:-1]
    assert shown == names[:len(shown)] and len(shown) + int(more.group(1)) == len(names), (len(shown), more)
    assert MAX_TEXT - 40 < len(line[0]) <= MAX_TEXT
