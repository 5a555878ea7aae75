"""``accessbot evidence export`` and ``accessbot report …``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from bot.cli import settings_from
    from bot.errors import CliError
    from bot.evidence_commands import export_pack
    from handlers.evidence import Period

    try:
        period = Period.parse(args.date_from, args.date_to)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    summary = asyncio.run(export_pack(settings_from(args), period, Path(args.out), actor="cli"))
    audit = summary.audit
    print(f"wrote {summary.path}: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items())
          + f"; audit seq {audit['first_seq']}..{audit['last_seq']}, chain verified: {audit['verified']}")
    return 0 if audit["verified"] else 1


def cmd_report(args: argparse.Namespace) -> int:
    from bot.cli import settings_from
    from bot.errors import CliError
    from bot.evidence_commands import report_text

    if args.what == "access" and not args.profile:
        raise CliError("report access needs --profile PROFILE")
    text, ok = asyncio.run(report_text(settings_from(args), args.what, args.profile, args.format))
    sys.stdout.write(text)
    return 0 if ok else 1


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("evidence", help="evidence packs for auditors")
    esub = p.add_subparsers(dest="evidence_command", required=True)
    ex = esub.add_parser("export", help="write the evidence pack of a period")
    common(ex)
    ex.add_argument("--from", dest="date_from", required=True, metavar="DATE", help="YYYY-MM-DD, UTC, inclusive")
    ex.add_argument("--to", dest="date_to", required=True, metavar="DATE", help="YYYY-MM-DD, UTC, inclusive")
    ex.add_argument("--out", required=True, metavar="FILE.zip")
    ex.set_defaults(func=cmd_evidence_export)

    r = sub.add_parser("report", help="compliance reports: drift, terminations, access, trends")
    common(r)
    r.add_argument("what", choices=["drift", "terminations", "access", "trends"])
    r.add_argument("--profile", help="the profile (report access)")
    r.add_argument("--format", choices=["text", "csv", "json"], default="text")
    r.set_defaults(func=cmd_report)



