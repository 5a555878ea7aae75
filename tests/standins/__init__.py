"""Local stand-ins for remote services: real aiohttp servers on 127.0.0.1.

Each stand-in runs in a background thread with its own event loop, so synchronous clients
(msal uses ``requests``) can call it from the test's thread without blocking the test's loop.
Every stand-in exposes ``.url``, a request log (``.requests``) and switchable faults:

    fail_next(n, status=429, retry_after=1)   answer the next n requests with ``status``
    slow_next(n, seconds)                     hold the next n requests (client time-outs)
    drop_next(n)                              close the connection without an answer
    fail_path(part, status=500)               answer every request whose path contains ``part``
                                              with ``status`` until :meth:`clear_path_faults`
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    status: int | None = None


@dataclass
class Fault:
    kind: str  # "status" | "slow" | "drop"
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    then_fail: bool = False  # "slow": after the wait, answer ``status`` instead of doing the work
    until: threading.Event | None = None  # "slow": hold until the test sets it (at most 120 s), not ``seconds``
    once: bool = False  # a path fault: only the next request on the path meets it

    def answer(self, status: int | None = None, retry_after: float | None = None) -> None:
        """Let the request this fault holds (``until``) go on: carried out, or answered ``status`` (with
        ``retry_after``: Retry-After, or Okta's rate-limit reset for a 429) without doing anything."""
        if status is not None:
            self.status, self.retry_after, self.then_fail = status, retry_after, True
        assert self.until is not None
        self.until.set()


@dataclass
class _Faults:
    queue: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, fault: Fault, n: int) -> None:
        with self.lock:
            self.queue.extend([fault] * n)

    def pop(self) -> Fault | None:
        with self.lock:
            return self.queue.pop(0) if self.queue else None

    def clear(self) -> None:
        with self.lock:
            self.queue.clear()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StandIn:
    """Base class: subclasses build ``self.app`` routes in :meth:`routes` and answer faults in
    :meth:`fault_response`. Paths for which :meth:`faults_apply` is False never see faults."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self.requests: list[Received] = []
        self.next_base: str | None = None  # a page link names this origin instead of the stand-in's own
        self.faults = _Faults()
        self.path_faults: dict[str, Fault] = {}
        self.lock = threading.RLock()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> StandIn:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if self._tls else 'http'}://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- faults and the request log --------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 429, retry_after: float | None = 1) -> None:
        self.faults.push(Fault("status", status=status, retry_after=retry_after), n)

    def slow_next(self, n: int = 1, seconds: float = 5.0, then_status: int | None = None,
                  until: threading.Event | None = None) -> None:
        """Hold the next ``n`` requests for ``seconds`` (or until ``until`` is set); then do the work, or
        answer ``then_status``."""
        fault = Fault("slow", seconds=seconds, status=then_status or 503, then_fail=then_status is not None,
                      until=until)
        self.faults.push(fault, n)

    def drop_next(self, n: int = 1) -> None:
        self.faults.push(Fault("drop"), n)

    def fail_path(self, part: str, status: int = 500, retry_after: float | None = 0.01) -> None:
        """Answer ``status`` to every request whose path contains ``part`` (one person's look-ups)."""
        with self.lock:
            self.path_faults[part] = Fault("status", status=status, retry_after=retry_after)

    def hold_path(self, part: str, until: threading.Event, *, once: bool = False) -> Fault:
        """Hold every request whose path contains ``part`` (``once``: the next one only) until ``until`` is set (at
        most 120 s), then do the work; or answer as :meth:`Fault.answer` on the fault returned says."""
        fault = Fault("slow", until=until, once=once)
        with self.lock:
            self.path_faults[part] = fault
        return fault

    def clear_path_faults(self) -> None:
        with self.lock:
            self.path_faults.clear()

    def reset(self) -> None:
        """Forget faults and the request log (subclasses also clear their state)."""
        self.faults.clear()
        self.next_base = None
        with self.lock:
            self.requests.clear()
            self.path_faults.clear()

    def received(self, method: str | None = None, contains: str = "") -> list[Received]:
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and contains in r.path]

    def statuses(self) -> list[int | None]:
        with self.lock:
            return [r.status for r in self.requests]

    # ----- to be provided by subclasses ------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def faults_apply(self, request: web.Request) -> bool:
        return True

    def fault_response(self, fault: Fault, request: web.Request) -> web.Response:
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return web.json_response({"error": f"fault {fault.status}"}, status=fault.status, headers=headers)

    # ----- plumbing --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if request.content_type == "application/json" and raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            elif request.content_type == "application/x-www-form-urlencoded":
                body = dict((await request.post()).items())
            else:
                body = raw.decode("utf-8", "replace")
        entry = Received(request.method, request.path, dict(request.query), dict(request.headers), body)
        with self.lock:
            self.requests.append(entry)
        with self.lock:
            part, aimed = next(((part, f) for part, f in self.path_faults.items() if part in request.path),
                               ("", None))
            if aimed is not None and aimed.once:
                del self.path_faults[part]
        fault = aimed or (self.faults.pop() if self.faults_apply(request) else None)
        if fault is not None:
            if fault.kind == "drop":
                entry.status = 0
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if fault.kind == "slow" and fault.until is not None:
                await asyncio.to_thread(fault.until.wait, 120)
            elif fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            if fault.kind == "status" or (fault.kind == "slow" and fault.then_fail):
                resp = self.fault_response(fault, request)
                entry.status = resp.status
                return resp
        resp = await handler(request)
        entry.status = resp.status
        return resp
