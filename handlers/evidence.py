"""Evidence packs (SPEC §6): one zip per period that an auditor verifies without our code.

The pack is written as a stream: every event goes from the store into the zip and through a
SHA-256 as it is written. The rows of the CSV files are derived from those events (the pack's
own verifier derives them again); the rules' state of the requests seen last is kept in memory and
the others' in a temporary file (``handlers/evidence_state.py``), so that state takes the same
memory however many requests the period holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import hashlib
import io
import itertools
import json
import json.encoder
import operator
import os
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from handlers.audit import GENESIS, ChainVerifier, Verification, format_ts, in_stored_form
from handlers.evidence_check import CheckSource, contradictions, tracking
from handlers.evidence_figures import INTERESTING, Figures
from handlers.evidence_review_check import ReviewCheckSource, checked_campaigns
from handlers.evidence_state import spilling
from handlers.policy import PolicyError, parse_policy
from handlers.reviews.records import CLOSED, ReviewDecisionRecord
from handlers.reviews.report_check import StoredCampaign

REQUEST_COLUMNS = ["request_id", "requester", "profile", "kind", "duration", "justification", "ticket", "state",
                   "submitted_at", "policy_version", "policy_sha256"]
# SPEC §6 columns first, in its order; then an approval's round (0 = the request, n = its n-th
# extension) and, for approvals and grants, the policy version that governed their request (it
# may be older than the period, and then requests.csv does not hold it). A grant also says when
# a sweep judged its end as of another instant than it recorded it (ended_as_of), who approved it
# or which auto-approve rule did, its justification and how often it was extended.
GOVERNING = ["policy_version", "policy_sha256"]
APPROVAL_COLUMNS = ["request_id", "step", "approver", "decision", "comment", "decided_at", "round", *GOVERNING]
GRANT_COLUMNS = ["request_id", "user", "profile", "provider", "group", "started_at", "expires_at", "ended_at",
                 "end_reason", *GOVERNING, "ended_as_of", "kind", "approved_by", "auto_approved", "justification",
                 "extensions"]
EXCEPTION_COLUMNS = [*REQUEST_COLUMNS, "approvers"]
ROW_FILES = ("requests.csv", "approvals.csv", "grants.csv", "exceptions.csv")
REVIEW_COLUMNS = ["review_id", "review", "started_at", "closed_at", "items", "kept", "removed", "defaulted", "failed",
                  "snapshot_sha256"]
REVIEW_ITEM_COLUMNS = ["review_id", "item", "user", "profile", "provider", "group", "held_via", "reviewer", "decision",
                       "decided_by", "decided_at", "comment", "recommendation", "removed_at", "outcome"]


class EvidenceMismatch(Exception):
    """The store contradicts the audit chain: no pack is written. ``problems`` name file and request."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the database contradicts the audit chain: " + "; ".join(problems[:5])
                         + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
        self.problems = problems


class PackSigner(Protocol):
    """Signs manifest.json (implemented in ``bot/signing.py``)."""

    certificate: bytes  # PEM, written into the pack as signing-cert.pem

    def describe(self) -> dict[str, str]:
        """manifest.json's ``signature`` block: file, certificate, algorithm, certificate_sha256."""
        ...

    def sign(self, data: bytes) -> bytes: ...


class EvidenceSource(CheckSource, ReviewCheckSource, Protocol):
    """The streaming reads an evidence pack needs (implemented in ``store/evidence_queries.py``)."""

    def audit_pages(self, *, ts_from: str, ts_to: str, last_seq: int | None = None
                    ) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Pages of stored audit columns (seq, ts, type, actor, request_id, profile, data_json,
        prev_hash, hash) in seq order, ``ts`` in [ts_from, ts_to) and ``seq`` at most ``last_seq``;
        ``data_json`` as stored (canonical)."""
        ...

    def request_events(self, *, first_seq: int, last_seq: int, after: bool = False,
                       upto: int | None = None) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """The events (same columns) of every request with an event in [first_seq, last_seq] or a grant
        held when first_seq was recorded: those before first_seq, or (``after``) after last_seq."""
        ...

    async def removal_detections(self, *, first_seq: int, last_seq: int) -> list[Sequence[Any]]:
        """The events before first_seq (same columns) that found a removal in [first_seq, last_seq] (a
        leaver's ``user.terminated``, a member's ``drift.detected``), in seq order."""
        ...

    async def seq_bounds(self, ts_from: str, ts_to: str) -> tuple[int, int] | None: ...

    async def head_seq(self) -> int: ...

    async def verify_range(self, *, first_seq: int, last_seq: int | None, prev_hash: str) -> Verification: ...

    async def event_before(self, start_ts: str) -> dict[str, Any] | None: ...

    async def policy_versions(self) -> list[tuple[str, str, bytes, datetime]]: ...

    async def policy_in_force(self, at_ts: str) -> str | None:
        """The SHA-256 of the policy loaded last before ``at_ts``."""
        ...


@dataclass
class Period:
    start: date
    end: date  # inclusive

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @classmethod
    def parse(cls, start: str, end: str) -> Period:
        try:
            a, b = date.fromisoformat(start.strip()), date.fromisoformat(end.strip())
        except ValueError:
            raise ValueError(f"dates are YYYY-MM-DD, not {start!r} / {end!r}") from None
        if b < a:
            raise ValueError(f"the period ends ({b}) before it starts ({a})")
        if b == date.max:  # the period's end is the first instant of the next day, which must exist
            raise ValueError(f"the period cannot end on {date.max}, the last day of the calendar")
        return cls(a, b)


@dataclass
class PackSummary:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = 1  # type: ignore[attr-defined]  # fast: the pack is written once, read rarely
    return info


_str = json.encoder.encode_basestring  # exactly json.dumps(text, ensure_ascii=False), minus the per-call set-up


def _opt(value: str | None) -> str:
    return "null" if value is None else _str(value)


def _as_text(row: Sequence[Any]) -> Sequence[Any]:
    """A row not in its stored form with its columns after seq as text, so that an export still writes it."""
    return [row[0], *(v.decode("utf-8", "replace") if isinstance(v, bytes) else v if v is None else str(v)
                      for v in row[1:])]


def audit_lines(rows: Sequence[Sequence[Any]], verifier: ChainVerifier | None) -> bytes:
    """``audit.jsonl`` lines (§3.5 form: ``canonical_json`` of each whole event) for stored rows,
    each event fed to ``verifier`` on the way. The stored ``data`` is written as it stands (the verifier
    names one that is not canonical JSON); the keys are written in sorted order, as ``canonical_json`` does."""
    lines = []
    add, s = lines.append, _str
    feed = verifier.feed_canonical if verifier is not None else None
    for row in rows:
        if not in_stored_form(row):  # a column SQLite was given a blob or a number for (see ChainVerifier.stored)
            if verifier is not None:
                verifier.stored(row)  # named as the break
                feed = None
            row = _as_text(row)  # the event is written as it stands
        seq, ts, type_, actor, rid, profile, data, prev, digest = row
        n = int(seq)
        head = f'{{"actor":{"null" if actor is None else s(actor)},"data":{data},'
        tail = (f'"prev_hash":{"null" if prev is None else s(prev)},'
                f'"profile":{"null" if profile is None else s(profile)},'
                f'"request_id":{"null" if rid is None else s(rid)},"seq":{n},'
                f'"ts":{"null" if ts is None else s(ts)},"type":{"null" if type_ is None else s(type_)}}}')
        if feed is not None:
            feed(n, prev, digest, head + tail, ts, data)
        add(f'{head}"hash":{"null" if digest is None else s(digest)},{tail}\n')
    return "".join(lines).encode("utf-8")


def verify_rows(rows: Sequence[Sequence[Any]], verifier: ChainVerifier) -> bool:
    """Feed stored rows to ``verifier`` (the check :func:`audit_lines` makes, without the lines)."""
    feed = verifier.feed_canonical
    for row in rows:
        if not verifier.stored(row):
            return False
        seq, ts, type_, actor, rid, profile, data, prev, digest = row
        body = (f'{{"actor":{_opt(actor)},"data":{data},"prev_hash":{_opt(prev)},"profile":{_opt(profile)},'
                f'"request_id":{_opt(rid)},"seq":{int(seq)},"ts":{_opt(ts)},"type":{_opt(type_)}}}')
        if not feed(int(seq), prev, digest, body, ts, data):
            return False
    return True


_collector: dict[str, Any] = {"packs": 0, "thresholds": None}  # packs being written in this process


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """A pack makes millions of short-lived containers and no cycles among them: while packs are
    written, the cyclic collector looks at the youngest objects every 20,000 allocations instead of
    every 700 (it is process-wide; the thresholds are put back when the last pack is done)."""
    if _collector["packs"] == 0:
        _collector["thresholds"] = first, *older = gc.get_threshold()
        gc.set_threshold(max(first, 20_000), *older)
    _collector["packs"] += 1
    try:
        yield
    finally:
        _collector["packs"] -= 1
        if _collector["packs"] == 0:
            gc.set_threshold(*_collector["thresholds"])


def create_private(path: Path) -> None:
    """``path`` as a new empty file only its owner may read (0600, whatever the umask): a pack or a
    certification holds people's requests and reasons. A file or link already there is replaced."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))


def _write(zf: zipfile.ZipFile, name: str, data: bytes, summary: PackSummary) -> None:
    zf.writestr(_member(name), data)
    summary.files[name] = hashlib.sha256(data).hexdigest()


_scan = json.decoder.JSONDecoder().scan_once  # the C scanner json.loads ends in, without its wrappers


def _parse(data: str) -> Any:
    """``json.loads(data)`` for the stored, canonical ``data`` (no white space around it)."""
    try:
        value, end = _scan(data, 0)
    except StopIteration:
        return json.loads(data)  # not JSON: json.loads says why
    return value if end == len(data) else json.loads(data)


def _context(figures: Figures, page: Sequence[Sequence[Any]], wanted: frozenset[str]) -> None:
    """Feed removals.csv the events before the period that say whose grant a removal in it ends (never the
    removals before the period themselves: those are an earlier pack's)."""
    for seq, ts, type_, actor, rid, profile, data, _prev, _digest in page:
        if type_ in wanted:
            figures.removals.event({"seq": seq, "ts": ts, "type": type_, "actor": actor, "request_id": rid,
                                    "profile": profile, "data": _parse(data)})


async def _with(pages: AsyncIterator[Sequence[Sequence[Any]]],
                extra: Sequence[Sequence[Any]]) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """``pages`` (in seq order) with the rows of ``extra`` (in seq order, none of them in ``pages``) in place."""
    rest = list(extra)
    async for page in pages:
        last = int(page[-1][0])
        take = 0
        while take < len(rest) and int(rest[take][0]) < last:
            take += 1
        if take:
            yield sorted([*page, *rest[:take]], key=lambda row: int(row[0]))
            del rest[:take]
        else:
            yield page
    if rest:
        yield rest


def _fold(rows: Any, page: Sequence[Sequence[Any]], folded: frozenset[str],
          figures: Figures | None = None) -> list[dict[str, str]]:
    """Feed the events of a page that the rules read to ``rows`` (and those the report reads to
    ``figures``), each parsed once; returns the approvals rows they make."""
    made = []
    wanted = folded | INTERESTING if figures is not None else folded
    feed = rows.feed
    for seq, ts, type_, actor, rid, profile, data, _prev, _digest in page:
        if type_ not in wanted:
            continue
        event = {"seq": seq, "ts": ts, "type": type_, "actor": actor, "request_id": rid, "profile": profile,
                 "data": _parse(data)}
        if figures is not None and type_ in INTERESTING:
            figures.event(event)
        if rid and type_ in folded:
            row = feed(event)
            if row is not None:
                made.append(row)
    return made


def _cells_of(columns: Sequence[str]) -> Any:
    """row -> its cells in the order of ``columns`` (a KeyError for a missing one)."""
    get = operator.itemgetter(*columns)
    return get if len(columns) > 1 else lambda row: (get(row),)


class _Spool:
    """CSV rows written now, as the bytes a member will hold, and copied into the zip later
    (a zip is written one member at a time)."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = columns
        self.file = tempfile.TemporaryFile()  # closed by close()
        self.text = io.StringIO()
        self.writer = csv.writer(self.text, lineterminator="\n")
        self.cells = _cells_of(columns)
        self.count = 0

    def rows(self, rows: Sequence[dict[str, str]], seen: Any = None) -> None:
        self.writer.writerows(map(self.cells, rows))
        self.count += len(rows)
        if seen is not None:
            for row in rows:
                seen(row)
        if self.text.tell() > 1 << 20:
            self._flush()

    def _flush(self) -> None:
        self.file.write(self.text.getvalue().encode("utf-8"))
        self.text.seek(0)
        self.text.truncate()

    def copy(self, zf: zipfile.ZipFile, name: str, summary: PackSummary) -> None:
        """The member ``name``: the header, then the rows spooled, byte for byte."""
        self._flush()
        head = io.StringIO()
        csv.writer(head, lineterminator="\n").writerow(self.columns)
        self.file.seek(0)
        with _Member(zf, name, summary) as member:
            member.write(head.getvalue().encode("utf-8"))
            while chunk := self.file.read(1 << 20):
                member.write(chunk)
            member.count = self.count

    def close(self) -> None:
        self.file.close()


class _Member:
    """A zip member written as a stream and hashed on the way."""

    def __init__(self, zf: zipfile.ZipFile, name: str, summary: PackSummary) -> None:
        self.zf, self.name, self.summary = zf, name, summary

    def __enter__(self) -> _Member:
        self.raw = self.zf.open(_member(self.name), "w", force_zip64=True)
        self.sha = hashlib.sha256()
        self.count = 0
        return self

    def write(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.raw.write(chunk)

    def __exit__(self, *exc: object) -> None:
        self.raw.close()
        self.summary.files[self.name] = self.sha.hexdigest()
        self.summary.counts[self.name] = self.count


def _cells(row: dict[str, Any], cell: Any) -> dict[str, str]:
    """A row of CSV cells: times as the audit record writes them, nothing as empty, and text a spreadsheet
    would run as a formula (a reviewer's comment starting with "=") quoted by ``cell``, the rule the
    request files follow (verify_pack.py's)."""
    return {k: format_ts(v) if isinstance(v, datetime) else cell(v) for k, v in row.items()}


def _csv_member(zf: zipfile.ZipFile, name: str, columns: Sequence[str], rows: Iterable[dict[str, str]],
                summary: PackSummary, seen: Any = None) -> None:
    with _Member(zf, name, summary) as member:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        cells = _cells_of(columns)
        for row in rows:
            writer.writerow(cells(row))
            member.count += 1
            if seen is not None:
                seen(row)
            if out.tell() > 1 << 20:
                member.write(out.getvalue().encode("utf-8"))
                out.seek(0)
                out.truncate()
        member.write(out.getvalue().encode("utf-8"))


def _final(stored: StoredCampaign) -> dict[int, ReviewDecisionRecord]:
    """Item number → the decision that counts (the last one made)."""
    return {d.item: d for d in stored.decisions}


def review_row(stored: StoredCampaign) -> dict[str, Any]:
    """A campaign's row of reviews.csv."""
    c, final = stored.campaign, _final(stored)
    live = [final[i.number] for i in stored.items if i.state != "gone" and i.number in final]
    return {"review_id": c.ref, "review": c.review, "started_at": c.started_at,
            "closed_at": c.closed_at if c.state == CLOSED else None, "items": c.items,
            "kept": sum(d.decision == "keep" for d in live), "removed": sum(d.decision == "remove" for d in live),
            "defaulted": sum(d.actor == "system" for d in live),
            "failed": sum(i.state == "failed" for i in stored.items), "snapshot_sha256": c.snapshot_sha256}


def review_item_rows(stored: StoredCampaign) -> Iterator[dict[str, Any]]:
    """A campaign's rows of review_items.csv, one per item in number order, with the decision that counts."""
    final = _final(stored)
    for i in stored.items:
        d = final.get(i.number)
        yield {"review_id": stored.campaign.ref, "item": i.number, "user": i.user, "profile": i.profile,
               "provider": i.provider, "group": i.group, "held_via": i.held_via, "reviewer": i.reviewer,
               "decision": d.decision if d else None, "decided_by": d.actor if d else None,
               "decided_at": d.decided_at if d else None, "comment": d.comment if d else None,
               "recommendation": i.recommendation, "removed_at": i.removed_at,
               "outcome": i.outcome or (i.state if i.state != "open" else None)}


ROW_BATCH = 1000  # requests handed to the rules' row makers at once


def _in_batches(rows: Any) -> Iterator[tuple[list[dict[str, str]], ...]]:
    """For each batch of requests, in row order, their rows of requests.csv, grants.csv and
    exceptions.csv, as the rules' own ``request_rows`` and ``grant_rows`` make them: they are handed
    the requests a batch at a time, so that the requests are read once (from the file they may have
    gone to) for the three files."""
    states = iter(rows.ordered())
    batch: list[dict[str, Any]] = []
    rows._ordered = lambda: batch
    try:
        while batch := list(itertools.islice(states, ROW_BATCH)):
            yield list(rows.request_rows()), list(rows.grant_rows()), list(rows.request_rows("exception"))
    finally:
        del rows._ordered


def _request_files(zf: zipfile.ZipFile, rules: Any, rows: Any, summary: PackSummary, figures: Figures) -> None:
    """requests.csv, then grants.csv and exceptions.csv (spooled meanwhile), from one pass over the requests."""
    grants, exceptions = _Spool(rules.GRANT_COLUMNS), _Spool(rules.EXCEPTION_COLUMNS)
    try:
        def requests() -> Iterator[dict[str, str]]:
            for made, granted, excepted in _in_batches(rows):
                grants.rows(granted, figures.grant_row)
                exceptions.rows(excepted, figures.exception_row)
                yield from made

        _csv_member(zf, "requests.csv", rules.REQUEST_COLUMNS, requests(), summary, figures.request_row)
        grants.copy(zf, "grants.csv", summary)
        exceptions.copy(zf, "exceptions.csv", summary)
    finally:
        grants.close()
        exceptions.close()


async def build_pack(source: EvidenceSource, period: Period, out: Path, *, generated_at: datetime,
                     verifying: str, verifier_script: str, report: Any, rules: Any,
                     signer: PackSigner | None = None) -> PackSummary:
    """Write the pack; ``report(figures) -> str`` renders report.html from the figures gathered.

    ``rules`` is the shipped verifier (``verify_pack.py`` as a module): the CSV rows are derived
    with its ``Rows`` from the events the pack holds, exactly as an auditor's run derives them
    again. Before anything is kept, the store is checked against the chain: a contradiction
    raises :class:`EvidenceMismatch` and leaves no file.
    """
    with _fewer_collections():
        return await _build_pack(source, period, out, generated_at=generated_at, verifying=verifying,
                                 verifier_script=verifier_script, report=report, rules=rules, signer=signer)


async def _build_pack(source: EvidenceSource, period: Period, out: Path, *, generated_at: datetime,
                      verifying: str, verifier_script: str, report: Any, rules: Any,
                      signer: PackSigner | None) -> PackSummary:
    summary = PackSummary(out)
    start, end = period.start_at, period.end_at
    start_ts, end_ts = format_ts(start), format_ts(end)
    figures = Figures(period=period, generated_at=generated_at, removals=rules.RemovalRows())
    for _, sha, raw, _ in await source.policy_versions():
        try:
            figures.policies[sha] = parse_policy(raw, stored=True)
        except PolicyError:
            continue
    before = await source.event_before(start_ts)
    prev_hash = before["hash"] if before else GENESIS
    first_seq = (before["seq"] + 1) if before else 1
    bounds = await source.seq_bounds(start_ts, end_ts)
    last_in_period = bounds[1] if bounds else first_seq - 1
    head_seq = await source.head_seq()
    rows = spilling(tracking(rules.Rows))(start_ts, end_ts)
    folded = frozenset(rules.FOLDED)
    tmp = out.with_suffix(out.suffix + ".partial")
    create_private(tmp)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            with _Member(zf, "audit_earlier.jsonl", summary) as member:
                if first_seq > 1:  # the chain holds events before the period
                    found = await source.removal_detections(first_seq=first_seq, last_seq=last_in_period)
                    async for page in _with(source.request_events(first_seq=first_seq, last_seq=last_in_period),
                                            found):
                        member.write(audit_lines(page, None))
                        member.count += len(page)
                        _fold(rows, page, folded)
                        _context(figures, page, rules.REMOVAL_CONTEXT)  # whose grant a removal of the period
                        # ends, and when it was found
            verifier = ChainVerifier(prev_hash=prev_hash, first_seq=first_seq)
            last_seq, head = None, prev_hash
            approvals = _Spool(rules.APPROVAL_COLUMNS)
            try:
                with _Member(zf, "audit.jsonl", summary) as member:
                    writing: asyncio.Future[None] | None = None
                    try:
                        # the segment as the export found it (last_in_period): an event recorded since,
                        # a request decided while the pack is written, would come without the events
                        # before the period that audit_earlier.jsonl holds for the requests it concerns
                        async for page in source.audit_pages(ts_from=start_ts, ts_to=end_ts,
                                                             last_seq=last_in_period):
                            chunk = audit_lines(page, verifier)
                            if writing is not None:
                                await writing
                            # hashing and deflate release the GIL: they overlap with deriving the rows
                            writing = asyncio.ensure_future(asyncio.to_thread(member.write, chunk))
                            member.count += len(page)
                            approvals.rows(_fold(rows, page, folded, figures))
                            last_seq, head = int(page[-1][0]), str(page[-1][8])
                    finally:
                        if writing is not None:
                            await writing
                approvals.copy(zf, "approvals.csv", summary)
            finally:
                approvals.close()
            _request_files(zf, rules, rows, summary, figures)
            # removals not caused by a grant's own end (SPEC §6), from the period's events
            _csv_member(zf, "removals.csv", rules.REMOVAL_COLUMNS, figures.removals.rows, summary)
            # access reviews started in the period (SPEC §7): the campaigns' own records, as held against
            # their review.* events (the rows written are the rows checked)
            campaigns, review_problems = await checked_campaigns(source, start, end)
            _csv_member(zf, "reviews.csv", REVIEW_COLUMNS, [_cells(review_row(c), rules.cell) for c in campaigns],
                        summary)
            _csv_member(zf, "review_items.csv", REVIEW_ITEM_COLUMNS,
                        [_cells(r, rules.cell) for c in campaigns for r in review_item_rows(c)], summary)

            # the requests' later events, so that each is checked against the store as it is now
            if head_seq > last_in_period:  # the chain holds events after the period
                async for page in source.request_events(first_seq=first_seq, last_seq=last_in_period, after=True,
                                                        upto=head_seq):
                    _fold(rows, page, folded)
            problems = await contradictions(source, rows.ordered(unsubmitted=False), start=start, end=end,
                                            head_seq=head_seq) + review_problems
            if problems:
                raise EvidenceMismatch(problems)
            await _finish(zf, source, summary, figures, period, generated_at=generated_at, first_seq=first_seq,
                          prev_hash=prev_hash, last_seq=last_seq, head=head, verifier=verifier,
                          verifying=verifying, verifier_script=verifier_script, report=report, signer=signer)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        rows.close()
    try:
        tmp.replace(out)
    except BaseException:  # the pack names people and their access: no copy of it is left behind
        tmp.unlink(missing_ok=True)
        raise
    return summary


async def _finish(zf: zipfile.ZipFile, source: EvidenceSource, summary: PackSummary, figures: Figures,
                  period: Period, *, generated_at: datetime, first_seq: int, prev_hash: str, last_seq: int | None,
                  head: str, verifier: ChainVerifier, verifying: str, verifier_script: str, report: Any,
                  signer: PackSigner | None) -> None:
    """The policies, the whole chain's verification, the readable files, the manifest and its signature."""
    start_ts = format_ts(period.start_at)
    wanted = set(figures.policy_shas)
    first = await source.policy_in_force(start_ts)
    if first:
        wanted.add(first)
    in_force = [v for v in sorted(await source.policy_versions(), key=lambda v: v[3]) if v[1] in wanted]
    rewritten = [f"policy/ {version} ({sha[:12]}): the text stored for it no longer has that SHA-256, which the "
                 "audit chain names" for version, sha, raw, _ in in_force if hashlib.sha256(raw).hexdigest() != sha]
    if rewritten:
        raise EvidenceMismatch(rewritten)
    for version, sha, raw, _ in in_force:
        _write(zf, f"policy/{_safe(version)}-{sha[:12]}.yaml", raw, summary)
    figures.policy_versions = [(v, s) for v, s, _, _ in in_force]

    # the whole chain at export time: the part before the period (nothing when the period starts the chain, but
    # a row stored below seq 1 is still looked for), the segment, the part after it
    upto = await source.verify_range(first_seq=1, last_seq=first_seq - 1, prev_hash=GENESIS)
    before_ok = upto.ok and upto.head_hash == prev_hash
    after = await source.verify_range(first_seq=(last_seq or first_seq - 1) + 1, last_seq=None, prev_hash=head)
    segment_ok = verifier.result().ok
    chain_ok = bool(before_ok and after.ok and segment_ok)
    figures.chain_ok = chain_ok
    _write(zf, "VERIFYING.md", verifying.encode("utf-8"), summary)
    _write(zf, "verify_pack.py", verifier_script.encode("utf-8"), summary)
    _write(zf, "report.html", report(figures).encode("utf-8"), summary)
    count = summary.counts.get("audit.jsonl", 0)
    summary.audit = {
        "first_seq": first_seq if count else None, "last_seq": last_seq, "prev_hash": prev_hash,
        "head_hash": head, "verified": chain_ok, "segment_verified": segment_ok,
    }
    signature = signer.describe() if signer is not None else None
    if signer is not None and signature is not None:
        _write(zf, signature["certificate"], signer.certificate, summary)
    manifest: dict[str, Any] = {
        "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
        "generated_at": format_ts(generated_at),
        "policy_versions": [{"version": v, "sha256": s} for v, s, _, _ in in_force],
        "counts": summary.counts,
        "files": summary.files,
        "audit": summary.audit,
        "rows": {"derived_from": ["audit_earlier.jsonl", "audit.jsonl"], "rules": "verify_pack.py",
                 "files": list(ROW_FILES)},
    }
    if signature is not None:
        manifest["signature"] = signature
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    zf.writestr(_member("manifest.json"), manifest_bytes)
    if signer is not None and signature is not None:
        zf.writestr(_member(signature["file"]), signer.sign(manifest_bytes))


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:60] or "policy"
