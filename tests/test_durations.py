"""Durations as people write them, and the short form the bot writes back."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from handlers.durations import DurationError, format_duration, parse_duration

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", 15 * M), ("4h", 4 * H), ("2d", 2 * D), ("1h30m", 90 * M), ("1h 30m", 90 * M),
    ("90 minutes", 90 * M), ("90 Minutes", 90 * M), ("2 hours", 2 * H), ("1 hour", H), ("1 day", D),
    ("2hrs", 2 * H), ("3 d", 3 * D), ("4 h", 4 * H), ("1w", 7 * D), ("2 weeks", 14 * D), ("1d4h", 28 * H),
    ("  4H  ", 4 * H), ("30s", timedelta(seconds=30)), ("1.5h", 90 * M), ("0.5d", 12 * H), ("0h30m", 30 * M),
    ("007m", 7 * M), ("3650d", 3650 * D), ("1 hour 30 minutes", 90 * M),
])
def test_parses(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("", "no duration given"),
    ("   ", "no duration given"),
    ("0m", "longer than zero"),
    ("0h0m", "longer than zero"),
    ("-1h", "must be positive"),
    ("99999d", "longer than 3650d"),
    ("3651d", "longer than 3650d"),
    ("522w", "longer than 3650d"),
    ("1", "needs a unit"),
    ("90", "needs a unit"),
    ("soon", "is not a duration"),
    ("4h later", "is not a duration"),
    ("4 later", "unknown unit 'later'"),
    ("1x", "unknown unit 'x'"),
    ("h4", "is not a duration"),
    ("1h30", "is not a duration"),
    ("1,5h", "is not a duration"),
    ("4 h 😀", "is not a duration"),
    ("٤h", "is not a duration"),  # only ASCII digits
    ("9" * 10_000, "longer than 3650d"),
    ("9" * 10_000 + "h", "longer than 3650d"),
    ("0" * 10_000 + "1h", "is not a duration"),
    ("1." + "5" * 10_000 + "h", "is not a duration"),
])
def test_refuses_with_a_clear_message(text, says):
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    message = str(info.value)
    assert says in message
    assert len(message) < 200  # huge input is not echoed back whole


def test_duration_error_is_a_value_error():
    assert issubclass(DurationError, ValueError)


def test_huge_input_is_cheap():
    started = time.perf_counter()
    for text in ("9" * 100_000, "1" * 100_000 + "x", "1h" * 50_000, "1 " * 50_000):
        with pytest.raises(DurationError):
            parse_duration(text)
    assert time.perf_counter() - started < 1.0


def test_numbers_from_yaml_are_text_first():
    with pytest.raises(DurationError, match="needs a unit"):
        parse_duration(8)  # type: ignore[arg-type]


@pytest.mark.parametrize(("td", "text"), [
    (45 * M, "45m"), (4 * H, "4h"), (90 * M, "1h30m"), (2 * D, "2d"), (52 * H, "2d4h"), (D + 5 * M, "1d5m"),
    (timedelta(seconds=30), "30s"), (timedelta(0), "0s"), (timedelta(seconds=90), "1m30s"), (14 * D, "14d"),
])
def test_formats(td, text):
    assert format_duration(td) == text


@pytest.mark.parametrize("text", ["15m", "4h", "1h30m", "2d", "2d4h", "30s", "1d23h59m"])
def test_round_trip(text):
    assert format_duration(parse_duration(text)) == text
