"""Evidence packs (SPEC §6): one zip per period that an auditor verifies without our code.

The pack is written as a stream: every row goes from the store into the zip and through a
SHA-256 as it is written, so memory stays flat whatever the size of the period.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import json.encoder
import zipfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from handlers.audit import GENESIS, ChainVerifier, Verification, format_ts
from handlers.compliance.removals import REMOVAL_COLUMNS, RemovalRows
from handlers.compliance.removals import TYPES as REMOVAL_TYPES
from handlers.policy import Policy, PolicyError, parse_policy

REQUEST_COLUMNS = ["request_id", "requester", "profile", "kind", "duration", "justification", "ticket", "state",
                   "submitted_at", "policy_version", "policy_sha256"]
# SPEC §6 columns first, in its order; then an approval's round (0 = the request, n = its n-th
# extension) and, for approvals and grants, the policy version that governed their request (it
# may be older than the period, and then requests.csv does not hold it)
GOVERNING = ["policy_version", "policy_sha256"]
APPROVAL_COLUMNS = ["request_id", "step", "approver", "decision", "comment", "decided_at", "round", *GOVERNING]
GRANT_COLUMNS = ["request_id", "user", "profile", "provider", "group", "started_at", "expires_at", "ended_at",
                 "end_reason", *GOVERNING]
EXCEPTION_COLUMNS = [*REQUEST_COLUMNS, "approvers"]


class EvidenceSource(Protocol):
    """The streaming reads an evidence pack needs (implemented in ``store/evidence_queries.py``)."""

    def requests_submitted(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]: ...

    def decisions_made(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]: ...

    def grants_active(self, start: datetime, end: datetime) -> AsyncIterator[dict[str, Any]]: ...

    def audit_pages(self, *, ts_from: str, ts_to: str) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """Pages of stored audit columns (seq, ts, type, actor, request_id, profile, data_json,
        prev_hash, hash) in seq order, ``ts`` in [ts_from, ts_to); ``data_json`` as stored (canonical)."""
        ...

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
        return cls(a, b)


@dataclass
class PackSummary:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)


class _HashingText(io.TextIOBase):
    """Text written to a zip member, hashed on the way."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def write(self, text: str) -> int:  # type: ignore[override]
        data = text.encode("utf-8")
        self.sha.update(data)
        self.raw.write(data)
        return len(text)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_ts(value)
    text = str(value)
    # a spreadsheet must not run a formula an attacker put in a justification
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _csv(zf: zipfile.ZipFile, name: str, columns: Sequence[str], rows: AsyncIterator[dict[str, Any]],
               summary: PackSummary, seen: list[dict[str, Any]] | None = None) -> None:
    with zf.open(_member(name), "w", force_zip64=True) as member:
        out = _HashingText(member)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        count = 0
        async for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
            count += 1
            if seen is not None:
                seen.append(row)
    summary.counts[name] = count
    summary.files[name] = out.sha.hexdigest()


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=datetime.now(UTC).timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info._compresslevel = 1  # type: ignore[attr-defined]  # fast: the pack is written once, read rarely
    return info


_str = json.encoder.encode_basestring  # exactly json.dumps(text, ensure_ascii=False), minus the per-call set-up


def _opt(value: str | None) -> str:
    return "null" if value is None else _str(value)


def audit_lines(rows: Sequence[Sequence[Any]], verifier: ChainVerifier) -> bytes:
    """``audit.jsonl`` lines (§3.5 form: ``canonical_json`` of each whole event) for stored rows,
    each event fed to ``verifier`` on the way. The stored ``data`` is canonical JSON already, so
    nothing is parsed; the keys are written in sorted order, as ``canonical_json`` writes them."""
    lines = []
    feed = verifier.feed_canonical
    for seq, ts, type_, actor, rid, profile, data, prev, digest in rows:
        head = f'{{"actor":{_opt(actor)},"data":{data},'
        tail = (f'"prev_hash":{_opt(prev)},"profile":{_opt(profile)},"request_id":{_opt(rid)},"seq":{int(seq)},'
                f'"ts":{_opt(ts)},"type":{_opt(type_)}}}')
        feed(int(seq), prev, digest, head + tail)
        lines.append(f'{head}"hash":{_opt(digest)},{tail}\n')
    return "".join(lines).encode("utf-8")


def verify_rows(rows: Sequence[Sequence[Any]], verifier: ChainVerifier) -> bool:
    """Feed stored rows to ``verifier`` (the check :func:`audit_lines` makes, without the lines)."""
    feed = verifier.feed_canonical
    for seq, ts, type_, actor, rid, profile, data, prev, digest in rows:
        body = (f'{{"actor":{_opt(actor)},"data":{data},"prev_hash":{_opt(prev)},"profile":{_opt(profile)},'
                f'"request_id":{_opt(rid)},"seq":{int(seq)},"ts":{_opt(ts)},"type":{_opt(type_)}}}')
        if not feed(int(seq), prev, digest, body):
            return False
    return True


def _write(zf: zipfile.ZipFile, name: str, data: bytes, summary: PackSummary) -> None:
    zf.writestr(_member(name), data)
    summary.files[name] = hashlib.sha256(data).hexdigest()


async def build_pack(source: EvidenceSource, period: Period, out: Path, *, generated_at: datetime,
                     verifying: str, verifier_script: str, report: Any) -> PackSummary:
    """Write the pack; ``report(figures) -> str`` renders report.html from the figures gathered."""
    summary = PackSummary(out)
    start, end = period.start_at, period.end_at
    start_ts, end_ts = format_ts(start), format_ts(end)
    figures = Figures(period=period)
    for _, sha, raw, _ in await source.policy_versions():
        try:
            figures.policies[sha] = parse_policy(raw)
        except PolicyError:
            continue
    tmp = out.with_suffix(out.suffix + ".partial")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        requests: list[dict[str, Any]] = []
        await _csv(zf, "requests.csv", REQUEST_COLUMNS, figures.count_requests(source.requests_submitted(start, end)),
                   summary)
        await _csv(zf, "approvals.csv", APPROVAL_COLUMNS, figures.count_decisions(source.decisions_made(start, end)),
                   summary)
        await _csv(zf, "grants.csv", GRANT_COLUMNS, figures.count_grants(source.grants_active(start, end)), summary)
        await _csv(zf, "exceptions.csv", EXCEPTION_COLUMNS, _exceptions(source, start, end, figures), summary,
                   requests)

        before = await source.event_before(start_ts)
        prev_hash = before["hash"] if before else GENESIS
        first_seq = (before["seq"] + 1) if before else 1
        verifier = ChainVerifier(prev_hash=prev_hash, first_seq=first_seq)
        last_seq, head = None, prev_hash
        with zf.open(_member("audit.jsonl"), "w", force_zip64=True) as member:
            sha = hashlib.sha256()
            count = 0
            writing: asyncio.Future[None] | None = None

            def write(chunk: bytes) -> None:  # hashing and deflate release the GIL: overlap with the next page
                sha.update(chunk)
                member.write(chunk)

            try:
                async for page in source.audit_pages(ts_from=start_ts, ts_to=end_ts):
                    chunk = audit_lines(page, verifier)
                    figures.events(page)
                    last_seq, head = int(page[-1][0]), str(page[-1][8])
                    count += len(page)
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(asyncio.to_thread(write, chunk))
            finally:
                if writing is not None:
                    await writing
        summary.counts["audit.jsonl"] = count
        summary.files["audit.jsonl"] = sha.hexdigest()
        await _csv(zf, "removals.csv", REMOVAL_COLUMNS, _rows(figures.removals.rows), summary)

        wanted = set(figures.policy_shas)
        first = await source.policy_in_force(start_ts)
        if first:
            wanted.add(first)
        in_force = [v for v in sorted(await source.policy_versions(), key=lambda v: v[3]) if v[1] in wanted]
        for version, sha, raw, _ in in_force:
            _write(zf, f"policy/{_safe(version)}-{sha[:12]}.yaml", raw, summary)
        figures.policy_versions = [(v, s) for v, s, _, _ in in_force]

        # the whole chain at export time: the part before the period, the segment, the part after it
        if first_seq == 1:
            before_ok = True
        else:
            upto = await source.verify_range(first_seq=1, last_seq=first_seq - 1, prev_hash=GENESIS)
            before_ok = upto.ok and upto.head_hash == prev_hash
        after = await source.verify_range(first_seq=(last_seq or first_seq - 1) + 1, last_seq=None, prev_hash=head)
        chain_ok = before_ok and after.ok
        figures.chain_ok = bool(chain_ok and verifier.result().ok)
        _write(zf, "VERIFYING.md", verifying.encode("utf-8"), summary)
        _write(zf, "verify_pack.py", verifier_script.encode("utf-8"), summary)
        _write(zf, "report.html", report(figures).encode("utf-8"), summary)
        summary.audit = {
            "first_seq": first_seq if count else None, "last_seq": last_seq, "prev_hash": prev_hash,
            "head_hash": head, "verified": bool(chain_ok and verifier.result().ok),
            "segment_verified": verifier.result().ok,
        }
        manifest = {
            "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
            "generated_at": format_ts(generated_at),
            "policy_versions": [{"version": v, "sha256": s} for v, s, _, _ in in_force],
            "counts": summary.counts,
            "files": summary.files,
            "audit": summary.audit,
        }
        zf.writestr(_member("manifest.json"), json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(out)
    return summary


async def _exceptions(source: EvidenceSource, start: datetime, end: datetime, figures: Figures
                      ) -> AsyncIterator[dict[str, Any]]:
    approvers: dict[str, list[str]] = {}
    async for d in source.decisions_made(datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)):
        if d.get("decision") == "approved" and d.get("kind") == "exception":
            approvers.setdefault(d["request_id"], []).append(d["approver"])
    async for row in source.requests_submitted(start, end):
        if row.get("kind") == "exception":
            figures.exceptions.append({**row, "approvers": ";".join(approvers.get(row["request_id"], []))})
            yield {**row, "approvers": ";".join(approvers.get(row["request_id"], []))}


async def _rows(rows: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for row in rows:
        yield row


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:60] or "policy"


@dataclass
class Figures:
    """What report.html shows, gathered while the pack streams by."""

    period: Period
    requests: int = 0
    by_profile: dict[str, dict[str, int]] = field(default_factory=dict)
    per_week: dict[str, int] = field(default_factory=dict)
    approve_seconds: list[float] = field(default_factory=list)
    grants: int = 0
    outliving: list[str] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    terminations: list[dict[str, Any]] = field(default_factory=list)
    removals: RemovalRows = field(default_factory=RemovalRows)
    drift: list[dict[str, Any]] = field(default_factory=list)
    policy_versions: list[tuple[str, str]] = field(default_factory=list)
    policy_shas: set[str] = field(default_factory=set)
    chain_ok: bool | None = None
    policies: dict[str, Policy] = field(default_factory=dict)
    _submitted: dict[str, datetime] = field(default_factory=dict)
    _terminated_grants: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def count_requests(self, rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for row in rows:
            self.requests += 1
            self.policy_shas.add(row["policy_sha256"])
            states = self.by_profile.setdefault(row["profile"], {})
            states[row["state"]] = states.get(row["state"], 0) + 1
            at: datetime = row["submitted_at"]
            week = f"{at.isocalendar()[0]}-W{at.isocalendar()[1]:02d}"
            self.per_week[week] = self.per_week.get(week, 0) + 1
            if len(self._submitted) < 200_000:
                self._submitted[row["request_id"]] = at
            yield row

    async def count_decisions(self, rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for row in rows:
            self.policy_shas.add(row["policy_sha256"])
            submitted = self._submitted.get(row["request_id"])
            if submitted is not None and row["decision"] == "approved" and len(self.approve_seconds) < 200_000:
                self.approve_seconds.append((row["decided_at"] - submitted).total_seconds())
            yield row

    async def count_grants(self, rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        async for row in rows:
            self.grants += 1
            self.policy_shas.add(row["policy_sha256"])
            if self._outlived(row) and len(self.outliving) < 1000:
                self.outliving.append(row["request_id"])
            yield row

    def _outlived(self, row: dict[str, Any]) -> bool:
        """A grant whose own span is longer than its policy version allowed (extensions re-approve it)."""
        policy = self.policies.get(row.get("policy_sha256") or "")
        profile = policy.profile(row["profile"]) if policy else None
        started, expires = row.get("started_at"), row.get("expires_at")
        if profile is None or not started or not expires or row.get("round"):
            return False
        limit = profile.exception.max_duration if row.get("kind") == "exception" and profile.exception \
            else profile.max_duration
        return expires - started > limit

    INTERESTING = frozenset({"policy.loaded", "user.terminated", "grant.revoked", "drift.detected", "drift.resolved"})

    def events(self, rows: Sequence[Sequence[Any]]) -> None:
        """Take the events the report needs from a page of stored audit rows."""
        wanted = self.INTERESTING | REMOVAL_TYPES
        for seq, ts, type_, _actor, rid, _profile, data, _prev, _digest in rows:
            if type_ in wanted:
                event = {"seq": seq, "ts": ts, "type": type_, "request_id": rid, "data": json.loads(data)}
                if type_ in REMOVAL_TYPES:
                    self.removals.event(event)  # removals.csv (SPEC §6)
                if type_ in self.INTERESTING:
                    self.event(event)

    def event(self, event: dict[str, Any]) -> None:
        at = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
        data = event.get("data") or {}
        if event["type"] == "policy.loaded" and data.get("sha256"):
            self.policy_shas.add(str(data["sha256"]))
        if event["type"] == "user.terminated":
            entry = {"user": data.get("user"), "terminated_at": event["ts"], "grants": list(data.get("grants") or []),
                     "revoked_at": None, "hours": None}
            if len(self.terminations) < 10_000:
                self.terminations.append(entry)
                for ref in entry["grants"]:
                    self._terminated_grants[ref] = entry
        elif event["type"] == "grant.revoked" and data.get("reason") == "terminated":
            entry = self._terminated_grants.get(event.get("request_id") or "")
            if entry is not None:
                at_start = datetime.fromisoformat(entry["terminated_at"].replace("Z", "+00:00"))
                entry["revoked_at"] = event["ts"]
                entry["hours"] = max(entry["hours"] or 0.0, (at - at_start).total_seconds() / 3600)
        elif event["type"] in ("drift.detected", "drift.resolved") and len(self.drift) < 1000:
            self.drift.append({"type": event["type"], "ts": event["ts"], **data})
