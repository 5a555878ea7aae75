"""Microsoft Graph's drive API (a SharePoint document library), added to the Graph stand-in.

    PUT  /v1.0/drives/{drive}/root:/{path}:/content              simple upload (bearer token), at most 4 MiB
    POST /v1.0/drives/{drive}/root:/{path}:/createUploadSession  answers an ``uploadUrl`` (no token needed there)
    PUT  /upload/{session}                                       one byte range (``Content-Range``); ranges
                                                                 but the last must be multiples of 320 KiB and
                                                                 start where the session expects; 202 with
                                                                 ``nextExpectedRanges``, 201 + driveItem at the end
    GET  /upload/{session}                                       the session's ``nextExpectedRanges``

Faults: the base class's ``fail_next`` (429 + Retry-After) and ``drop_next`` apply to these paths too;
:meth:`drop_range` drops the connection on the n-th range PUT without keeping its bytes.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from tests.standins.graph import GraphStandIn

RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
UNIT = 320 * 1024


class DriveStandIn(GraphStandIn):
    def __init__(self, *args: Any, drive_id: str = "b!drive-1", **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.drive_id = drive_id
        self.files: dict[str, bytes] = {}
        self.items: dict[str, str] = {}  # path -> item id
        self.sessions: dict[str, dict[str, Any]] = {}
        self.range_puts = 0
        self._drop_at: set[int] = set()

    def drop_range(self, n: int) -> None:
        """Drop the connection on the n-th range PUT (1-based), keeping nothing of it."""
        self._drop_at.add(n)

    def routes(self, app: web.Application) -> None:
        app.router.add_route("PUT", r"/v1.0/drives/{drive}/root:/{path:.+}:/content", self._simple)
        app.router.add_route("POST", r"/v1.0/drives/{drive}/root:/{path:.+}:/createUploadSession", self._session)
        app.router.add_route("PUT", "/upload/{sid}", self._range)
        app.router.add_route("GET", "/upload/{sid}", self._status)
        super().routes(app)

    def faults_apply(self, request: web.Request) -> bool:
        return request.path.startswith(("/v1.0/", "/upload/"))

    def _authorised(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization", "")
        with self.lock:
            return auth.startswith("Bearer ") and auth[7:] in self.valid_tokens

    def _item(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        item_id = self.items.setdefault(path, "01" + uuid.uuid4().hex[:30].upper())
        return {"id": item_id, "name": path.rsplit("/", 1)[-1], "size": len(data),
                "webUrl": f"https://contoso.sharepoint.com/sites/audit/Shared%20Documents/{path}",
                "file": {"mimeType": "application/octet-stream", "hashes": {"quickXorHash": "stand-in"}}}

    async def _simple(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"code": "InvalidAuthenticationToken", "message": "no"}}, status=401)
        if request.match_info["drive"] != self.drive_id:
            return web.json_response({"error": {"code": "itemNotFound", "message": "drive"}}, status=404)
        body = await request.read()
        if len(body) > 4 * 1024 * 1024:
            return web.json_response({"error": {"code": "requestTooLarge", "message": "use an upload session"}},
                                     status=413)
        path = request.match_info["path"]
        with self.lock:
            self.files[path] = body
            return web.json_response(self._item(path), status=201)

    async def _session(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": {"code": "InvalidAuthenticationToken", "message": "no"}}, status=401)
        sid = uuid.uuid4().hex
        with self.lock:
            self.sessions[sid] = {"path": request.match_info["path"], "data": bytearray(), "size": None}
        return web.json_response({"uploadUrl": f"{self.url}/upload/{sid}", "nextExpectedRanges": ["0-"],
                                  "expirationDateTime": "2099-01-01T00:00:00Z"})

    async def _range(self, request: web.Request) -> web.StreamResponse:
        if "Authorization" in request.headers:  # Graph refuses a bearer token on the pre-authorised URL
            return web.json_response({"error": {"code": "unauthenticated", "message": "no token here"}}, status=401)
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            return web.json_response({"error": {"code": "itemNotFound", "message": "session"}}, status=404)
        body = await request.read()
        with self.lock:
            self.range_puts += 1
            drop = self.range_puts in self._drop_at
        if drop:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        m = RANGE_RE.match(request.headers.get("Content-Range", ""))
        if not m:
            return web.json_response({"error": {"code": "invalidRange", "message": "Content-Range"}}, status=400)
        start, end, total = (int(g) for g in m.groups())
        with self.lock:
            data: bytearray = session["data"]
            if start != len(data) or end - start + 1 != len(body):
                return web.json_response({"error": {"code": "invalidRange", "message": "unexpected range",
                                                    "nextExpectedRanges": [f"{len(data)}-"]}}, status=416)
            if end + 1 < total and len(body) % UNIT:
                return web.json_response({"error": {"code": "invalidRange", "message": "not a multiple of 320 KiB"}},
                                         status=400)
            data.extend(body)
            if len(data) < total:
                return web.json_response({"nextExpectedRanges": [f"{len(data)}-"],
                                          "expirationDateTime": "2099-01-01T00:00:00Z"}, status=202)
            self.files[session["path"]] = bytes(data)
            del self.sessions[request.match_info["sid"]]
            return web.json_response(self._item(session["path"]), status=201)

    async def _status(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["sid"])
        if session is None:
            return web.json_response({"error": {"code": "itemNotFound", "message": "session"}}, status=404)
        return web.json_response({"nextExpectedRanges": [f"{len(session['data'])}-"],
                                  "expirationDateTime": "2099-01-01T00:00:00Z"})
