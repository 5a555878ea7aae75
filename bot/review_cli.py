"""``accessbot review start ID [--as-of T]`` and ``accessbot review report RV-n --out FILE.pdf`` (SPEC §7)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_review_start(args: argparse.Namespace) -> int:
    from bot.bootstrap import build_app
    from bot.cli import parse_timestamp, settings_from
    from handlers.context import SYSTEM, FixedClock
    from handlers.reviews.campaign import start_campaign

    clock = FixedClock(parse_timestamp(args.as_of)) if args.as_of else None

    async def run() -> int:
        async with build_app(settings_from(args), as_of=clock) as app:
            deps = app.deps
            review = deps.policy.review(args.review)
            if review is None:
                known = ", ".join(r.id for r in deps.policy.reviews) or "none"
                print(f"accessbot: there is no review {args.review!r} (reviews: {known})", file=sys.stderr)
                return 1
            outcome = await start_campaign(deps, review, actor=SYSTEM, now=deps.judged_now())
        if outcome.campaign is None:
            print(f"accessbot: review {review.id} did not start: {outcome.reason}", file=sys.stderr)
            return 1
        campaign = outcome.campaign
        reviewers = len({i.reviewer for i in outcome.items})
        print(f"started {campaign.ref} {review.id}: {campaign.items} items for {reviewers} reviewers, "
              f"closes {campaign.due_at.isoformat()}, snapshot sha256 {campaign.snapshot_sha256}")
        return 0

    return asyncio.run(run())


def cmd_review_report(args: argparse.Namespace) -> int:
    from bot.cli import settings_from
    from bot.review_report import write_report

    return write_report(settings_from(args), args.campaign, Path(args.out))


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("review", help="access reviews: start a campaign, write its certification report")
    rsub = p.add_subparsers(dest="review_command", required=True)
    st = rsub.add_parser("start", help="start a campaign of a review now")
    common(st)
    st.add_argument("review", metavar="ID", help="the review's id in the policy")
    st.add_argument("--as-of", help="judge time as of this instant (ISO 8601)")
    st.set_defaults(func=cmd_review_start)
    rp = rsub.add_parser("report", help="the signed certification report of a campaign (PDF)")
    common(rp)
    rp.add_argument("campaign", metavar="RV-n")
    rp.add_argument("--out", required=True, metavar="FILE.pdf")
    rp.set_defaults(func=cmd_review_report)
