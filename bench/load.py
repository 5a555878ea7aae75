"""The load generator of the HTTP benchmarks: a burst of requests sent at once, each on its own connection.

``raw`` (the default) opens every connection first (a ``GET /warm`` on each, answered before the burst), then
writes the 200 requests one after the other in a loop that does nothing else (each is bytes prepared before the
burst: a few microseconds a request) and reads the answers as they come; a request's time runs from its write
to the last byte of its answer. The burst reaches the server at once, as a card seen by a whole team does.

``aiohttp`` sends the same requests with aiohttp's client (``asyncio.gather`` over ``ClientSession.post``), as
these benchmarks did first. It is kept to compare with, but it does not measure the server alone: preparing a
request costs that client about half a millisecond, and in some bursts it wrote every request's headers, then
nothing until it had prepared all of them (its body writes queued behind the other requests' set-up: the first
body left about 90 ms after the first header, the server idle in ``epoll`` meanwhile), which put 90 ms on
every request of whichever burst it happened to, whatever the server did.

Both run in a process of their own (:func:`burst_in_child`), so the server's event loop only serves.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from urllib.parse import urlsplit

from aiohttp import ClientSession, TCPConnector

CLIENTS = ("raw", "aiohttp")
# what an answer must say: ``invoke`` a 200 whose JSON body has ``statusCode`` 200 (an invoke response), ``ok`` a 200
CHECKS = ("invoke", "ok")

Request = tuple[bytes, dict[str, str]]  # body and headers


def _check(check: str, status: int, body: bytes) -> None:
    if status != 200:
        raise AssertionError(f"HTTP {status}: {body[:200]!r}")
    if check == "invoke":
        payload = json.loads(body)
        if payload.get("statusCode") != 200:
            raise AssertionError(f"invoke answered {payload.get('statusCode')}: {body[:200]!r}")


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer: its status and body (by Content-Length, or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, to the empty line
                    pass
                return status, bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return status, await reader.readexactly(int(headers.get("content-length", "0")))


def _request(method: str, host: str, target: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items()),
             f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


async def raw_burst(url: str, requests: list[Request], check: str) -> list[float]:
    """The requests written at once, each on a connection opened (and answered once) before; ms each."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    authority = f"{host}:{port}"
    conns = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in requests))
    try:
        for _, writer in conns:  # the server accepts each connection and answers on it once before the burst
            writer.write(_request("GET", authority, "/warm", b"", {}))
        for reader, _ in conns:
            await _answer(reader)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        prepared = [_request("POST", authority, target, body, headers) for body, headers in requests]
        sent = [0.0] * len(requests)
        for i, (_, writer) in enumerate(conns):
            sent[i] = time.perf_counter()
            writer.write(prepared[i])

        async def one(i: int) -> float:
            status, body = await _answer(conns[i][0])
            done = time.perf_counter()
            _check(check, status, body)
            return (done - sent[i]) * 1000

        return list(await asyncio.gather(*(one(i) for i in range(len(requests)))))
    finally:
        for _, writer in conns:
            writer.close()


async def aiohttp_burst(url: str, requests: list[Request], check: str) -> list[float]:
    """The same burst through aiohttp's client (see the module: kept to compare with)."""
    async with ClientSession(connector=TCPConnector(limit=0)) as http:
        async def one(body: bytes, headers: dict[str, str]) -> float:
            started = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as resp:
                payload = await resp.read()
                done = time.perf_counter()
            _check(check, resp.status, payload)
            return (done - started) * 1000

        # open every connection first: the burst measures the requests, not TCP handshakes
        async def warm() -> None:
            async with http.get(url[: url.index("/", len("http://"))] + "/warm") as resp:
                await resp.read()

        await asyncio.gather(*(warm() for _ in requests))
        return list(await asyncio.gather(*(one(b, h) for b, h in requests)))


def burst_in_child(url: str, requests: list[Request], check: str = "ok", client: str = "raw") -> list[float]:
    """Run in the load-generator process: ms from each request's send to its whole answer."""
    burst = raw_burst if client == "raw" else aiohttp_burst
    # the collector's full passes over this process's heap (every module the benchmark imported) would land in
    # some bursts and not others, and be timed as the server's: none runs while a burst is timed
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(burst(url, requests, check))
    finally:
        gc.enable()
