"""The ``accessbot serve`` command line: its options here, the server (aiohttp, the channels) imported only
when it runs, so that every other command starts without them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.cli import settings_from
    from bot.server import serve
    from bot.workers import supervise, worker_count, worker_index

    settings = settings_from(args)
    if args.port is not None:
        settings = settings.with_overrides(port=args.port)
    if args.host is not None:
        settings = settings.with_overrides(host=args.host)
    index = worker_index()
    count, reason = worker_count(args.workers, settings.database_url) if index is None else (1, None)
    if reason:
        print(f"accessbot: {reason}", file=sys.stderr, flush=True)
    if count > 1:
        return supervise(settings, count)
    try:
        asyncio.run(serve(settings, worker=index))
    except KeyboardInterrupt:
        pass
    return 0


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("serve", help="HTTP server for Teams and Slack, with the scheduled sweeps")
    common(p)
    p.add_argument("--port", type=int, help="HTTP port (default: ACCESSBOT_PORT or 3978)")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes sharing the port (default: the number of cores on PostgreSQL; SQLite runs 1)")
    # no channel for the whole process: each channel and the scheduler name their own (handlers.origin)
    p.set_defaults(func=cmd_serve, origin=None)
