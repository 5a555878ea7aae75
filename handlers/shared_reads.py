"""Reads of the same thing at once share a round trip, and none of them answers with what was read before its caller
asked.

A channel's card refreshing for its whole team, or a burst of clicks on one card, reads the same request (and the
directory's overlay version) a hundred times within milliseconds. :class:`SharedReads` sends one read of a key at a
time:

- a caller that finds no read of its key on its way sends its own;
- a caller that finds one on its way does not take that one's answer (it was sent before the caller asked, and may
  miss a commit the caller could have seen). It waits for that read to end and shares the *next* read, which starts
  after every caller it serves had asked.

So every caller gets an answer read after it asked, as its own read would have been, while a key has at most two
reads on their way (one running, one waited for) however many callers there are. A read that fails fails for every
caller sharing it, as each caller's own would have. The answer is shared: callers read it, and copy what they change.

A read started for those who wait runs in a task of its own, so no waiter's cancellation (a client hanging up)
stops it for the others. That task runs in a context of its own, empty: it serves callers who all came before it
started, so it rests on nothing any one caller's context holds (a scope's look-ups, kept copies of the directory file
or the policy, made before the others came). It once ran in the context of the caller whose read ended before it,
and a read that looked people up answered from that caller's look-ups; the reads that look people up also do so in
a scope of their own (handlers/context.py ``fresh_lookups``).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class SharedReads:
    def __init__(self) -> None:
        self._running: set[Hashable] = set()  # keys with a read on its way
        # keys whose next read is waited for: the answer's future, and the read to send
        self._next: dict[Hashable, tuple[asyncio.Future[Any], Callable[[], Awaitable[Any]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # the reads sent for waiters (a reference keeps them running)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the reads on their way belong to
        self.sent = 0  # reads sent (tests, benchmarks)
        self.shared = 0  # callers answered by a read another caller's arrival started (tests, benchmarks)

    async def get(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """What ``read()`` answers, read after this call began; shared with the callers of the same ``key`` that
        came while the read before it was on its way."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another loop (a closed one's reads never end): nothing of its is waited for
            self._running, self._next, self._loop = set(), {}, loop
        if key not in self._running:
            self._running.add(key)
            self.sent += 1
            try:
                return await read()
            finally:
                self._done(key)
        waiting = self._next.get(key)
        if waiting is None:
            future: asyncio.Future[Any] = loop.create_future()
            future.add_done_callback(_retrieved)
            waiting = self._next[key] = (future, read)
        self.shared += 1
        return await asyncio.shield(waiting[0])  # type: ignore[no-any-return]

    def _done(self, key: Hashable) -> None:
        """The read of ``key`` on its way ended: the next one starts, for everyone who came meanwhile."""
        self._running.discard(key)
        waiting = self._next.pop(key, None)
        if waiting is None:
            return
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():  # its loop is gone: the waiters went with it
            return
        self._running.add(key)
        self.sent += 1
        task = loop.create_task(self._send(key, *waiting), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, key: Hashable, future: asyncio.Future[Any], read: Callable[[], Awaitable[Any]]) -> None:
        try:
            answer = await read()
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        except BaseException:  # cancelled, or dropped with a closed loop: each waiter is cancelled with it
            if not future.done() and not future.get_loop().is_closed():
                future.cancel()
            raise
        else:
            if not future.done():
                future.set_result(answer)
        finally:
            self._done(key)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """A failure every waiter gave up on (all hung up) is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
