"""The anchor file: the chain's head appended to a private file after every sweep that moved it.

One JSON object a line: ``{"anchored_at", "hash", "seq", "ts"}`` (``ts`` is the head event's own
time). The file is opened with O_APPEND (never truncated or rewritten), created with mode 0600,
and a symbolic link in its place is refused. Keep it where the database's users cannot write:
another host (a log shipper reading it), a filesystem with the append-only attribute
(``chattr +a``), or a WORM bucket that a copy job fills.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from handlers.anchors import Anchored, compare, is_seq, read_anchors
from handlers.audit import format_ts
from handlers.files import read_regular
from store import schema as t
from store.repository import SqlStore


class FileAnchor:
    """Implements ``handlers.anchors.ChainAnchor``."""

    def __init__(self, store: SqlStore, path: str | Path) -> None:
        self.store = store
        self.path = Path(path)
        self._last: tuple[int, str] | None = None
        self._read_last = False

    async def head(self) -> tuple[int, str, str] | None:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(c.seq, c.hash, c.ts).order_by(c.seq.desc()).limit(1))).first()
        return (int(row[0]), str(row[1]), str(row[2])) if row else None

    async def anchor(self, *, as_of: datetime) -> dict[str, Any] | None:
        head = await self.head()
        if head is None:
            return None
        if not self._read_last:
            self._last = await asyncio.to_thread(self._last_in_file)
            self._read_last = True
        if self._last == head[:2]:
            return None
        line = {"anchored_at": format_ts(datetime.now(UTC)), "hash": head[1], "seq": head[0], "ts": head[2]}
        await asyncio.to_thread(self._append, json.dumps(line, sort_keys=True) + "\n")
        self._last = head[:2]
        return line

    def _open(self, flags: int) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise OSError(f"the anchor file {self.path} is not a regular file")
        return fd

    def _append(self, line: str) -> None:
        fd = self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _last_in_file(self) -> tuple[int, str] | None:
        try:
            last = last_anchor(self.path)
        except FileNotFoundError:
            return None
        return (last.seq, last.hash) if last else None


def _open_regular(path: Path) -> int:
    """The file, read-only; a symbolic link in its place or anything but a regular file is refused."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"the anchor file {path} is not a regular file")
    return fd


def last_anchor(path: str | Path) -> Anchored | None:
    """The last anchor of the file, read from its tail (``line`` is 0: not counted); None when it holds none
    there. ``FileNotFoundError`` when there is no file."""
    with os.fdopen(_open_regular(Path(path)), "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 8192))
        tail = f.read().decode("utf-8", "replace").splitlines()
    for raw in reversed(tail):
        try:
            item = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(item, dict) and is_seq(item.get("seq")) and isinstance(item.get("hash"), str):
            return Anchored(0, item["seq"], item["hash"], str(item.get("anchored_at", "")))
    return None


class AnchorFileReader:
    """Implements ``handlers.dashboard.anchors.AnchorReader``: the anchor file, read only."""

    def __init__(self, store: SqlStore, path: str | Path) -> None:
        self.store = store
        self.path = str(path)

    async def latest(self) -> Anchored | None:
        return await asyncio.to_thread(last_anchor, self.path)

    async def hash_at(self, seq: int) -> str | None:
        c = t.audit_events.c
        async with self.store.engine.connect() as conn:
            value = (await conn.execute(select(c.hash).where(c.seq == seq))).scalar()
        return str(value) if value is not None else None

    async def check_all(self) -> tuple[list[Anchored], list[str]]:
        return await check_anchor_file(self.store, self.path)


async def check_anchor_file(store: SqlStore, path: str | Path) -> tuple[list[Anchored], list[str]]:
    """(anchors, problems) of the chain in ``store`` against the anchor file at ``path``."""
    file = Path(path)
    try:
        text = (await asyncio.to_thread(read_regular, file)).decode("utf-8")
    except OSError as exc:
        return [], [f"cannot read the anchor file {file}: {exc.strerror or exc}"]
    except UnicodeDecodeError as exc:
        return [], [f"the anchor file {file} is not UTF-8 (byte {exc.start}): it is damaged"]
    try:
        anchors = read_anchors(text.split("\n"))
    except ValueError as exc:
        return [], [f"the anchor file {file}: {exc}"]
    seqs = sorted({a.seq for a in anchors})
    chain: dict[int, str] = {}
    c = t.audit_events.c
    async with store.engine.connect() as conn:
        for start in range(0, len(seqs), 500):
            rows = (await conn.execute(select(c.seq, c.hash).where(c.seq.in_(seqs[start:start + 500])))).all()
            chain.update({int(r[0]): str(r[1]) for r in rows})
        head = (await conn.execute(select(c.seq).order_by(c.seq.desc()).limit(1))).scalar()
    return anchors, compare(anchors, chain, int(head or 0))
