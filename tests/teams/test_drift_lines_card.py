"""The security team's lines of a drift sweep due for one member (handlers/outbox.py ``combined``) reach them on
Teams as one Adaptive Card that reads as the Slack message does: a TextBlock shows only a subset of Markdown (no
code spans, a list only after a line break), so each line is a block of its own, the chat command in it is bold
rather than between backticks, and what a name holds (``*``, ``_``, ``<``, a line break) is shown as it is."""

from __future__ import annotations

from handlers.outbox import BATCH_LINES, deliver_pending
from handlers.ports import Notice
from tests.teams.cardcheck import check_card
from tests.teams.conftest import TeamsHarness, conversation_id

SAM = "sam.sec@example.com"


async def test_the_combined_drift_lines_are_one_card_a_block_per_line(teams_any_db: TeamsHarness) -> None:
    h = teams_any_db
    status, _ = await h.say(SAM, "help")  # Sam's personal chat with the bot is known
    assert status == 200
    n = BATCH_LINES + 3
    async with h.app.store.write() as repo:
        await repo.queue_notices(
            [Notice(SAM, "drift", f"Drift: D-{i}: a_b*{i}*@example.com is in directory/<ops>\n- x "
                                  f"(`drift remove D-{i} because …` or `drift accept D-{i} for 30d because …`)", None)
             for i in range(1, n + 1)], h.clock.now())
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await deliver_pending(h.app.deps) == n
    await h.idle()
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    assert len(sent) == 1 and sent[0].text == "", [p.body for p in sent]  # a card, not plain text
    card = check_card(sent[0].card or {})
    blocks = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    assert blocks[0] == f"Drift sweep: {n} notices"
    lines = blocks[1:-1]
    assert len(lines) == BATCH_LINES and all("\n" not in b and "`" not in b for b in blocks), blocks
    for i, line in enumerate(lines, start=1):
        assert line == (f"• D-{i}: a\\_b\\*{i}\\*@example.com is in directory/\\<ops\\> - x (**drift remove D-{i} "
                        f"because …** or **drift accept D-{i} for 30d because …**)"), line
    assert blocks[-1] == "… and 3 more: say **report drift** for every finding and how it was settled."


async def test_a_backtick_in_a_name_is_text_only_the_bots_commands_are_bold(teams_any_db: TeamsHarness) -> None:
    """Backticks a person's or group's name holds are not paired with each other or with the bot's own: the name is
    shown as it is (no bold, no ``**`` left over, a pair holding only blanks kept), the commands bold."""
    h = teams_any_db
    status, _ = await h.say(SAM, "help")
    assert status == 200
    texts = ["Drift: D-1: a`(ops)`b@example.com is in directory/x` `y with no active grant "
             "(`drift remove D-1 because …` or `drift accept D-1 for <duration> because …`)",
             "Drift: D-2: `drift`@example.com not in directory/ops despite REQ-7; say `report drift`."]
    async with h.app.store.write() as repo:
        await repo.queue_notices([Notice(SAM, "drift", t, None) for t in texts], h.clock.now())
    before = len(h.connector.of("send", conversation_id(SAM)))
    assert await deliver_pending(h.app.deps) == 2
    await h.idle()
    sent = h.connector.of("send", conversation_id(SAM))[before:]
    card = check_card(sent[0].card or {})
    lines = [b["text"] for b in card["body"] if b["type"] == "TextBlock"][1:]
    assert lines == [
        "• D-1: a\\`(ops)\\`b@example.com is in directory/x\\` \\`y with no active grant "
        "(**drift remove D-1 because …** or **drift accept D-1 for \\<duration\\> because …**)",
        "• D-2: \\`drift\\`@example.com not in directory/ops despite REQ-7; say **report drift**."], lines
