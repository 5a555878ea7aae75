"""When a campaign's sign-off fails closed, the security team IN FORCE is told (commit dda3420: "the safety
brake and the security team's notices stay with the policy in force"; SPEC §7/§3.6: the security team is
told of what needs them).

``close_campaign`` and ``fail_stuck_signoffs`` (handlers/reviews/close.py) call ``fail_signoff`` with the
campaign's *pinned* deps, so the failure notice goes to the security team of the policy version the campaign
started under. After the security team has been replaced (the old members left the company), the notice goes
only to the two people who left; the team in force, who just said ``review close``, never hears that the
removal list was dropped."""

from __future__ import annotations

from handlers.policy import load_policy
from tests.reviews.test_decisions import started
from tests.support import harness

OLD = "  security: [sam.sec@example.com, sasha.sec@example.com]"
NEW = "  security: [fiona.fin@example.com, carol@example.com]"


async def test_signoff_failure_is_told_to_the_security_team_in_force(database_url, tmp_path):
    async with harness(database_url, tmp_path) as h:
        items = await started(h)
        bob = items["bob@example.com"].number
        assert (await h.say("mark.mgr@example.com", "keep RV-1 all")).ok
        assert (await h.say("mark.mgr@example.com", f"remove RV-1 {bob} because left the team")).ok
        assert (await h.say("sam.sec@example.com", "keep RV-1 all")).ok
        assert (await h.say("pat.lead@example.com", "keep RV-1 all")).ok
        text = h.files.policy.read_text()
        assert OLD in text
        h.files.policy.write_text(text.replace('version: "2026.11"', 'version: "2026.12"').replace(OLD, NEW))
        h.app.deps.policy = load_policy(h.files.policy)  # as a restart with the new file loads it
        await h.app.service.start()
        h.files.set_active("sam.sec@example.com", False)  # the old security team left
        h.files.set_active("sasha.sec@example.com", False)

        reply = await h.say("fiona.fin@example.com", "review close RV-1")
        assert reply.ok and "sign-off failed" in reply.text, reply.text  # the pinned chain: nobody can sign
        for member in ("fiona.fin@example.com", "carol@example.com"):
            told = [n.text for n in h.notifier.to(member, "failure")]
            assert any("RV-1" in t and "sign-off failed" in t for t in told), \
                (member, told, [(n.recipient, n.kind) for n in h.notifier.notices if "sign-off failed" in n.text])
