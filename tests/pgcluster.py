"""A throwaway PostgreSQL cluster for the test session.

The cluster lives in a temporary directory, listens on a free 127.0.0.1 port (and on a unix
socket inside that directory), trusts local connections, and trades durability for speed. As
root, the server runs as the unprivileged system user ``accessbot-test`` because PostgreSQL
refuses to run as root.

Standalone use (prints a URL, runs until Ctrl-C)::

    python -m tests.pgcluster
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SERVICE_USER = "accessbot-test"
SUPERUSER = "postgres"

SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
    "logging_collector": "off",
    "timezone": "'UTC'",
}


class PgUnavailable(RuntimeError):
    """PostgreSQL server binaries cannot be found on this machine."""


class PgStartError(RuntimeError):
    """The binaries exist but the cluster could not be initialised or started."""


def _has_server_binaries(bindir: str | Path) -> bool:
    return all(os.access(Path(bindir, name), os.X_OK) for name in ("initdb", "pg_ctl"))


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


def find_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``pg_ctl``: PATH, then ``pg_config --bindir``, then Debian's layout."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        real = Path(os.path.realpath(initdb)).parent
        return real if _has_server_binaries(real) else Path(initdb).parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidate = out.stdout.strip()
            if candidate and _has_server_binaries(candidate):
                return Path(candidate)
        except (OSError, subprocess.SubprocessError):
            pass
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_server_binaries(candidate):
            return Path(candidate)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _ensure_service_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "useradd"
    cmd = [useradd, "--system", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", SERVICE_USER]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return pwd.getpwnam(SERVICE_USER)  # a concurrent session may have created it meanwhile
    except KeyError as exc:
        raise PgStartError(f"cannot create user {SERVICE_USER}: {proc.stderr.strip()}") from exc


def _world_traversable(path: Path) -> bool:
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def _make_basedir(as_other_user: bool) -> Path:
    candidates = [tempfile.gettempdir()]
    if as_other_user:
        candidates += ["/tmp", "/var/tmp", "/dev/shm"]
    for parent in candidates:
        parent_path = Path(parent)
        if not parent_path.is_dir() or (as_other_user and not _world_traversable(parent_path)):
            continue
        # Short names: the unix socket path must stay under ~100 bytes.
        return Path(tempfile.mkdtemp(prefix="abpg-", dir=parent_path))
    raise PgStartError("no temporary directory the server user can reach")


class PgCluster:
    """One throwaway cluster: ``start()``, ``url``, ``stop()``; also a context manager."""

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = Path(found)
        self.basedir: Path | None = None
        self.port: int | None = None
        self._user: pwd.struct_passwd | None = None
        self._started = False

    # -- paths and URLs ---------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.basedir is not None
        return self.basedir / "data"

    @property
    def logfile(self) -> Path:
        assert self.basedir is not None
        return self.basedir / "server.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("cluster not started")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    # -- running commands -------------------------------------------------------------------

    def _wrap(self, argv: Sequence[str]) -> tuple[list[str], dict[str, object]]:
        """Command line (and extra Popen arguments) that run ``argv`` as the server user."""
        argv = [str(a) for a in argv]
        if self._user is None:
            return argv, {}
        name = self._user.pw_name
        if shutil.which("runuser"):
            return ["runuser", "-u", name, "--", *argv], {}
        if shutil.which("setpriv"):
            return [
                "setpriv", f"--reuid={self._user.pw_uid}", f"--regid={self._user.pw_gid}", "--clear-groups", *argv,
            ], {}
        if shutil.which("su"):
            return ["su", "-s", "/bin/sh", name, "-c", subprocess.list2cmdline(argv)], {}
        return argv, {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        if self._user is not None:
            env["HOME"] = str(self.basedir)
            env["USER"] = env["LOGNAME"] = self._user.pw_name
        return env

    def _run(self, argv: Sequence[str], timeout: float = 120) -> None:
        assert self.basedir is not None
        cmd, extra = self._wrap(argv)
        out_path = self.basedir / "cmd.out"
        # Output goes to a file: a daemonised postmaster must not hold a pipe of ours open.
        with open(out_path, "wb") as out:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.basedir, env=self._env(), timeout=timeout, check=False, **extra,  # type: ignore[arg-type]
            )
        if proc.returncode != 0:
            output = out_path.read_text(errors="replace").strip()
            raise PgStartError(f"{Path(argv[0]).name} failed ({proc.returncode}): {output}\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AssertionError):
            return ""

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> str:
        """Initialise and start the cluster; return its superuser URL."""
        if self._started:
            return self.url
        if _is_root():
            self._user = _ensure_service_user()
        self.basedir = _make_basedir(self._user is not None)
        atexit.register(self.stop)
        try:
            if self._user is not None:
                os.chown(self.basedir, self._user.pw_uid, self._user.pw_gid)
            os.chmod(self.basedir, 0o700)
            self._run([
                self.bindir / "initdb", "-D", self.datadir, "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions",
            ])
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _start_server(self) -> None:
        base_conf = (self.datadir / "postgresql.conf").read_text()
        last_error: PgStartError | None = None
        for _attempt in range(3):  # the free port may be taken between probing and binding
            self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.basedir}'"}
            conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
            (self.datadir / "postgresql.conf").write_text(base_conf + "\n# throwaway test cluster\n" + conf)
            try:
                self._run([self.bindir / "pg_ctl", "start", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60"])
            except PgStartError as exc:
                last_error = exc
                continue
            self._started = True
            return
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """Stop the server (immediate mode) and remove the directory; safe to call twice."""
        basedir = self.basedir
        if basedir is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                with contextlib.suppress(PgStartError, OSError, subprocess.SubprocessError):
                    self._run([self.bindir / "pg_ctl", "stop", "-D", self.datadir, "-m", "immediate", "-w"], timeout=60)
        finally:
            self._started = False
            self.basedir = None
            shutil.rmtree(basedir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> int:
    """Start a cluster, print its URL, and keep it running until interrupted."""
    try:
        cluster = PgCluster()
        url = cluster.start()
    except (PgUnavailable, PgStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        print(url, flush=True)
        print("PostgreSQL running; Ctrl-C to stop and remove it.", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
