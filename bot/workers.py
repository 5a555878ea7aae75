"""``accessbot serve --workers N``: N full replicas sharing one port, started and stopped together.

Each worker is an ordinary ``accessbot serve`` process that binds the port with ``SO_REUSEPORT``;
the kernel spreads connections across them. Everything a worker does that must happen once (a
decision, a provisioning, a notice, a sweep) is already claimed under a database lock, which is
why several workers need PostgreSQL. The parent migrates the database once, starts the workers,
waits until each is listening, and on SIGTERM or SIGINT stops them all within ``GRACE`` seconds.
A worker that dies is never restarted silently: the parent says so, stops the others and exits 1,
so the service manager sees the failure.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from bot.settings import Settings
from handlers.text import is_digits

# The Bot Framework waits 15 s for an answer: the whole stop, workers included, fits inside it.
GRACE = 12.0
DRAIN = 8.0  # seconds a worker gives requests in flight before closing them
READY_TIMEOUT = 300.0
WORKER_ENV = "ACCESSBOT_WORKER"  # the worker's index, set by the parent
READY_FD_ENV = "ACCESSBOT_WORKER_READY_FD"


def is_sqlite(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0].lower() == "sqlite"


def worker_count(requested: int | None, database_url: str) -> tuple[int, str | None]:
    """How many workers to run, and the one-line reason when that is not what was asked."""
    if requested is not None and requested < 1:
        from bot.errors import CliError

        raise CliError(f"--workers must be 1 or more, not {requested}")
    if is_sqlite(database_url):
        if requested is not None and requested > 1:
            return 1, (f"--workers {requested} ignored: SQLite takes one writing process at a time; "
                       "running 1 worker (use PostgreSQL for several)")
        return 1, None
    return (requested if requested is not None else max(1, os.cpu_count() or 1)), None


def worker_index() -> int | None:
    raw = os.environ.get(WORKER_ENV)
    return int(raw) if raw and is_digits(raw) else None


def announce_ready(line: str) -> None:
    """Tell the parent (if any) this worker listens; the line is what the parent prints once."""
    raw = os.environ.get(READY_FD_ENV)
    if not raw:
        return
    fd = int(raw)
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
    finally:
        os.close(fd)
        os.environ.pop(READY_FD_ENV, None)


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes]
    ready_fd: int
    line: str = ""


def _free_port(host: str) -> socket.socket:
    """A port chosen by the kernel, held (bound, not listening) until the workers have it too."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def _stop(workers: list[Worker], grace: float = GRACE) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for w in workers:
        try:
            w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"accessbot: worker {w.index} (pid {w.proc.pid}) did not stop within {grace:.0f}s; killed",
                  file=sys.stderr, flush=True)
            w.proc.kill()
            w.proc.wait()


def connection_budget(settings: Settings, count: int) -> str | None:
    """What to say when ``count`` workers, each with its own pool of ``ACCESSBOT_DB_POOL_SIZE`` connections, could
    ask PostgreSQL for more than it takes (a burst on every worker at once would be refused connections)."""
    from store.db import connection_room

    room = connection_room(settings.database_url)
    wanted = count * settings.db_pool_size
    if room is None or wanted <= room:
        return None
    fits = room // count
    lower = f"Lower ACCESSBOT_DB_POOL_SIZE to {fits} or fewer (leaving room for the CLI and the sweeps)" if fits >= 2 \
        else f"Run at most {max(1, room // 2)} workers (a pool needs 2 connections at least)"
    return (f"{count} workers x {settings.db_pool_size} connections (ACCESSBOT_DB_POOL_SIZE) = {wanted}, more than "
            f"the {room} this PostgreSQL server takes (max_connections less the reserved ones): under a burst on "
            f"every worker some connections would be refused. {lower}, or raise max_connections")


MIGRATION_NOTICE = 10  # seconds between the notices of a migration that has not finished
STILL_MIGRATING = ("the database migration is still running: another process may be migrating this database "
                   "(accessbot db upgrade, another serve) or hold its migration lock")
STOPPED_MIGRATING = ("accessbot: stopped before the database migration finished; the migration was stopped (its "
                     "transaction rolls back)")


def migrated(settings: Settings) -> bool:
    """The database migrated by this process (the supervisor serves nothing: what the migration loads stays out of
    the workers), on a thread, so that a migration waiting for the migration lock (another process migrating the
    same database) is said every ``MIGRATION_NOTICE`` seconds. False when a SIGTERM or SIGINT came meanwhile: the
    process exits, and the migration's connection with it (PostgreSQL rolls its transaction back)."""
    from store.db import upgrade

    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(settings.database_url)
        except BaseException as exc:  # raised again on the main thread
            failed.append(exc)
        finally:
            done.set()

    stopping: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: stopping.append(signum))
                for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        threading.Thread(target=run, name="migration", daemon=True).start()
        started, said = time.monotonic(), 0
        while not done.wait(0.2):
            if stopping:
                print(STOPPED_MIGRATING, file=sys.stderr, flush=True)
                return False
            waited = int(time.monotonic() - started) // MIGRATION_NOTICE * MIGRATION_NOTICE
            if waited > said:
                said = waited
                print(f"accessbot: {STILL_MIGRATING} (after {waited} s)", file=sys.stderr, flush=True)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failed:
        raise failed[0]
    return True


def supervise(settings: Settings, count: int) -> int:
    """Run ``count`` workers until SIGTERM/SIGINT (exit 0) or until one of them dies (exit 1)."""
    if not migrated(settings):  # once, here: the workers do not race each other's migrations
        return 0  # SIGTERM or SIGINT while it waited
    warning = connection_budget(settings, count)
    if warning:
        print(f"accessbot: {warning}", file=sys.stderr, flush=True)
    holder = _free_port(settings.host) if settings.port == 0 else None
    port = holder.getsockname()[1] if holder is not None else settings.port
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    workers: list[Worker] = []
    try:
        for i in range(count):
            read_fd, write_fd = os.pipe()
            # the database URL (its password) through the environment: any local user reads a process's arguments
            env = {**os.environ, WORKER_ENV: str(i), READY_FD_ENV: str(write_fd),
                   "ACCESSBOT_DATABASE_URL": settings.database_url}
            cmd = [sys.executable, "-m", "bot.cli", "serve", "--workers", "1", "--policy", settings.policy,
                   "--directory", settings.directory, "--host", settings.host, "--port", str(port)]
            proc = subprocess.Popen(cmd, env=env, pass_fds=(write_fd,), start_new_session=True)
            os.close(write_fd)
            workers.append(Worker(i, proc, read_fd))
        if not _await_ready(workers, stopping):
            return 0 if stopping else 1
        if holder is not None:
            holder.close()
            holder = None
        first = workers[0].line.split(" (", 1)
        rest = f" ({first[1]}" if len(first) > 1 else ""
        pids = ", ".join(str(w.proc.pid) for w in workers)
        print(f"{first[0]} with {count} workers (pids {pids}){rest}", flush=True)
        while not stopping:
            dead = next((w for w in workers if w.proc.poll() is not None), None)
            if dead is not None:
                print(f"accessbot: worker {dead.index} (pid {dead.proc.pid}) exited with code "
                      f"{dead.proc.returncode}; stopping the others (no worker is restarted)",
                      file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(workers)
        for w in workers:
            if w.ready_fd >= 0:
                os.close(w.ready_fd)
        if holder is not None:
            holder.close()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _await_ready(workers: list[Worker], stopping: list[int]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    waiting = {w.ready_fd: w for w in workers}
    buffers: dict[int, bytes] = {}
    while waiting:
        if stopping:
            return False
        for w in waiting.values():
            if w.proc.poll() is not None:
                print(f"accessbot: worker {w.index} (pid {w.proc.pid}) exited with code {w.proc.returncode} "
                      "before it was ready", file=sys.stderr, flush=True)
                return False
        if time.monotonic() > deadline:
            print(f"accessbot: workers not ready after {READY_TIMEOUT:.0f}s", file=sys.stderr, flush=True)
            return False
        try:
            readable, _, _ = select.select(list(waiting), [], [], 0.2)
        except InterruptedError:
            continue
        for fd in readable:
            chunk = os.read(fd, 4096)
            buffers[fd] = buffers.get(fd, b"") + chunk
            if b"\n" in buffers[fd] or not chunk:
                w = waiting.pop(fd)
                w.line = buffers[fd].decode(errors="replace").strip()
                os.close(fd)
                w.ready_fd = -1
                if not w.line:
                    print(f"accessbot: worker {w.index} (pid {w.proc.pid}) stopped before it was ready",
                          file=sys.stderr, flush=True)
                    return False
    return True
