"""A TCP relay in front of PostgreSQL that counts the client's round trips.

The PostgreSQL protocol is request/answer: a client sends a batch of messages (BEGIN; Parse and
Sync; Bind, Execute and Sync; …) and waits for the server's answer before its next batch. Every
chunk the relay reads from the client is therefore one round trip (loopback does not split the
small batches a command sends). What the driver does for itself (a prepared statement's Parse,
a transaction's BEGIN and COMMIT, a connection ping) counts too, which no SQLAlchemy event sees.

    with WireCounter(pg_url) as wire:
        url = wire.url          # the same database, through the relay
        ...
        wire.trips              # client batches so far
        wire.delay = 0.3        # hold each of the server's answers back 0.3 s
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class WireCounter:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._parts = parts
        self.trips = 0
        self.delay = 0.0  # seconds each of the server's answers is held back (a slow network)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        p = self._parts
        netloc = p.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit((p.scheme, f"{netloc[0]}@{host}" if len(netloc) == 2 else host, p.path, p.query, ""))

    def __enter__(self) -> WireCounter:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: Any) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            try:
                while chunk := await src.read(65536):
                    if not count and self.delay:
                        await asyncio.sleep(self.delay)
                    if count:
                        with self._lock:
                            self.trips += 1
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
