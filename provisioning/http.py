"""The one retry loop every HTTP provider goes through.

A provider hands :func:`with_retries` a coroutine factory that performs one attempt and returns a
:class:`Reply`. The loop retries what the remote side refuses for now (429, 5xx, time-outs,
dropped connections) with exponential backoff and full jitter, honouring the delay the server
asked for, and raises a transient :class:`ProviderError` once the attempts are spent. Every
other reply goes back to the provider, which judges it.

For a call that changes something, the loop also says whether any of its tries may have been
carried out without a success coming back (``may_have_landed`` on the reply or the error): a
time-out or a connection dropped once the request could have gone out, or a 5xx that does not
say the request was turned away (500, 502, 504). A 429, a 503 (Graph: unavailable for maintenance
or overloaded; Okta: read-only mode), a 408, any other 4xx, and a connection never made refused
the try before anything was done.
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
# 5xx answers that say the request was turned away before it was carried out
NOT_CARRIED_OUT_5XX = frozenset({501, 503, 505})
# failures that happen before the request can have left: the connection was never made
NOT_SENT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def status_may_have_landed(status: int) -> bool:
    """Whether a change answered ``status`` may have been carried out although it did not report success."""
    return status >= 500 and status not in NOT_CARRIED_OUT_5XX


def error_may_have_landed(exc: BaseException) -> bool:
    """Whether a change whose try ended in this network error may have been carried out: anything but a
    connection never made (the request may have reached the server before the time-out or the drop)."""
    return not isinstance(exc, NOT_SENT_ERRORS)


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
    # a try of this call (this one, or an earlier one retried) may have carried out its change unanswered
    may_have_landed: bool = False

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
    changes: bool = True,
) -> Reply:
    """Run ``attempt`` until it returns a non-transient reply or the attempts are spent.

    ``changes``: the call changes something at the provider (not a read); only then can a try have landed,
    and the reply or error says whether one may have (``may_have_landed``)."""
    landed = False
    last_status: int | None = None
    last_correlation = correlation_id
    last_retry_after: float | None = None
    last_reason = ""
    for n in range(1, max(1, policy.max_attempts) + 1):
        try:
            reply = await attempt()
        except NETWORK_ERRORS as exc:
            landed = landed or (changes and error_may_have_landed(exc))
            last_status, last_retry_after = None, None
            last_reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"connection failed ({exc})"
        except ProviderError as exc:  # a step before the call (a token, say) refused for now
            landed = landed or (changes and exc.may_have_landed)
            if not exc.transient:
                if landed and not exc.may_have_landed:
                    raise exc.landed() from exc
                raise
            last_status, last_retry_after, last_reason = exc.status, exc.retry_after, str(exc)
            last_correlation = exc.correlation_id or last_correlation
        else:
            landed = landed or (changes and (reply.may_have_landed or status_may_have_landed(reply.status)))
            if reply.status not in TRANSIENT_STATUSES:
                reply.may_have_landed = landed
                return reply
            last_status, last_retry_after = reply.status, reply.retry_after
            last_correlation = reply.correlation_id or correlation_id
            last_reason = f"HTTP {reply.status}"
        if n < policy.max_attempts:
            await sleep(policy.delay(n, last_retry_after))
    raise ProviderError(
        f"{what}: {last_reason} after {policy.max_attempts} attempts",
        transient=True, retry_after=last_retry_after, status=last_status, correlation_id=last_correlation,
        may_have_landed=landed,
    )


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` is on the scheme, host and port of ``base``: a page link (Graph's ``@odata.nextLink``,
    Okta's ``Link: rel="next"``) is followed with the provider's token only there, never to another host a
    reply names."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)
