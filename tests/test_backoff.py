"""When a provider operation is tried again."""

from __future__ import annotations

from datetime import timedelta

from handlers.grants import MAX_BACKOFF, backoff


def test_the_providers_retry_after_is_honoured_with_a_little_spread() -> None:
    delays = [backoff(attempts, 2.0) for attempts in (1, 6, 12) for _ in range(200)]
    assert all(timedelta(seconds=2.0) <= d <= timedelta(seconds=2.2) for d in delays)
    assert len(set(delays)) > 100  # operations refused together do not come back together
    assert backoff(3, 10_000.0) == timedelta(seconds=MAX_BACKOFF)


def test_without_a_hint_the_backoff_grows_with_the_attempts() -> None:
    early = max(backoff(1, None) for _ in range(200))
    late = max(backoff(8, None) for _ in range(200))
    assert early <= timedelta(seconds=4) < late <= timedelta(seconds=MAX_BACKOFF)
