"""Delivering evidence to a SharePoint document library through Microsoft Graph's drive API.

Small files go up in one request (``PUT /drives/{id}/root:/{path}:/content``); larger ones through an
upload session (``createUploadSession``, then byte ranges of a multiple of 320 KiB to the session's
pre-authorised URL, which takes no bearer token). A range that is refused for now (429 with
``Retry-After``, 5xx) or lost on the way (a dropped connection) is not guessed at: the session is
asked which ranges it still expects, and the upload resumes there. The app-only token is the Entra
provider's (one app registration, one msal cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from handlers.evidence_schedule import Delivered
from handlers.ports import ProviderError
from provisioning.entra import EntraProvider
from provisioning.http import (
    NETWORK_ERRORS,
    TRANSIENT_STATUSES,
    Reply,
    RetryPolicy,
    parse_retry_after,
    read_reply,
    ssl_context,
    with_retries,
)

SIMPLE_LIMIT = 4 * 1024 * 1024
RANGE_UNIT = 320 * 1024  # Graph wants every range but the last to be a multiple of this
DEFAULT_CHUNK = 10 * RANGE_UNIT


class Unconfigured:
    """A target that cannot work: every delivery fails with the reason, and so is retried and reported."""

    def __init__(self, reason: str) -> None:
        self.name = "sharepoint"
        self.reason = reason

    async def deliver(self, path: Path, name: str) -> Delivered:
        raise ProviderError(self.reason, transient=False)


class SharePointTarget:
    def __init__(self, provider: EntraProvider, drive_id: str, *, folder: str = "accessbot-evidence",
                 chunk_size: int = DEFAULT_CHUNK, simple_limit: int = SIMPLE_LIMIT,
                 policy: RetryPolicy | None = None, max_chunk_retries: int = 8) -> None:
        if chunk_size % RANGE_UNIT:
            raise ValueError("chunk_size must be a multiple of 320 KiB")
        self.provider = provider
        self.drive_id = drive_id
        self.folder = folder.strip("/")
        self.chunk_size = chunk_size
        self.simple_limit = simple_limit
        self.policy = policy or provider.policy
        self.max_chunk_retries = max_chunk_retries
        self.name = "sharepoint"
        self.calls: list[str] = []  # what was sent, for diagnostics

    def _item_url(self, name: str, action: str) -> str:
        path = quote(f"{self.folder}/{name}" if self.folder else name)
        return f"{self.provider.graph_url}/drives/{quote(self.drive_id, safe='')}/root:/{path}:/{action}"

    async def _send(self, method: str, url: str, *, body: bytes | None = None, json_body: Any = None,
                    headers: dict[str, str] | None = None, auth: bool = True) -> Reply:
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = f"Bearer {await self.provider.access_token()}"
        sent.setdefault("client-request-id", str(uuid.uuid4()))
        self.calls.append(f"{method} {url.split('?')[0]}")
        session = self.provider.http_session()
        async with session.request(method, url, data=body, json=json_body, headers=sent, ssl=ssl_context(),
                                   timeout=aiohttp.ClientTimeout(total=self.policy.request_timeout)) as resp:
            data, text = await read_reply(resp)
            return Reply(resp.status, resp.headers, data, text, correlation_id=resp.headers.get("request-id"),
                         retry_after=parse_retry_after(resp.headers.get("Retry-After")))

    def _fail(self, reply: Reply, what: str) -> ProviderError:
        err = reply.data.get("error") if isinstance(reply.data, dict) else None
        message = f"{err.get('code')}: {err.get('message')}" if isinstance(err, dict) else reply.text[:200]
        return ProviderError(f"SharePoint {what}: HTTP {reply.status} {message}",
                             transient=reply.status in TRANSIENT_STATUSES, status=reply.status,
                             correlation_id=reply.correlation_id, retry_after=reply.retry_after)

    async def deliver(self, path: Path, name: str) -> Delivered:
        data_size = (await asyncio.to_thread(path.stat)).st_size
        digest = await asyncio.to_thread(_sha256, path)
        if data_size <= self.simple_limit:
            body = await asyncio.to_thread(path.read_bytes)
            url = self._item_url(name, "content") + "?@microsoft.graph.conflictBehavior=replace"
            reply = await with_retries(lambda: self._send("PUT", url, body=body,
                                                          headers={"Content-Type": "application/octet-stream"}),
                                       self.policy, what=f"SharePoint upload {name}")
            if not reply.ok:
                raise self._fail(reply, f"upload {name}")
            item = dict(reply.data or {})
        else:
            item = await self._session_upload(path, name, data_size)
        if int(item.get("size", data_size)) != data_size:
            raise ProviderError(f"SharePoint kept {item.get('size')} bytes of {data_size} for {name}", transient=True)
        hashes = (item.get("file") or {}).get("hashes") or {}
        extra = {"drive_id": self.drive_id}
        if hashes.get("quickXorHash"):
            extra["quickXorHash"] = hashes["quickXorHash"]
        return Delivered(item_id=str(item.get("id")), sha256=digest, size=data_size,
                         location=str(item.get("webUrl") or f"sharepoint:{self.folder}/{name}"), extra=extra)

    async def _session_upload(self, path: Path, name: str, size: int) -> dict[str, Any]:
        body = {"item": {"@microsoft.graph.conflictBehavior": "replace", "name": name}}
        reply = await with_retries(lambda: self._send("POST", self._item_url(name, "createUploadSession"),
                                                      json_body=body),
                                   self.policy, what=f"SharePoint upload session {name}")
        if not reply.ok or not isinstance(reply.data, dict) or "uploadUrl" not in reply.data:
            raise self._fail(reply, f"upload session {name}")
        upload_url = str(reply.data["uploadUrl"])
        offset, setbacks = 0, 0
        started = time.monotonic()
        with path.open("rb") as fh:
            while True:
                fh.seek(offset)
                chunk = await asyncio.to_thread(fh.read, self.chunk_size)
                end = offset + len(chunk) - 1
                wait: float | None = None
                try:
                    reply = await self._send("PUT", upload_url, body=chunk, auth=False, headers={
                        "Content-Range": f"bytes {offset}-{end}/{size}", "Content-Length": str(len(chunk))})
                except NETWORK_ERRORS:
                    reply = None
                if reply is not None and reply.status in (200, 201):
                    return dict(reply.data or {})
                if reply is not None and reply.status == 202:
                    offset = _next_expected(reply.data, end + 1)
                    continue
                if reply is not None and reply.status not in TRANSIENT_STATUSES:
                    raise self._fail(reply, f"upload of {name} at byte {offset}")
                wait = reply.retry_after if reply is not None else None
                setbacks += 1
                if setbacks > self.max_chunk_retries or time.monotonic() - started > 3600:
                    raise ProviderError(f"SharePoint upload of {name}: gave up at byte {offset} after {setbacks} "
                                        "setbacks", transient=True)
                await asyncio.sleep(self.policy.delay(setbacks, wait))
                offset = await self._resume_at(upload_url, offset)

    async def _resume_at(self, upload_url: str, fallback: int) -> int:
        """Where the session wants the next bytes (a lost range may or may not have landed)."""
        try:
            reply = await with_retries(lambda: self._send("GET", upload_url, auth=False), self.policy,
                                       what="SharePoint upload status")
        except ProviderError:
            return fallback
        return _next_expected(reply.data, fallback) if reply.ok else fallback


def _next_expected(data: Any, fallback: int) -> int:
    ranges = data.get("nextExpectedRanges") if isinstance(data, dict) else None
    if not ranges:
        return fallback
    return int(str(ranges[0]).split("-", 1)[0])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
