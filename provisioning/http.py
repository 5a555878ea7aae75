"""The one retry loop every HTTP provider goes through.

A provider hands :func:`with_retries` a coroutine factory that performs one attempt and returns a
:class:`Reply`. The loop retries what the remote side refuses for now (429, 5xx, time-outs,
dropped connections) with exponential backoff and full jitter, honouring the delay the server
asked for, and raises a transient :class:`ProviderError` once the attempts are spent. Every
other reply goes back to the provider, which judges it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from handlers.ports import ProviderError

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NETWORK_ERRORS = (asyncio.TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


@dataclass
class Reply:
    """One HTTP answer, read in full. ``retry_after`` is the delay the server asked for, if any."""

    status: int
    headers: Mapping[str, str]
    data: Any = None
    text: str = ""
    correlation_id: str | None = None
    retry_after: float | None = None
    links: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    max_retry_wait: float = 30.0
    backoff_base: float = 0.5
    request_timeout: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_retry_wait)
        ceiling = min(self.max_retry_wait, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a (possibly fractional) number or an HTTP-date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    return max(0.0, seconds)


def ssl_context() -> ssl.SSLContext:
    """Trust as the standard ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` variables say."""
    cafile = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE") or None
    return ssl.create_default_context(cafile=cafile)


async def read_reply(resp: aiohttp.ClientResponse) -> tuple[Any, str]:
    """The body as parsed JSON (None when empty or not JSON) and as text."""
    text = await resp.text()
    if not text:
        return None, ""
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


async def with_retries(
    attempt: Callable[[], Awaitable[Reply]],
    policy: RetryPolicy,
    *,
    what: str,
    correlation_id: str | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Reply:
    """Run ``attempt`` until it returns a non-transient reply or the attempts are spent."""
    last_status: int | None = None
    last_correlation = correlation_id
    last_retry_after: float | None = None
    last_reason = ""
    for n in range(1, max(1, policy.max_attempts) + 1):
        try:
            reply = await attempt()
        except NETWORK_ERRORS as exc:
            last_status, last_retry_after = None, None
            last_reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"connection failed ({exc})"
        except ProviderError as exc:  # a step before the call (a token, say) refused for now
            if not exc.transient:
                raise
            last_status, last_retry_after, last_reason = exc.status, exc.retry_after, str(exc)
            last_correlation = exc.correlation_id or last_correlation
        else:
            if reply.status not in TRANSIENT_STATUSES:
                return reply
            last_status, last_retry_after = reply.status, reply.retry_after
            last_correlation = reply.correlation_id or correlation_id
            last_reason = f"HTTP {reply.status}"
        if n < policy.max_attempts:
            await sleep(policy.delay(n, last_retry_after))
    raise ProviderError(
        f"{what}: {last_reason} after {policy.max_attempts} attempts",
        transient=True, retry_after=last_retry_after, status=last_status, correlation_id=last_correlation,
    )


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` is on the scheme, host and port of ``base``: a page link (Graph's ``@odata.nextLink``,
    Okta's ``Link: rel="next"``) is followed with the provider's token only there, never to another host a
    reply names."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)
