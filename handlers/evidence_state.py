"""The per-request state of the rules' fold, in bounded memory: requests seen last stay in memory,
the others are kept in a temporary SQLite file and read back when one of their events comes.

The rules themselves (``verify_pack.Rows``, shipped in every pack) are not touched: they see a
``requests`` dict holding every request they are working on, as they always did. Rows are read
back in the order ``Rows`` gives them (request number, then the order requests were first seen).
"""

from __future__ import annotations

import marshal
import sqlite3
from collections.abc import Iterator
from typing import Any

HOT = 20_000  # requests kept in memory; beyond it the ones seen first go to the file
EVICT = 5_000  # how many go at once
ORDER = "_order"  # the request's place in the order it was first seen (a tie-break among equal numbers)


def spilling(rows_class: type, *, hot: int | None = None, evict: int | None = None) -> type:
    """``rows_class`` (the rules' ``Rows``, perhaps tracked) with its requests spilled to a file
    when more than ``hot`` (default :data:`HOT`) are in memory."""

    number = _number
    hot = HOT if hot is None else hot
    evict = EVICT if evict is None else evict

    class Spilled(rows_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._seen = 0
            self._db: sqlite3.Connection | None = None
            self._max_cold = -1  # the largest request number in the file (none: -1)

        # -- the fold -------------------------------------------------------------------------
        def feed(self, event: dict[str, Any]) -> Any:
            rid = event.get("request_id")
            if not rid or rid in self.requests:
                return super().feed(event)
            if self._db is not None and number(rid) <= self._max_cold:
                self._load(rid)
            row = super().feed(event)
            r = self.requests.get(rid)
            if r is not None and ORDER not in r:  # seen for the first time
                r[ORDER] = self._seen
                self._seen += 1
            if len(self.requests) > hot:
                self._evict(list(self.requests)[:evict])
            return row

        def _ordered(self) -> list[dict[str, Any]] | Iterator[dict[str, Any]]:
            return self.ordered()

        def ordered(self, *, unsubmitted: bool = True) -> list[dict[str, Any]] | Iterator[dict[str, Any]]:
            """Every request's state, in the order of the rows; with ``unsubmitted`` False, a request
            whose submission the chain does not hold is given as its ``request_id`` alone."""
            if self._db is None:
                return sorted(self.requests.values(), key=lambda r: (number(r["request_id"]), r[ORDER]))
            self._evict(list(self.requests))
            return self._read_all(unsubmitted)

        # -- the file ---------------------------------------------------------------------------
        def _open(self) -> sqlite3.Connection:
            # "": SQLite's private temporary database, in a file only this connection can see (it is
            # unlinked as soon as it is made) and gone when the connection closes, even on a crash
            db = sqlite3.connect("", isolation_level=None)
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE state (n INTEGER NOT NULL, k INTEGER NOT NULL, rid TEXT NOT NULL, "
                       "submitted INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (n, k)) WITHOUT ROWID")
            return db

        def _evict(self, rids: list[str]) -> None:
            if not rids:
                return
            if self._db is None:
                self._db = self._open()
            rows = []
            for rid in rids:
                r = self.requests.pop(rid)
                n = number(rid)
                self._max_cold = max(self._max_cold, n)
                rows.append((n, r[ORDER], rid, "submitted_at" in r, marshal.dumps(r)))
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

        def _load(self, rid: str) -> None:
            assert self._db is not None
            found = self._db.execute("SELECT body FROM state WHERE n = ? AND rid = ?", (number(rid), rid)).fetchone()
            if found is not None:
                self.requests[rid] = marshal.loads(found[0])

        def _read_all(self, unsubmitted: bool) -> Iterator[dict[str, Any]]:
            assert self._db is not None
            body = "body" if unsubmitted else "CASE WHEN submitted THEN body END"
            cursor = self._db.execute(f"SELECT rid, {body} FROM state ORDER BY n, k")
            while batch := cursor.fetchmany(2000):
                for rid, data in batch:
                    yield {"request_id": rid} if data is None else marshal.loads(data)

        def close(self) -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

    return Spilled


def _number(request_id: str) -> int:
    """The rules' ``request_number``: the digits after the last "-" (ASCII 0-9, at most 19), 0 without them."""
    digits = str(request_id).rpartition("-")[2]
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 19 else 0
