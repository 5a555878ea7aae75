"""``accessbot report trends``: members per profile per quarter from the snapshots kept by campaigns,
privilege creep at a glance (SPEC §7 / issue 11 item 6)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from handlers.reviews.records import SnapshotRecord, rv_id

TREND_COLUMNS = ["quarter", "profile", "members", "change", "review", "review_id", "taken_at"]


def trend_rows(snapshots: Iterable[SnapshotRecord]) -> list[dict[str, Any]]:
    """One row per (quarter, profile): the members in the quarter's latest snapshot of that profile, and the
    change from the previous quarter that has one."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for snap in sorted(snapshots, key=lambda s: (s.taken_at, s.campaign_id)):
        quarter = f"{snap.taken_at.year}-Q{(snap.taken_at.month - 1) // 3 + 1}"
        body = json.loads(snap.body)
        counts: dict[str, set[str]] = {}
        for group in body.get("groups", []):
            counts.setdefault(group["profile"], set()).update(m["email"].lower() for m in group.get("members", []))
        for profile, members in counts.items():
            latest[(quarter, profile)] = {"quarter": quarter, "profile": profile, "members": len(members),
                                          "review": snap.review, "review_id": rv_id(snap.campaign_id),
                                          "taken_at": body.get("taken_at")}
    rows = [latest[k] for k in sorted(latest, key=lambda k: (k[1], k[0]))]
    previous: dict[str, int] = {}
    for row in rows:
        before = previous.get(row["profile"])
        row["change"] = "" if before is None else f"{row['members'] - before:+d}"
        previous[row["profile"]] = row["members"]
    return sorted(rows, key=lambda r: (r["quarter"], r["profile"]))
