"""The policy file while the bot runs: a new version takes effect without a restart.

The file is ``stat``ed on every check; its bytes are read and hashed only when the ``stat`` changed,
and parsed only when the hash did. A new version goes through everything a start-up goes through
(the validator, the group references resolved at the provider) and is recorded (``policy.loaded``)
before any command can be judged by it; one that fails stays out, the version in force keeps
working, and the reason is logged and shown on ``/healthz`` (``policy_rejected``). Requests already
filed keep the version they were filed under (:meth:`handlers.context.Deps.policy_for`); a command
in progress finishes with the version it started with (:class:`handlers.context._PinnedPerScope`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from handlers.group_resolution import GroupResolutionError, resolve_groups
from handlers.policy import Policy, PolicyError, parse_policy
from handlers.service import record_policy

if TYPE_CHECKING:
    from bot.bootstrap import App

log = structlog.get_logger("accessbot")

SETTLE_SECONDS = 1.0  # a file saved this recently may still be being written: it is read once it held still
STATE_KEY = "policy_rejected"  # app.state: why the file's current bytes are not in force (None when they are)


@dataclass(frozen=True)
class PolicyChange:
    old: Policy
    new: Policy


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _writable_by_anyone(path: Path, st: os.stat_result) -> str | None:
    """Why any local user could put a policy in force (the file, or a folder that lets anyone replace it,
    is writable by all), or None."""
    if st.st_mode & stat.S_IWOTH:
        return f"{path} is writable by every local user: not used (chmod o-w)"
    try:
        folder = path.resolve().parent.stat()
    except OSError:
        return None
    if folder.st_mode & stat.S_IWOTH and not folder.st_mode & stat.S_ISVTX:
        return f"the folder of {path} is writable by every local user, who could replace the file: not used"
    return None


class PolicyWatch:
    """Install the policy file's new bytes into a running app (see the module's docstring)."""

    def __init__(self, app: App, path: str | os.PathLike[str], *, quiet: bool = False,
                 settle: float = SETTLE_SECONDS, wait: bool = False) -> None:
        self.app = app
        self.quiet = quiet  # the console tells its person (:meth:`news`) instead of logging
        self.path = Path(path)
        self.settle = settle
        self.wait = wait  # the console waits for a file saved a moment ago to settle; serve checks again later
        # None: the first check reads the file, so a version saved while the app was starting is not missed
        self._seen: tuple[int, ...] | None = None
        self._sha = app.deps.policy.sha256  # of the bytes last read (installed or not)
        self._lock = asyncio.Lock()
        self.reads = 0  # how often the bytes were read (tests: only when the stat changed)

    async def check(self) -> PolicyChange | None:
        """Install the file's bytes when they changed and are valid; the change, or None."""
        async with self._lock:
            try:
                return await self._check()
            except Exception as exc:  # whatever it was, the version in force stays and the next check tries again
                self._seen, self._sha = None, self.app.deps.policy.sha256
                return self._reject("", [f"the policy file could not be put in force ({type(exc).__name__}: {exc})"])

    async def _check(self) -> PolicyChange | None:
        for _ in range(3):
            try:
                st = self.path.stat()
            except OSError as exc:
                if self._seen != ():
                    self._seen, self._sha = (), ""  # said once; when it is back, it is read again
                    return self._reject("", [f"{self.path} cannot be read ({exc.strerror})"])
                return None
            seen = _signature(st)
            if seen == self._seen:
                return None
            if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read for ever
                self._seen, self._sha = seen, ""
                return self._reject("", [f"{self.path} is not a regular file"])
            if (loose := _writable_by_anyone(self.path, st)) is not None:  # sshd's StrictModes, for a file
                self._seen, self._sha = seen, ""  # that takes effect by itself within seconds
                return self._reject("", [loose])
            age = time.time() - st.st_mtime
            if age >= self.settle:
                break
            if not self.wait:
                return None  # saved a moment ago, maybe still being written: the next check
            await asyncio.sleep(self.settle - max(age, 0.0))
        else:
            return None
        try:
            raw = await asyncio.to_thread(self.path.read_bytes)
            after = _signature(self.path.stat())
        except OSError:
            return None  # replaced while being read: the next check reads it again
        self.reads += 1
        if after != seen:
            return None  # written to while being read: read again once it holds still
        self._seen = seen
        sha = hashlib.sha256(raw).hexdigest()
        if sha == self._sha:
            return None  # the same bytes (a touch, a copy): nothing to do
        self._sha = sha
        return await self._install(raw, sha)

    async def news(self) -> str | None:
        """:meth:`check`, told in a sentence for a person at the console (None when nothing changed)."""
        before = self.app.state.get(STATE_KEY)
        change = await self.check()
        if change is not None:
            return f"(policy {change.new.version} is now in force; it was {change.old.version})"
        rejected = self.app.state.get(STATE_KEY)
        if rejected and rejected != before:
            return (f"(the policy file changed but cannot be used; {rejected['in_force']} stays in force:\n  "
                    + "\n  ".join(rejected["problems"]) + ")")
        return None

    def _again(self) -> None:
        """The next check reads the file again (a failure that may pass: the IdP, the database)."""
        self._seen, self._sha = None, self.app.deps.policy.sha256

    async def _install(self, raw: bytes, sha: str) -> PolicyChange | None:
        app, deps = self.app, self.app.deps
        old = deps.policy
        if sha == old.sha256:
            app.state[STATE_KEY] = None  # back to the version in force
            return None
        try:
            new = parse_policy(raw, str(self.path))
        except PolicyError as exc:
            return self._reject(sha, [str(i) for i in exc.issues])
        trial = dataclasses.replace(deps, policy=new)
        try:
            resolution = await resolve_groups(trial, persist=True)
        except GroupResolutionError as exc:
            if exc.unreachable:  # the provider did not answer: asked again at the next check
                self._again()
            return self._reject(sha, exc.problems)
        except Exception as exc:
            self._again()
            return self._reject(sha, [f"the group references could not be resolved ({exc})"])
        try:
            await record_policy(deps, new)
        except Exception as exc:  # not recorded, so not in force: the next check tries again
            self._again()
            return self._reject(sha, [f"the new version could not be recorded ({type(exc).__name__}: {exc})"])
        deps.groups = trial.groups
        deps.policy = new
        app.state[STATE_KEY] = None
        app.state["policy_warnings"] = resolution.warnings
        for problem in resolution.stale:
            if not self.quiet:
                log.warning("group of an open grant not resolved", problem=problem)
        for (provider, ref), why in sorted(resolution.pending.items()):
            if not self.quiet:  # resolved at its next use; checks needing it fail closed until then
                log.warning("policy group name not resolved yet", group=ref, provider=provider, reason=why)
        if not self.quiet:
            log.info("policy loaded", version=new.version, sha256=new.sha256, previous=old.version)
        return PolicyChange(old, new)

    def _reject(self, sha: str, problems: list[str]) -> None:
        self.app.state[STATE_KEY] = {"sha256": sha, "problems": problems,
                                     "in_force": self.app.deps.policy.version}
        if not self.quiet:
            log.error("policy file changed but cannot be used; the version in force stays", path=str(self.path),
                      sha256=sha, in_force=self.app.deps.policy.version, problems=problems)
        return None
