"""Anchors of the audit chain outside the database (SPEC §3.5).

The hash chain shows any edit of an event to someone who holds a later hash. Whoever controls
the database can still rewrite an event and recompute every hash after it: the chain then
verifies again. So every sweep hands the head of the chain (seq, hash, time) to an anchor kept
elsewhere (an append-only file by default, ``store/anchors.py``), and ``audit verify`` compares
the chain with what was anchored: an anchored (seq, hash) that the chain no longer has is a
rewrite, named by its seq.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class ChainAnchor(Protocol):
    async def anchor(self, *, as_of: datetime) -> dict[str, Any] | None:
        """Record the chain's current head outside the database; returns what was recorded
        (None when the head has not moved since the last anchor)."""
        ...


async def anchor_head(deps: Any, *, as_of: datetime, failed: list[str] | None = None) -> None:
    """Anchor the head after a sweep; a failure is reported, never fatal to the sweep."""
    anchor: ChainAnchor | None = getattr(deps, "anchor", None)
    if anchor is None:
        return
    try:
        await anchor.anchor(as_of=as_of)
    except OSError as exc:
        if failed is not None:
            failed.append(f"anchor: {exc}")


@dataclass(frozen=True)
class Anchored:
    line: int
    seq: int
    hash: str
    anchored_at: str


class AnchorFileError(ValueError):
    pass


def is_seq(value: object) -> bool:
    """Whether ``value`` is a seq the chain can hold: a whole number (not true/false) from 1 to 2**63 - 1."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 1 << 63


def read_anchors(lines: Iterable[str]) -> list[Anchored]:
    """The anchors of a file, one JSON object a line; a line that is not an anchor is an error
    (a damaged anchor file must not pass for a short one). Other JSON objects are kept out."""
    found: list[Anchored] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
            raise AnchorFileError(f"line {number} is not JSON") from None
        if not isinstance(item, dict):
            raise AnchorFileError(f"line {number} is not a JSON object")
        if "seq" not in item and "hash" not in item:
            continue  # a note someone added: not an anchor
        seq, digest = item.get("seq"), item.get("hash")
        if not is_seq(seq) or not isinstance(digest, str) or len(digest) != 64:
            raise AnchorFileError(f"line {number} has no valid seq and hash")
        found.append(Anchored(number, seq, digest, str(item.get("anchored_at", ""))))
    return found


def compare(anchors: list[Anchored], chain: Mapping[int, str], head_seq: int) -> list[str]:
    """Problems, the earliest seq first: an anchored seq the chain no longer reaches, or holds
    with another hash. ``chain`` maps each anchored seq the chain still has to its hash."""
    problems: list[str] = []
    by_seq: dict[int, Anchored] = {}
    for a in anchors:
        other = by_seq.setdefault(a.seq, a)
        if other.hash != a.hash:
            problems.append(f"the anchor file holds two hashes for seq {a.seq} (lines {other.line} and {a.line})")
    for seq in sorted(by_seq):
        a = by_seq[seq]
        when = f" at {a.anchored_at}" if a.anchored_at else ""
        if seq not in chain:
            problems.append(f"TRUNCATED: seq {seq} was anchored{when} (hash {a.hash}), but the chain ends at "
                            f"seq {head_seq}")
        elif chain[seq] != a.hash:
            problems.append(f"REWRITTEN at seq {seq}: anchored{when} with hash {a.hash}, the chain now has "
                            f"{chain[seq]}")
    return problems
