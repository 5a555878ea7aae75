"""``accessbot audit verify --anchors FILE``: the chain against the heads anchored outside the database."""

from __future__ import annotations

from store.anchors import check_anchor_file
from store.repository import SqlStore


async def check_anchors(store: SqlStore, path: str) -> int:
    anchors, problems = await check_anchor_file(store, path)
    if problems:
        for problem in problems:
            print(problem)
        return 1
    if not anchors:
        print(f"anchors: none in {path} yet")
        return 0
    latest = max(anchors, key=lambda a: a.seq)
    distinct = len({a.seq for a in anchors})
    print(f"anchors: {distinct} of {distinct} anchors match {path} (latest seq {latest.seq}"
          + (f", anchored {latest.anchored_at})" if latest.anchored_at else ")"))
    return 0
