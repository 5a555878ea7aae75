"""How long a Slack Web API call may take at worst, its retries included (the outbox's lease, handlers/outbox.py).

slack_sdk waits out a 429 for as long as its ``Retry-After`` says; :class:`RateLimitRetry` waits at most
``MAX_RETRY_AFTER`` and gives up on a longer one (the outbox tries the notice again later), so that a call's
longest time follows from the client's settings: its ``timeout`` for each try and its retry handlers' counts.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

MAX_RETRY_AFTER = 30  # seconds; slack_sdk adds up to one more of jitter
OTHER_WAIT = 2.0  # the longest backoff between two tries after a 5xx or a dropped connection (slack_sdk: 0.5 * 2**n)


def retry_after(response: HttpResponse | None) -> float | None:
    if response is None:
        return None
    for key, value in response.headers.items():
        if key.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


class RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, for a Retry-After no longer than ``MAX_RETRY_AFTER``."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        wait = retry_after(response)
        return (wait is None or wait <= MAX_RETRY_AFTER) and await super()._can_retry_async(
            state=state, request=request, response=response, error=error)


def worst_call(client: Any) -> float:
    """The longest one Web API call of ``client`` may take, in seconds: every try running into the client's
    timeout, and the longest wait before each retry (the retry state is shared by the handlers: at most the
    largest ``max_retry_count`` retries in all)."""
    handlers = list(getattr(client, "retry_handlers", None) or [])
    retries = max((int(getattr(h, "max_retry_count", 0)) for h in handlers), default=0)
    wait = MAX_RETRY_AFTER + 1 if any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in handlers) else 0
    return (retries + 1) * float(client.timeout) + retries * max(wait, OTHER_WAIT)
