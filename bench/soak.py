"""A chaos soak of the real command line: concurrent workers, random kills, a flickering directory.

Workers run ``accessbot`` processes for a bounded time — requests, right and wrong approvers,
double approvals from two processes at once, extend, release, cancel, revoke, ``sweep --as-of
now±offset`` — against one database and, for two profiles, the Graph stand-in on 127.0.0.1 (which
holds or refuses some membership writes). Meanwhile a killer SIGKILLs a random running
``accessbot`` process every 1 to 4 s, and the directory file is now and then torn, emptied or missing
a user for a moment. Then everything stops, the directory is restored, the leases of killed
processes run out, and plain sweeps run until no provider call is left. Checked from the outside:

* ``accessbot audit verify`` passes;
* every request's exported events form a legal life, with no self-approval, nobody counted twice
  and no step moving on with fewer approvals than it asked (:mod:`soak_checks`);
* no drift is reported (only the bot changed memberships);
* the members of every managed group are exactly the holders of the active grants.

    python bench/soak.py [--seconds 300] [--workers 6] [--database-url URL | --postgres] [--seed N]

Prints the figures (commands, kills, directory flickers, violations) and exits 1 on a violation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from aiohttp import web  # noqa: E402

from bench import soak_checks  # noqa: E402
from tests.standins import Fault  # noqa: E402
from tests.standins.graph import GraphStandIn  # noqa: E402
from tests.standins.tls import make_tls  # noqa: E402

LEASE_S = 4
STARTUP_S = 1.0  # a process younger than this is still importing: killing it tests nothing
EXTRA_PEOPLE = [f"eng{i}@example.com" for i in range(1, 5)]
REQUESTERS = ["alice@example.com", "bob@example.com", "carol@example.com", "frank@example.com",
              "mark.mgr@example.com", *EXTRA_PEOPLE]
APPROVERS = ["mark.mgr@example.com", "dana.dba@example.com", "dev.dba@example.com", "sam.sec@example.com",
             "sasha.sec@example.com", "pat.lead@example.com"]
SECURITY = "sam.sec@example.com"
ASKS = {  # profile → what a requester types after "request <profile>"
    "prod-db-read": ["for 1h because INC-{n} soak", "for 5m because INC-{n} soak", "for 30m because INC-{n} page"],
    "staging-admin": ["for 3m", "for 20m", "for 1h"],
    "staging-shared": ["for 2m", "for 10m"],
    "analytics-read": ["for 2m", "for 30m"],
    "break-glass": ["for 5m because INC-{n} fire", "for 1h because INC-{n} fire"],
    "entra-ops": ["for 2m", "for 15m"],
    "entra-tools": ["for 3m", "for 1h"],
}
PROFILES = """
  - id: staging-shared
    title: Staging, shared with staging-admin's group
    owner: pat.lead@example.com
    risk: medium
    provider: directory
    group: sg-staging-admin
    eligible:
      - department: Engineering
    duration: {default: 10m, max: 1h}
    justification: optional
    approval:
      - manager

  - id: break-glass
    title: Break glass, both security engineers
    owner: pat.lead@example.com
    risk: high
    provider: directory
    group: sg-break-glass
    eligible:
      - department: Engineering
    duration: {default: 30m, max: 2h}
    justification: required
    approval:
      - {all_of: security}

  - id: entra-ops
    title: Operations console at Entra
    owner: pat.lead@example.com
    risk: medium
    provider: entra
    group: GROUP
    eligible:
      - department: Engineering
    duration: {default: 10m, max: 2h}
    justification: optional
    approval:
      - manager

  - id: entra-tools
    title: Tools at Entra (the same group)
    owner: pat.lead@example.com
    risk: low
    provider: entra
    group: GROUP
    eligible:
      - department: Engineering
    duration: {default: 10m, max: 2h}
    justification: optional
    approval: [owner]
    auto_approve:
      - {department: Engineering, max_duration: 2h}
"""


class ChaosGraph(GraphStandIn):
    """The Graph stand-in; faults (held or refused writes) hit membership writes only."""

    def faults_apply(self, request: web.Request) -> bool:
        return request.method in ("POST", "DELETE") and ("/members/" in request.path
                                                          or request.path.endswith("$batch"))


@dataclass
class Figures:
    commands: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    flickers: Counter[str] = field(default_factory=Counter)
    held_writes: int = 0
    refused_writes: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Soak:
    def __init__(self, db: str, workdir: Path, seconds: float, workers: int, seed: int) -> None:
        self.db, self.workdir, self.seconds, self.workers = db, workdir, seconds, workers
        self.rng = random.Random(seed)
        self.figures = Figures()
        self.running: dict[subprocess.Popen[str], float] = {}  # process → when it started
        self.running_lock = threading.Lock()
        self.stop = threading.Event()
        self.max_req = 0
        self.dir_lock = threading.Lock()
        (workdir / "tls").mkdir()
        self.tls = make_tls(workdir / "tls")
        self.graph = ChaosGraph(self.tls, page_size=50)
        self.policy = workdir / "policy.yaml"
        self.directory = workdir / "directory.yaml"

    # -- set-up -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.graph.start()
        self.group = self.graph.add_group("sg-soak-ops")
        policy = (ROOT / "examples/policy.yaml").read_text()
        policy = policy.replace("duration: {default: 4h, max: 8h}", "duration: {default: 1h, max: 2h}")
        self.policy.write_text(policy + PROFILES.replace("GROUP", self.group)
                               + f"\nschedule: {{retry_budget: 1m, provider_lease: {LEASE_S}s}}\n")
        people = yaml.safe_load((ROOT / "examples/directory.yaml").read_text())
        people["users"] += [{"email": e, "name": e.split("@")[0], "department": "Engineering", "title": "Engineer",
                             "employment_type": "FTE", "manager": "mark.mgr@example.com", "active": True}
                            for e in EXTRA_PEOPLE]
        self.directory_text = yaml.safe_dump(people, sort_keys=False)
        self.directory.write_text(self.directory_text)
        for person in people["users"]:
            self.graph.add_user(person["email"], display_name=person.get("name", ""),
                                department=person.get("department"))
        check = self.run("policy", "check", str(self.policy), common=False)
        assert check.returncode == 0, check.stderr

    @property
    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACCESSBOT_", "SLACK_", "Microsoft"))}
        return {**clean, "ACCESSBOT_IDENTITY": "directory",
                "ACCESSBOT_ENTRA_TENANT_ID": self.graph.tenant, "ACCESSBOT_ENTRA_CLIENT_ID": self.graph.client_id,
                "ACCESSBOT_ENTRA_CLIENT_SECRET": self.graph.client_secret,
                "ACCESSBOT_GRAPH_URL": self.graph.graph_url, "ACCESSBOT_AUTHORITY_URL": self.graph.url,
                "SSL_CERT_FILE": self.tls.ca_file, "REQUESTS_CA_BUNDLE": self.tls.ca_file}

    # -- processes --------------------------------------------------------------------------------
    def start(self, *args: str, input: str | None = None, common: bool = True) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "bot.cli", *args]
        if common:
            cmd += ["--database-url", self.db, "--policy", str(self.policy), "--directory", str(self.directory)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, env=self.env)
        assert proc.stdin is not None
        if input:
            proc.stdin.write(input)
        proc.stdin.close()
        proc.stdin = None
        with self.running_lock:
            self.running[proc] = time.monotonic()
        return proc

    def wait(self, proc: subprocess.Popen[str], what: str) -> subprocess.CompletedProcess[str]:
        try:
            out, err = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.error(f"{what}: hung for 180 s")
        finally:
            with self.running_lock:
                self.running.pop(proc, None)
        code = proc.returncode
        with self.figures.lock:
            self.figures.exits["killed" if code == -signal.SIGKILL else str(code)] += 1
        if "Traceback" in err:
            self.error(f"{what}: traceback\n{err[-1500:]}")
        for n in re.findall(r"REQ-(\d+)", out):
            self.max_req = max(self.max_req, int(n))
        return subprocess.CompletedProcess(proc.args, code, out, err)

    def run(self, *args: str, input: str | None = None, common: bool = True) -> subprocess.CompletedProcess[str]:
        return self.wait(self.start(*args, input=input, common=common), " ".join(args[:2]))

    def error(self, text: str) -> None:
        with self.figures.lock:
            self.figures.errors.append(text)

    # -- the actors -------------------------------------------------------------------------------
    def chat(self, who: str, *lines: str) -> None:
        with self.figures.lock:
            for line in lines:
                self.figures.commands[line.split()[0]] += 1
        self.run("chat", "--as", who, input="".join(f"{line}\n" for line in lines))

    def some_req(self) -> int:
        return self.rng.randint(max(1, self.max_req - 12), max(1, self.max_req))

    def requester_line(self) -> str:
        rng, n = self.rng, self.some_req()
        roll = rng.random()
        if roll < 0.5:
            profile = rng.choice(list(ASKS))
            return f"request {profile} " + rng.choice(ASKS[profile]).format(n=rng.randint(1, 999))
        if roll < 0.65:
            return f"extend REQ-{n} by {rng.choice(['2m', '10m', '1h'])} because INC-9 more"
        if roll < 0.85:
            return f"release REQ-{n}"
        return f"cancel REQ-{n}"

    def approver_line(self) -> str:
        n = self.some_req()
        return f"deny REQ-{n} because soak says no" if self.rng.random() < 0.12 else f"approve REQ-{n} soak"

    def act(self) -> None:
        """One ``accessbot`` process (or two at once), of one to three commands."""
        rng = self.rng
        roll = rng.random()
        many = rng.randint(1, 3)
        if roll < 0.35:
            self.chat(rng.choice(REQUESTERS), *[self.requester_line() for _ in range(many)])
        elif roll < 0.60:  # right and wrong approvers, now and then a requester approving
            self.chat(rng.choice(APPROVERS + REQUESTERS[:2]), *[self.approver_line() for _ in range(many)])
        elif roll < 0.70:  # double approval: two processes at once, the same person or two
            n, first = self.some_req(), rng.choice(APPROVERS)
            second = first if rng.random() < 0.5 else rng.choice(APPROVERS)
            with self.figures.lock:
                self.figures.commands["approve(double)"] += 1
            procs = [self.start("chat", "--as", who, input=f"approve REQ-{n}\n") for who in (first, second)]
            for proc in procs:
                self.wait(proc, "chat approve")
        elif roll < 0.78:
            self.chat(SECURITY, *[f"revoke REQ-{self.some_req()} because soak revoke" for _ in range(many)])
        else:
            offset = rng.choice([-7200, -600, 0, 60, 600, 3600, 3 * 3600])
            with self.figures.lock:
                self.figures.commands[f"sweep{offset:+d}s" if offset else "sweep"] += 1
            args = ["sweep"]
            if offset:
                at = datetime.now(UTC) + timedelta(seconds=offset)
                args += ["--as-of", at.strftime("%Y-%m-%dT%H:%M:%SZ")]
            self.run(*args)

    def worker(self) -> None:
        while not self.stop.is_set():
            try:
                self.act()
            except Exception as exc:  # the soak itself must go on; what broke is reported
                self.error(f"worker: {type(exc).__name__}: {exc}")

    def killer(self) -> None:
        while not self.stop.wait(self.rng.uniform(1, 4)):
            # a process past the interpreter's start-up (into the work itself); when none is at this
            # moment, the next one to get there within a second (commands got fast enough that a
            # single look often found none, and a short soak then killed nothing)
            deadline = time.monotonic() + 1.0
            while not self.stop.is_set():
                with self.running_lock:
                    victims = [p for p, since in self.running.items()
                               if p.poll() is None and time.monotonic() - since > STARTUP_S]
                if victims or time.monotonic() > deadline:
                    break
                self.stop.wait(0.02)
            if victims:
                victim = self.rng.choice(victims)
                try:
                    victim.send_signal(signal.SIGKILL)
                    with self.figures.lock:
                        self.figures.kills += 1
                except ProcessLookupError:
                    pass

    def write_directory(self, text: str) -> None:
        tmp = self.directory.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.directory)

    def flicker(self) -> None:
        """Now and then the directory file is torn, empty or missing a user, for a moment."""
        while not self.stop.wait(self.rng.uniform(3, 8)):
            kind = self.rng.choice(["torn", "empty", "missing"])
            if kind == "torn":
                broken = self.directory_text[: self.rng.randint(10, len(self.directory_text) - 10)]
                self.directory.write_text(broken)  # in place, as a half-written file is
            elif kind == "empty":
                self.directory.write_text("")
            else:
                data = yaml.safe_load(self.directory_text)
                gone = self.rng.choice(data["users"])["email"]
                data["users"] = [u for u in data["users"] if u["email"] != gone]
                self.write_directory(yaml.safe_dump(data, sort_keys=False))
                kind = f"missing {gone}"
            with self.figures.lock:
                self.figures.flickers[kind.split()[0]] += 1
            time.sleep(self.rng.uniform(0.3, 1.5))
            self.write_directory(self.directory_text)

    def provider_faults(self) -> None:
        """Some membership writes are held for a while (a process may die meanwhile) or refused for now."""
        while not self.stop.wait(self.rng.uniform(0.5, 2)):
            if self.rng.random() < 0.7:
                self.graph.slow_next(1, seconds=self.rng.uniform(0.5, 3))
                self.figures.held_writes += 1
            else:
                self.graph.faults.push(Fault("status", status=503, retry_after=0.2), 1)
                self.figures.refused_writes += 1

    # -- the run and the checks -------------------------------------------------------------------
    def soak(self) -> None:
        threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.workers)]
        threads += [threading.Thread(target=f, daemon=True) for f in (self.killer, self.flicker, self.provider_faults)]
        for t in threads:
            t.start()
        time.sleep(self.seconds)
        self.stop.set()
        for t in threads:
            t.join(240)
        self.graph.faults.clear()
        self.write_directory(self.directory_text)

    def settle(self) -> int:
        """Plain sweeps, after every lease ran out, until no provider call is left pending."""
        time.sleep(LEASE_S + 1)
        for round_ in range(1, 20):
            out = self.run("sweep")
            if out.returncode != 0:
                self.error(f"final sweep exit {out.returncode}: {out.stderr[-500:]}")
            if not self.pending_ops():
                return round_
            time.sleep(1)
        return -1

    def pending_ops(self) -> int:
        from sqlalchemy import text

        from store.db import make_sync_engine

        engine = make_sync_engine(self.db)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM provider_ops WHERE status = 'pending'")).scalar())
        finally:
            engine.dispose()

    def directory_members(self) -> dict[str, set[str]]:
        """The embedded directory's groups as the bot reads them: the file's, then the store's changes."""
        from sqlalchemy import text

        from store.db import make_sync_engine

        groups = {g: set(m or []) for g, m in (yaml.safe_load(self.directory_text).get("groups") or {}).items()}
        engine = make_sync_engine(self.db)
        try:
            with engine.connect() as conn:
                for group, email, present in conn.execute(
                        text("SELECT group_name, email, present FROM directory_memberships")):
                    (groups.setdefault(group, set()).add if present else groups.setdefault(group, set()).discard)(email)
        finally:
            engine.dispose()
        return groups

    def check(self) -> list[str]:
        violations: list[str] = []
        verify = self.run("audit", "verify")
        if verify.returncode != 0 or not verify.stdout.startswith("OK "):
            violations.append(f"audit verify: {verify.stdout.strip()} {verify.stderr.strip()}")
        self.verified = verify.stdout.strip()
        export = self.run("audit", "export", "--format", "jsonl")
        events = [json.loads(line) for line in export.stdout.splitlines() if line]
        policy = yaml.safe_load(self.policy.read_text())
        chains: dict[str, list[tuple[str, int]]] = {}
        groups: dict[str, tuple[str, str]] = {}
        for p in policy["profiles"]:
            groups[p["id"]] = (p["provider"], str(p["group"]))
            for key, steps in ((p["id"], p["approval"]),
                               (p["id"] + "!exception", (p.get("exception") or {}).get("approval") or [])):
                chains[key] = [(s, 1) if isinstance(s, str) else
                               ("n_of", int(s["n_of"])) if "n_of" in s else (next(iter(s)), 1) for s in steps]
        lives, bad = soak_checks.lives(events, chains)
        violations += bad
        violations += soak_checks.drift_reports(events)
        expected = soak_checks.expected_members(lives, groups)
        directory = self.directory_members()
        for (provider, group), holders in sorted(expected.items()):
            actual = set(self.graph.member_emails(group)) if provider == "entra" else directory.get(group, set())
            if actual != holders:
                violations.append(f"{provider}/{group}: members {sorted(actual)} but active grants for "
                                  f"{sorted(holders)}")
        self.lives = lives
        self.events = events
        return violations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database-url", help="an empty database (default: SQLite in a temporary folder)")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL cluster")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    workdir = Path(tempfile.mkdtemp(prefix="accessbot-soak-"))
    cluster = None
    db = args.database_url or f"sqlite:///{workdir}/soak.db"
    if args.postgres:
        import psycopg

        from tests.pgcluster import PgCluster

        cluster = PgCluster()
        base = cluster.start()
        name = f"soak_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        db = base.rsplit("/", 1)[0] + "/" + name
    soak = Soak(db, workdir, args.seconds, args.workers, seed)
    started = time.monotonic()
    try:
        soak.prepare()
        soak.soak()
        rounds = soak.settle()
        violations = soak.check()
        if rounds < 0:
            violations.append(f"{soak.pending_ops()} provider calls still pending after the final sweeps")
    finally:
        soak.graph.stop()
        if cluster is not None:
            cluster.stop()
    f = soak.figures
    states = Counter(life.state for life in soak.lives.values())
    print(f"soak: {'PostgreSQL' if db.startswith('postgresql') else 'SQLite'}, {args.workers} workers, "
          f"{args.seconds:.0f} s (seed {seed}), {time.monotonic() - started:.0f} s in all")
    print(f"commands: {sum(f.commands.values())} — " + ", ".join(f"{k} {v}" for k, v in sorted(f.commands.items())))
    print("exits: " + ", ".join(f"{k} {v}" for k, v in sorted(f.exits.items())))
    print(f"kills: {f.kills}; directory flickers: " + ", ".join(f"{k} {v}" for k, v in sorted(f.flickers.items()))
          + f"; Graph writes held {f.held_writes}, refused {f.refused_writes}")
    print(f"requests: {len(soak.lives)} — " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
          + f"; audit events {len(soak.events)}; {soak.verified}")
    print(f"final sweeps until no provider call was pending: {rounds}")
    print(f"errors (tracebacks, hangs): {len(f.errors)}")
    for e in f.errors[:10]:
        print("  " + e.replace("\n", "\n  "))
    print(f"violations: {len(violations)}")
    for v in violations[:50]:
        print("  " + v)
    if not violations and not f.errors:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"kept for inspection: {workdir}")
    return 1 if violations or f.errors else 0


if __name__ == "__main__":
    sys.exit(main())
