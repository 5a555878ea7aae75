"""The review words of the chat grammar (SPEC §7) and their handlers: ``review start ID``, ``reviews``,
``review RV-n``. Kept apart from the main grammar: ``parse_review`` answers None for anything else."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from handlers.audit import format_ts
from handlers.context import Deps
from handlers.ports import Person
from handlers.reviews.campaign import pinned, repo_of, start_campaign
from handlers.reviews.decide import (
    ReviewChoices,
    ReviewDecide,
    decide,
    look,
    may_decide,
    parse_items,
    reviewer_keys,
)
from handlers.reviews.records import OPEN, CampaignRecord, ItemRecord, ReviewDecisionRecord, rv_id
from handlers.reviews.signoff import ReviewClose, ReviewSignoff, close_now, sign
from handlers.reviews.undo import ReviewUndo, ReviewUndoApprove, approve_undo, request_undo
from handlers.text import is_digits
from handlers.views import Reply

RV_RE = re.compile(r"^(?:RV-)?([0-9]{1,9})$", re.IGNORECASE)
MAX_LISTED = 200  # items shown in one console answer; the rest is counted


@dataclass(frozen=True)
class ReviewStart:
    review: str


@dataclass(frozen=True)
class ReviewsList:
    pass


@dataclass(frozen=True)
class ReviewShow:
    campaign: int


@dataclass(frozen=True)
class ReviewBadWords:
    """A review word with something wrong in it: the answer says what."""

    text: str


ReviewCommand = (ReviewStart | ReviewsList | ReviewShow | ReviewDecide | ReviewChoices | ReviewClose | ReviewSignoff
                 | ReviewBadWords | ReviewUndo | ReviewUndoApprove)
REVIEW_COMMANDS = (ReviewStart, ReviewsList, ReviewShow, ReviewDecide, ReviewChoices, ReviewClose, ReviewSignoff,
                   ReviewBadWords, ReviewUndo, ReviewUndoApprove)
RV_STRICT = re.compile(r"^RV-([0-9]{1,9})$", re.IGNORECASE)


def _split_because(words: list[str]) -> tuple[list[str], str | None]:
    lowered = [w.lower() for w in words]
    if "because" not in lowered:
        return words, None
    at = lowered.index("because")
    return words[:at], " ".join(words[at + 1:])[:2000]


def _parse_more(words: list[str]) -> ReviewCommand | None:
    verb = words[0].lower()
    if verb in ("keep", "remove") and len(words) >= 2 and (m := RV_RE.match(words[1])):
        head, reason = _split_because(words[2:])
        items = parse_items(head)
        if isinstance(items, str):
            return ReviewBadWords(f"`{verb} RV-{m.group(1)}`: {items}.")
        return ReviewDecide(int(m.group(1)), verb, items, reason)
    if verb in ("approve", "deny") and len(words) >= 2 and (m := RV_STRICT.match(words[1])):
        head, reason = _split_because(words[2:])
        if head and verb == "approve" and len(head) == 1 and is_digits(head[0]) and len(head[0]) < 7:
            return ReviewUndoApprove(int(m.group(1)), int(head[0]))
        if head:
            return None
        return ReviewSignoff(int(m.group(1)), verb == "approve", reason)
    if verb == "review" and len(words) >= 4 and words[1].lower() == "undo" and (m := RV_RE.match(words[2])):
        head, reason = _split_because(words[3:])
        if len(head) != 1 or not is_digits(head[0]) or len(head[0]) > 6:
            return ReviewBadWords(f"Say `review undo RV-{m.group(1)} <item> because <reason>`.")
        return ReviewUndo(int(m.group(1)), int(head[0]), reason)
    if verb == "review" and len(words) == 3 and words[1].lower() == "close" and (m := RV_RE.match(words[2])):
        return ReviewClose(int(m.group(1)))
    return None


def parse_review(text: str) -> ReviewCommand | None:
    """A review command, or None when the text is not one (the main grammar answers it)."""
    words = text.strip().split()
    if not words:
        return None
    more = _parse_more(words)
    if more is not None or len(words) > 3:
        return more
    verb = words[0].lower()
    if verb == "reviews" and len(words) == 1:
        return ReviewsList()
    if verb != "review":
        return None
    if len(words) == 3 and words[1].lower() == "start":
        return ReviewStart(words[2].lower())
    if len(words) == 2 and (m := RV_RE.match(words[1])):
        return ReviewShow(int(m.group(1)))
    return None


def reviews_item(deps: Deps, item: ItemRecord, email: str) -> bool:
    """Whether ``email`` is asked about this item (never about their own membership)."""
    if item.user == email:
        return False
    if item.reviewer.startswith("group:"):
        return email in deps.policy.approver_groups.get(item.reviewer.removeprefix("group:"), ())
    return item.reviewer == email


def describe_item(item: ItemRecord, decision: ReviewDecisionRecord | None) -> str:
    who = ", ".join(x for x in (item.name if item.name != item.user else "", item.title, item.department) if x)
    held = item.held_via + (f" until {format_ts(item.expires_at)}" if item.expires_at else "")
    seen = f"last sign-in {format_ts(item.last_sign_in)[:10]}" if item.last_sign_in else "last sign-in unknown"
    flags = ("" if item.active else " — INACTIVE") + (f" — {item.state.upper()}" if item.state != OPEN else "")
    advice = f"recommend {item.recommendation}" + (f" ({item.recommendation_reason})"
                                                    if item.recommendation_reason else "")
    decided = f" — decided {decision.decision} by {decision.actor}" if decision else ""
    service = " [service account]" if item.kind == "service" else ""
    return (f"{item.number}. {item.user}{service}" + (f" ({who})" if who else "") + f" — {item.profile} "
            f"({item.provider}/{item.group}) — {held} — {seen}{flags} — {advice}{decided}")


async def _start(deps: Deps, who: str, cmd: ReviewStart) -> Reply:
    review = deps.policy.review(cmd.review)
    if review is None:
        ids = [r.id for r in deps.policy.reviews]
        close = difflib.get_close_matches(cmd.review, ids, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else (f" Reviews: {', '.join(ids)}." if ids else
                                                              " The policy defines no reviews.")
        return Reply(text=f"There is no review {cmd.review!r}.{hint}", ok=False, kind="refusal", rule="unknown-review")
    outcome = await start_campaign(deps, review, actor=who, now=deps.now())
    if outcome.campaign is None:
        return Reply(text=f"Review {review.id} did not start: {outcome.reason}", ok=False, kind="refusal",
                     rule="review-failed")
    campaign = outcome.campaign
    reviewers = len({i.reviewer for i in outcome.items})
    return Reply(text=f"Started {campaign.ref} ({review.title}): {campaign.items} item(s) for {reviewers} "
                 f"reviewer(s); it closes at {format_ts(campaign.due_at)}. Snapshot sha256 "
                 f"{campaign.snapshot_sha256}.", data={"review_id": campaign.ref})


async def _progress(deps: Deps, campaign: CampaignRecord) -> str:
    async with deps.store.read() as raw:
        decided = await repo_of(raw).final_decisions(campaign.id or 0)
    return (f"{campaign.ref} {campaign.review} ({campaign.state}): {len(decided)}/{campaign.items} decided, "
            f"started {format_ts(campaign.started_at)}, closes {format_ts(campaign.due_at)}")


async def _list(deps: Deps, who: str) -> Reply:
    async with deps.store.read() as raw:
        campaigns = await repo_of(raw).campaigns() if deps.is_security(who) \
            else await repo_of(raw).campaigns(states=(OPEN,))
    mine: list[tuple[CampaignRecord, int]] = []
    for campaign in campaigns:
        if campaign.decidable_at(deps.now()):  # open and not past its due time
            judged = await pinned(deps, campaign)  # (outside a read connection: it may read a policy version)
            async with deps.store.read() as raw:
                repo = repo_of(raw)
                batches = await repo.batches(campaign.id or 0)
                count = sum(may_decide(judged, i, who, batches)
                            for i in await repo.items(campaign.id or 0, reviewers=reviewer_keys(judged, who, batches)))
            if count:
                mine.append((campaign, count))
    lines = [f"{c.ref} {c.title}: {n} item(s) for you to review by {format_ts(c.due_at)} (`review {c.ref}`)"
             for c, n in mine]
    if deps.is_security(who):
        lines += ["Every campaign:"] + [await _progress(deps, c) for c in campaigns] if campaigns else []
    return Reply(text="\n".join(lines) or "No access reviews wait for you.")


async def _show(deps: Deps, who: str, cmd: ReviewShow, channel: str) -> Reply | None:
    security = deps.is_security(who)  # the security team in force now sees every campaign
    seen = await look(deps, who, cmd.campaign, channel, everything=security)
    if seen is None:
        return None
    campaign, shown = seen.campaign, seen.items
    head = (f"{campaign.ref} {campaign.title} ({campaign.state}) — started {format_ts(campaign.started_at)} by "
            f"{campaign.started_by}, closes {format_ts(campaign.due_at)}; snapshot sha256 {campaign.snapshot_sha256}")
    lines = [head] + [f"Live check: {n}" for n in seen.notes]
    lines += [f"{len(shown)} item(s){'' if security else ' for you'}:"]
    lines += [describe_item(i, seen.final.get(i.number)) for i in shown[:MAX_LISTED]]
    if len(shown) > MAX_LISTED:
        lines.append(f"… and {len(shown) - MAX_LISTED} more")
    return Reply(text="\n".join(lines), data={"review_id": campaign.ref})


async def handle_review(deps: Deps, actor: Person, cmd: ReviewCommand, channel: str | None = None) -> Reply:
    who = actor.email.lower()
    if isinstance(cmd, ReviewStart):
        if not deps.is_security(who):
            return await _refuse(deps, who, "review start", "not in the security team", None,
                                 "`review start` is for the security team only.", "security-only")
        return await _start(deps, who, cmd)
    if isinstance(cmd, ReviewsList):
        return await _list(deps, who)
    if isinstance(cmd, ReviewBadWords):
        return Reply(text=cmd.text, ok=False, kind="refusal", rule="syntax")
    if isinstance(cmd, ReviewDecide | ReviewChoices):
        return await decide(deps, who, cmd)
    if isinstance(cmd, ReviewSignoff):
        return await sign(deps, who, cmd)
    if isinstance(cmd, ReviewUndo | ReviewUndoApprove):
        if not deps.is_security(who):
            word = "review undo" if isinstance(cmd, ReviewUndo) else "approve"
            return await _refuse(deps, who, f"{word} {rv_id(cmd.campaign)} {cmd.item}", "not in the security team",
                                 rv_id(cmd.campaign), "Undoing a review removal is for the security team only.",
                                 "security-only")
        return await (request_undo(deps, who, cmd) if isinstance(cmd, ReviewUndo) else approve_undo(deps, who, cmd))
    if isinstance(cmd, ReviewClose):
        if not deps.is_security(who):
            return await _refuse(deps, who, "review close", "not in the security team", rv_id(cmd.campaign),
                                 "`review close` is for the security team only.", "security-only")
        return await close_now(deps, who, cmd)
    reply = await _show(deps, who, cmd, channel or "chat")
    if reply is None:  # one answer for a campaign that does not exist and one the asker may not see
        return await _refuse(deps, who, "review", "not a reviewer of it or the security team", rv_id(cmd.campaign),
                             f"You may not see {rv_id(cmd.campaign)}.", "not-allowed")
    return reply


async def _refuse(deps: Deps, who: str, command: str, reason: str, review_id: str | None, text: str,
                  rule: str) -> Reply:
    async with deps.store.write() as repo:
        data = {"command": command, "reason": reason}
        if review_id:
            data["review_id"] = review_id
        await repo.append("command.refused", actor=who, ts=deps.now(), data=data)
    return Reply(text=text, ok=False, kind="refusal", rule=rule)
