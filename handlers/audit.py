"""The hash rule of the audit chain (SPEC §3.5), independent of any storage.

``hash = sha256(prev_hash + canonical_json(event without "hash"))``. An auditor recomputes it
with nothing but ``hashlib`` and ``json``; this module is the same rule written once for our code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "ts", "type", "actor", "request_id", "profile", "data", "prev_hash")


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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

    ``data_json`` must already be canonical (the store writes it with :func:`canonical_json`), so
    verifying from the store needs no parse and re-serialisation of every event.
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


class ChainVerifier:
    """Checks events one at a time, so a chain of any length verifies in flat memory."""

    def __init__(self, *, prev_hash: str = GENESIS, first_seq: int = 1) -> None:
        self.head = prev_hash
        self.expected_seq = first_seq
        self.count = 0
        self.bad_seq: int | None = None
        self.reason = ""

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

    def feed_canonical(self, seq: int, prev_hash: str, digest: str, body: str) -> bool:
        """Like :meth:`feed` for an event given as its canonical body text (see :func:`canonical_body`)."""
        if self.bad_seq is not None:
            return False
        if seq != self.expected_seq:
            self.bad_seq = self.expected_seq if seq > self.expected_seq else seq
            self.reason = f"expected seq {self.expected_seq}, found {seq}"
        elif prev_hash != self.head:
            self.bad_seq, self.reason = seq, "prev_hash does not match"
        elif hashlib.sha256((self.head + body).encode("utf-8")).hexdigest() != digest:
            self.bad_seq, self.reason = seq, "hash does not match"
        else:
            self.head = digest
            self.expected_seq += 1
            self.count += 1
            return True
        return False

    def result(self) -> Verification:
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
