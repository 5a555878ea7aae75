"""The hash rule of the audit chain (SPEC §3.5), independent of any storage.

``hash = sha256(prev_hash + canonical_json(event without "hash"))``. An auditor recomputes it
with nothing but ``hashlib`` and ``json``; this module is the same rule written once for our code.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")  # what format_ts writes
# the columns after seq of a stored event, in the order the store reads them: text (request_id, profile: or null)
STORED_TEXT = ("ts", "type", "actor", "request_id", "profile", "data", "prev_hash", "hash")
HASHED_FIELDS = ("seq", "ts", "type", "actor", "request_id", "profile", "data", "prev_hash")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_scan = json.decoder.JSONDecoder().scan_once  # the C scanner json.loads ends in, without its wrappers
_canonical_many = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   check_circular=False).encode  # canonical_json, set up once for a batch
_DATA_BATCH = 256  # stored data texts checked in one re-serialisation


def data_problem(data_json: str) -> str:
    """Why a stored ``data`` text is not canonical JSON ("" when it is): the hash covers the text, a reader
    parses it (a key written twice reads as its last value), an export writes ``canonical_json`` of it."""
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        repeated.extend(k for k, _ in items if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        return dict(items)

    try:
        value = json.loads(data_json, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as e:
        return f"data is not canonical JSON: not JSON ({e})"[:300]
    if repeated:
        return f"data is not canonical JSON: key {repeated[0]!r} is written twice (a reader takes the last)"
    if canonical_json(value) != data_json:
        return ("data is not canonical JSON: not written as canonical_json writes it (key order, spacing, "
                "number or escape form), so an export's lines would not be the text its hash covers")
    return ""


def format_ts(moment: datetime) -> str:
    """UTC, ISO 8601 with milliseconds and ``Z``."""
    moment = moment.astimezone(UTC)
    if moment.year < 1000:  # strftime's year is not padded to four digits there, isoformat's is
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.replace(tzinfo=None).isoformat("T", "milliseconds") + "Z"  # the same text, a third of the cost


def event_hash(prev_hash: str, body: Mapping[str, Any]) -> str:
    """The hash of an event whose fields other than ``hash`` are ``body``."""
    payload = prev_hash + canonical_json({k: v for k, v in body.items() if k != "hash"})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _text(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def canonical_body(seq: int, ts: str, type: str, actor: str, request_id: str | None, profile: str | None,
                   data_json: str, prev_hash: str) -> str:
    """``canonical_json`` of an event without its hash, assembled from stored columns.

    ``data_json`` must already be canonical (the store writes it with :func:`canonical_json`); a verifier
    checks it is (:meth:`ChainVerifier.feed_canonical` with ``data``), or the text the hash covers may say
    other than what a reader parses.
    """
    return (f'{{"actor":{_text(actor)},"data":{data_json},"prev_hash":{_text(prev_hash)},'
            f'"profile":{_text(profile)},"request_id":{_text(request_id)},"seq":{seq},"ts":{_text(ts)},'
            f'"type":{_text(type)}}}')


def canonical_event(seq: int, ts: str, type: str, actor: str, request_id: str | None, profile: str | None,
                    data_json: str, prev_hash: str, digest: str) -> str:
    """``canonical_json`` of a whole event (hash included), assembled from stored columns."""
    return (f'{{"actor":{_text(actor)},"data":{data_json},"hash":{_text(digest)},"prev_hash":{_text(prev_hash)},'
            f'"profile":{_text(profile)},"request_id":{_text(request_id)},"seq":{seq},"ts":{_text(ts)},'
            f'"type":{_text(type)}}}')


def canonical_pair(seq: int, ts: str, type: str, actor: str, request_id: str | None, profile: str | None,
                   data_json: str, prev_hash: str, digest: str) -> tuple[str, str]:
    """(:func:`canonical_body`, :func:`canonical_event`) at once, each field escaped once."""
    head = f'{{"actor":{_text(actor)},"data":{data_json},'
    tail = (f'"prev_hash":{_text(prev_hash)},"profile":{_text(profile)},"request_id":{_text(request_id)},'
            f'"seq":{seq},"ts":{_text(ts)},"type":{_text(type)}}}')
    return head + tail, f'{head}"hash":"{digest}",{tail}'


@dataclass(frozen=True)
class Verification:
    ok: bool
    count: int
    head_hash: str
    bad_seq: int | None = None
    reason: str = ""


def in_stored_form(row: Sequence[Any]) -> bool:
    """Whether a stored row (seq, ts, type, actor, request_id, profile, data, prev_hash, hash) holds each column
    in the form the store writes it: seq a whole number, the others text (request_id and profile: or null)."""
    seq, ts, type_, actor, rid, profile, data, prev, digest = row
    return type(seq) is int and type(ts) is str and type(type_) is str and type(actor) is str \
        and type(data) is str and type(prev) is str and type(digest) is str \
        and (rid is None or type(rid) is str) and (profile is None or type(profile) is str)


class ChainVerifier:
    """Checks events one at a time, so a chain of any length verifies in flat memory."""

    def __init__(self, *, prev_hash: str = GENESIS, first_seq: int = 1, prev_ts: str = "") -> None:
        self.head = prev_hash
        self.expected_seq = first_seq
        self.count = 0
        self.bad_seq: int | None = None
        self.reason = ""
        # the time of the last event fed with one; a check from the middle starts from the event before it
        # (``prev_ts``), so that the first event it meets is not the one whose time goes unchecked
        self.last_ts = prev_ts
        # data texts fed that parsed, not yet checked for canonical form: (text, value, seq, head and count before)
        self._pending: list[tuple[str, Any, int, str, int]] = []

    def feed(self, event: Mapping[str, Any]) -> bool:
        """False (and stays false) from the first event that breaks the chain."""
        if self.bad_seq is not None:
            return False
        seq = event.get("seq")
        if seq != self.expected_seq:
            self.bad_seq = self.expected_seq if not isinstance(seq, int) or seq > self.expected_seq else seq
            self.reason = f"expected seq {self.expected_seq}, found {seq}"
        elif event.get("prev_hash") != self.head:
            self.bad_seq, self.reason = seq, "prev_hash does not match"
        elif event_hash(self.head, event) != event.get("hash"):
            self.bad_seq, self.reason = seq, "hash does not match"
        else:
            self.head = str(event["hash"])
            self.expected_seq += 1
            self.count += 1
            return True
        return False

    def feed_canonical(self, seq: int, prev_hash: str, digest: str, body: str, ts: str | None = None,
                       data: str | None = None) -> bool:
        """Like :meth:`feed` for an event given as its canonical body text (see :func:`canonical_body`).

        With ``ts`` (the event's stored time), also that it is a UTC instant as :func:`format_ts` writes it and
        not before the time of the event ahead of it: the store records every event at the wall clock, never
        earlier than the one before, so that a period's events are one segment of the chain.

        With ``data`` (the stored text the body holds), also that it is canonical JSON of an object (or null), as
        the store writes it:
        the hash covers the text, but a reader parses it and an export re-serialises it. It is parsed here and
        re-serialised a batch at a time (one list), so an event found not canonical may be named a few hundred
        events later, and before any break found after it."""
        if self.bad_seq is not None:
            return False
        if seq != self.expected_seq:
            return self._broken(self.expected_seq if seq > self.expected_seq else seq,
                                f"expected seq {self.expected_seq}, found {seq}")
        if ts is not None and not _TS.fullmatch(ts):
            return self._broken(seq, f"ts {ts!r} is not a UTC time as recorded (YYYY-MM-DDTHH:MM:SS.mmmZ)")
        if ts is not None and ts < self.last_ts:
            return self._broken(seq, f"ts {ts} is earlier than the event before ({self.last_ts})")
        if prev_hash != self.head:
            return self._broken(seq, "prev_hash does not match")
        if hashlib.sha256((self.head + body).encode("utf-8")).hexdigest() != digest:
            return self._broken(seq, "hash does not match")
        if data is not None:
            try:
                value, end = _scan(data, 0)
            except (StopIteration, ValueError, RecursionError):
                end = -1
            if end != len(data):  # not one JSON value, as a whole
                return self._broken(seq, data_problem(data) or "data is not canonical JSON")
            if value is not None and not isinstance(value, dict):  # as the pack's verifier reads an event
                return self._broken(seq, "data is not a JSON object")
            self._pending.append((data, value, seq, self.head, self.count))
            if len(self._pending) >= _DATA_BATCH and not self._check_data():
                return False
        if ts is not None:
            self.last_ts = ts
        self.head = digest
        self.expected_seq += 1
        self.count += 1
        return True

    def stored(self, row: Sequence[Any]) -> bool:
        """Whether a stored row (seq, ts, type, actor, request_id, profile, data, prev_hash, hash) holds each
        column in the form the store writes it: seq a whole number, the others text (request_id and profile may
        be null). SQLite keeps whatever a column is given: a seq of 3.5 would be read as event 3 by ``int`` and
        pass, a text column stored as a blob would fail the walk with an exception instead of naming it. False
        (the break recorded at the seq the walk expects) when one is not."""
        if in_stored_form(row):
            return True
        if self.bad_seq is not None:
            return False
        seq = row[0]
        if type(seq) is not int:
            return self._broken(self.expected_seq, f"seq {seq!r} is stored as {type(seq).__name__}, not a whole "
                                "number")
        for name, value in zip(STORED_TEXT, row[1:], strict=True):
            if type(value) is not str and not (value is None and name in ("request_id", "profile")):
                return self._broken(seq, f"{name} is stored as {type(value).__name__}, not text")
        return False  # unreachable: one of the columns above is not in its form

    def _check_data(self) -> bool:
        """Whether the pending data texts are canonical JSON; if not, the first that is not breaks the chain.

        Each text parsed whole as one value, so ``[t1,t2,...]`` parses as a list of exactly those texts: it is
        its own canonical form only when each of them is."""
        pending, self._pending = self._pending, []
        if not pending or _canonical_many([p[1] for p in pending]) == "[" + ",".join(p[0] for p in pending) + "]":
            return True
        for data, value, seq, head, count in pending:
            if canonical_json(value) != data:
                self.head, self.count = head, count  # as the walk stood before this event
                self.bad_seq, self.reason = seq, data_problem(data) or "data is not canonical JSON"
                return False
        return True  # unreachable: the lists differ only where an element does

    def _broken(self, seq: int, reason: str) -> bool:
        """Record the break at ``seq``, unless an event fed before it has data not in canonical form."""
        if self._check_data():
            self.bad_seq, self.reason = seq, reason
        return False

    def result(self) -> Verification:
        if self.bad_seq is None:
            self._check_data()
        return Verification(self.bad_seq is None, self.count, self.head, self.bad_seq, self.reason)


def verify_chain(events: Iterable[Mapping[str, Any]], *, prev_hash: str = GENESIS,
                 first_seq: int = 1) -> Verification:
    """Walk events in order; stop at the first that breaks the chain.

    Each event must carry the next ``seq`` (no gaps, no reordering), the previous event's hash
    as ``prev_hash``, and a ``hash`` that the rule reproduces.
    """
    verifier = ChainVerifier(prev_hash=prev_hash, first_seq=first_seq)
    for event in events:
        if not verifier.feed(event):
            break
    return verifier.result()
