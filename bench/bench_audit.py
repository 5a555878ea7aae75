"""Audit chain verification: events/s through our verifier against a raw hashlib chain.

Both walk the same events and hash the same canonical bytes in the same run; the figure that
matters is the ratio (target: ours at least one third of raw). ``--store`` also times
``accessbot audit verify``'s path, reading the events back from a database.

    python bench/bench_audit.py [--events 200000] [--store sqlite:///bench.db]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

from handlers.audit import GENESIS, ChainVerifier, canonical_json, event_hash, format_ts


def make_events(n: int) -> list[dict]:
    prev = GENESIS
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    out = []
    for i in range(1, n + 1):
        body = {"seq": i, "ts": format_ts(t0 + timedelta(seconds=i)), "type": "approval.granted",
                "actor": "dana.dba@example.com", "request_id": f"REQ-{i // 5 + 1}", "profile": "prod-db-read",
                "data": {"step": 2, "comment": "ok"}, "prev_hash": prev}
        body["hash"] = prev = event_hash(prev, body)
        out.append(body)
    return out


def raw_chain(events: list[dict]) -> float:
    """The floor: sha256 over prev + canonical bytes, nothing else."""
    started = time.perf_counter()
    prev = GENESIS
    for e in events:
        body = {k: v for k, v in e.items() if k != "hash"}
        prev = hashlib.sha256((prev + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                                 ensure_ascii=False)).encode()).hexdigest()
    assert prev == events[-1]["hash"]
    return time.perf_counter() - started


def ours(events: list[dict]) -> float:
    started = time.perf_counter()
    v = ChainVerifier()
    for e in events:
        v.feed(e)
    assert v.result().ok
    return time.perf_counter() - started


async def from_store(url: str, events: list[dict]) -> float:
    from sqlalchemy import insert

    from store import schema as t
    from store.db import upgrade
    from store.repository import SqlStore

    upgrade(url)
    store = SqlStore(url)
    async with store.engine.begin() as conn:
        await conn.execute(t.audit_events.delete())
        for i in range(0, len(events), 5000):
            await conn.execute(insert(t.audit_events), [
                {**{k: e[k] for k in ("seq", "ts", "type", "actor", "request_id", "profile", "prev_hash", "hash")},
                 "data": canonical_json(e["data"])} for e in events[i:i + 5000]])
    started = time.perf_counter()
    result = await store.verify_audit()  # what `accessbot audit verify` runs
    assert result.ok and result.count == len(events), result
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--store", help="also verify from this database (its audit table is replaced)")
    args = parser.parse_args()
    events = make_events(args.events)
    raw = min(raw_chain(events) for _ in range(3))
    mine = min(ours(events) for _ in range(3))
    n = len(events)
    print(f"events: {n}")
    print(f"raw hashlib chain:   {n / raw:12,.0f} events/s")
    print(f"ChainVerifier:       {n / mine:12,.0f} events/s  ({raw / mine:.2f} of raw; target >= 0.33)")
    if args.store:
        stored = asyncio.run(from_store(args.store, events))
        print(f"verify from store:   {n / stored:12,.0f} events/s  ({raw / stored:.2f} of raw)")


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
