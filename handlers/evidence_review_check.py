"""The access reviews of an evidence pack against the chain, before the pack is written (SPEC §6, §7).

``reviews.csv`` and ``review_items.csv`` come from the store's review tables, which the serving role may UPDATE
(docs/audit-integrity.md). Every campaign whose rows go into them is read once, held against its ``review.*``
events with the certification's own check (:func:`handlers.reviews.report_check.disagreement`), and the two files
are then written from exactly the rows that were checked. A disagreement is named with its file and campaign, and
stops the export as a contradicted request does (:class:`handlers.evidence.EvidenceMismatch`).

A campaign decided while the pack is read can look like a disagreement (its rows read before a decision, its
events after): when the chain has grown since the rows were read, the campaign is read again, up to
:data:`ATTEMPTS` times. When it has not, nothing was written meanwhile, and the disagreement is the store's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from handlers.reviews.records import rv_id
from handlers.reviews.report_check import ChainReview, StoredCampaign, disagreement

ATTEMPTS = 3
PAUSE_S = 0.2  # before a campaign whose chain moved is read again
_ITEM_PROBLEM = re.compile(r"(decision |item |the database holds \d+ decisions)")


class ReviewCheckSource(Protocol):
    """The reads the check needs (implemented in ``store/evidence_queries.py``)."""

    async def review_campaign_ids(self, start: datetime, end: datetime) -> list[int]:
        """The campaigns started in [start, end), in id order."""
        ...

    async def stored_campaigns(self, ids: Sequence[int]) -> list[StoredCampaign]:
        """Those campaigns' rows as the store holds them now, in id order (a campaign gone is left out)."""
        ...

    async def review_ids_started_in_chain(self, start: datetime, end: datetime) -> list[int]:
        """The campaigns whose ``review.started`` was judged (``data.as_of``, else ``ts``) in [start, end)."""
        ...

    async def review_events(self, refs: Sequence[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(type, actor, ts, data) of every event of :data:`handlers.reviews.report_check.CHAIN_TYPES` whose
        ``data.review_id`` is one of ``refs``, in seq order."""
        ...

    async def head_seq(self) -> int: ...


def pack_file(problem: str) -> str:
    """The file of the pack a disagreement concerns: review_items.csv for an item or a decision, else reviews.csv."""
    _, _, what = problem.partition(": ")
    return "review_items.csv" if _ITEM_PROBLEM.match(what) else "reviews.csv"


async def _held(source: ReviewCheckSource, ids: Sequence[int]) -> tuple[list[StoredCampaign], dict[int, str], int]:
    """The campaigns ``ids`` as stored, the disagreement of each that has one (one the store does not hold at all
    included), and the chain's head before the read."""
    head = await source.head_seq()
    stored = await source.stored_campaigns(ids)
    chains = {s.campaign.ref: ChainReview() for s in stored}
    for type_, actor, ts, data in await source.review_events(list(chains)):
        chain = chains.get(str(data.get("review_id")))
        if chain is not None:
            chain.feed(type_, actor, ts, data)
    problems = {n: f"{rv_id(n)}: in the audit chain but not in the database"
                for n in set(ids) - {s.campaign.id for s in stored}}
    for s in stored:
        problem = disagreement(s.campaign, s.items, s.decisions, s.signoffs, s.snapshot, chains[s.campaign.ref])
        if problem:
            problems[s.campaign.id or 0] = problem
    return stored, problems, head


async def checked_campaigns(source: ReviewCheckSource, start: datetime, end: datetime
                            ) -> tuple[list[StoredCampaign], list[str]]:
    """The campaigns the store says were started in [start, end), each held against its ``review.*`` events; and
    the first disagreement of each campaign the chain contradicts ("review_items.csv RV-3: decision 1 in the
    database is …"). A campaign the chain says was started in the period is checked too when the store holds it
    elsewhere or not at all (a start time rewritten out of the period, a campaign deleted). The rows returned are
    the ones checked: the pack is written from them."""
    ids = await source.review_campaign_ids(start, end)
    wanted = sorted(set(ids) | set(await source.review_ids_started_in_chain(start, end)))
    stored, problems, head = await _held(source, wanted)
    by_id = {s.campaign.id: s for s in stored}
    for _ in range(ATTEMPTS - 1):
        if not problems or await source.head_seq() == head:
            break  # nothing was recorded since the read: what disagrees is the store's
        await asyncio.sleep(PAUSE_S)
        again, problems, head = await _held(source, sorted(problems))
        by_id.update({s.campaign.id: s for s in again})
    return ([by_id[i] for i in ids if i in by_id],
            [f"{pack_file(p)} {p}" for _, p in sorted(problems.items())])
