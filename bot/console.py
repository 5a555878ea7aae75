"""The console channel: the grammar of SPEC §4.1 on stdin/stdout, as one directory user."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from handlers.ports import Notice
from handlers.service import AccessService


class ConsoleNotifier:
    """Shows what the bot tells other people, so a console session can follow the whole flow."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def notify(self, notices: list[Notice]) -> None:
        for n in notices:
            self.out.write(f"  [to {n.recipient}] {n.text}\n")
        self.out.flush()


async def run_console(service: AccessService, email: str, stdin: TextIO, stdout: TextIO,
                      before: Callable[[], Awaitable[str | None]] | None = None) -> int:
    """Read one command a line until end of input.

    ``before`` runs ahead of each command (a new policy file put in force); what it returns is shown.

    Exit code 0 when every line was understood and allowed; 1 for an unknown user, or when any
    line was refused or not understood (so that a script piping commands in can tell).
    """
    person = await service.identify(email)
    if person is None:
        stdout.write(f"{email} is not in the directory; ask an administrator to add you.\n")
        return 1
    interactive = stdin.isatty()
    if interactive:
        stdout.write(f"accessbot — signed in as {person.name} <{person.email}>. Type `help`, or `quit`.\n")
    loop = asyncio.get_running_loop()
    refused = False
    lines = 0
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        lines += 1
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.lower() in ("quit", "exit"):
            break
        if before is not None:
            try:
                news = await before()
            except Exception as exc:  # it must not end the session either
                news = f"Error: {type(exc).__name__}: {exc}"
            if news:
                stdout.write(news + "\n")
        current = await service.identify(email)  # the directory is read afresh for every command
        if current is None:
            stdout.write(f"{email} is no longer in the directory.\n")
            return 1
        try:
            reply = await service.handle_text(current, text, channel="console")
        except Exception as exc:  # one bad command must not end the session or lose what was recorded
            stdout.write(f"Error: {type(exc).__name__}: {exc}\n")
            stdout.flush()
            refused = True
            continue
        refused = refused or not reply.ok
        stdout.write(reply.text + "\n")
        stdout.flush()
    if not interactive and lines == 0:
        stdout.write(f"accessbot — you are {person.name} <{person.email}>, and no command came in. Type commands "
                     f"one a line in a terminal, or pipe them in: echo help | accessbot chat --as {person.email}\n")
    return 1 if refused else 0


def main_console(service: AccessService, email: str) -> int:  # pragma: no cover - thin wrapper
    return asyncio.run(run_console(service, email, sys.stdin, sys.stdout))
