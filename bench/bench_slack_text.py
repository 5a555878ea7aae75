"""Slack plain-text messages built from 60,000-character texts: what escaping grows, what cannot be cut between
whole characters (combining marks, joiners, variation selectors, skin tones, tags, flags), lone surrogates, against
the same length of plain words (the floor, in the same run). A Slack reply is built on the event loop, so none may
take more than a few milliseconds.

    python bench/bench_slack_text.py [--chars 60000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cards import slack as blocks  # noqa: E402


def texts(n: int) -> dict[str, str]:
    return {
        "plain words (floor)": ("lorem ipsum dolor " * (n // 18 + 1))[:n],
        "newlines": "\n" * n,
        "& (escaped fivefold)": "&" * n,
        "< (escaped fourfold)": "<" * n,
        "combining marks": "a" + "\u0301" * n,
        "zero-width joiners": "\u200d" * n,
        "variation selectors": "a" + "\ufe0f" * n,
        "skin tones": "\U0001F44D" + "\U0001F3FB" * n,
        "tags": "\U0001F3F4" + "\U000E0067" * n,
        "regional indicators": "x" + "\U0001F1EB" * n,
        "lone surrogates": "\ud83d" * n,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chars", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"text_message of {args.chars} characters, best of {args.repeat}, ms (ratio to plain words)")
    floor = None
    for name, text in texts(args.chars).items():
        ms = min(timeit.repeat(lambda t=text: blocks.text_message(t), number=1, repeat=args.repeat)) * 1000
        floor = floor or ms
        print(f"  {name:<24} {ms:8.2f} ({ms / floor:5.1f})")


if __name__ == "__main__":
    main()
    from bench.rss import peak_rss_line

    print(peak_rss_line())
