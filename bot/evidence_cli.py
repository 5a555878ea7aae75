"""``accessbot evidence export`` and ``accessbot report …``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cmd_evidence_export(args: argparse.Namespace) -> int:
    from bot.cli import existing_database
    from bot.errors import CliError, output_file
    from bot.evidence_commands import export_pack
    from bot.signing import SigningError
    from handlers.evidence import EvidenceMismatch, Period

    try:
        period = Period.parse(args.date_from, args.date_to)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        settings = existing_database(args)  # a database that is not there: no file or folder is made either
        summary = asyncio.run(export_pack(settings, period, output_file(args.out), actor="cli"))
    except SigningError as exc:
        print(f"accessbot: no evidence pack written: {exc}", file=sys.stderr)
        return 1
    except EvidenceMismatch as exc:
        print("accessbot: no evidence pack written: the database contradicts the audit chain:", file=sys.stderr)
        for problem in exc.problems[:20]:
            print(f"  {problem}", file=sys.stderr)
        if len(exc.problems) > 20:
            print(f"  … and {len(exc.problems) - 20} more", file=sys.stderr)
        return 1
    audit = summary.audit
    print(f"wrote {summary.path}: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items())
          + f"; audit seq {audit['first_seq']}..{audit['last_seq']}, chain verified: {audit['verified']}")
    return 0 if audit["verified"] else 1


def cmd_evidence_verify(args: argparse.Namespace) -> int:
    from bot.pack_check import check_pack

    ok, lines = check_pack(Path(args.pack), Path(args.cert) if args.cert else None,
                           [Path(p) for p in args.earlier or []])
    print("\n".join(lines))
    return 0 if ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from bot.cli import existing_database
    from bot.evidence_commands import report_text

    text, ok = asyncio.run(report_text(existing_database(args), args.what, args.profile, args.format))
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
    ve = esub.add_parser("verify", help="verify a pack: files, rows, audit segment, and its signature")
    ve.add_argument("pack", metavar="PACK.zip", help="the pack, or the folder it was unpacked into")
    ve.add_argument("--cert", metavar="FILE.pem", help="the certificate the pack must be signed with (your own "
                    "copy, not the one inside the pack): required signature")
    ve.add_argument("--earlier", action="append", metavar="PACK.zip", help="a pack of an earlier period "
                    "(repeat, back to the oldest needed): ties the events before the period to the chain")
    ve.set_defaults(func=cmd_evidence_verify)

    r = sub.add_parser("report", help="compliance reports: drift, terminations, access, trends")
    common(r)
    r.add_argument("what", choices=["drift", "terminations", "access", "trends"])
    r.add_argument("--profile", help="only this profile (report access; default: every profile)")
    r.add_argument("--format", choices=["text", "csv", "json"], default="text")
    r.set_defaults(func=cmd_report)



