"""``accessbot``: the command line (SPEC §5)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime

from bot.errors import CliError
from bot.extensions import optional_modules
from bot.settings import Settings, load_settings
from handlers.audit import canonical_json
from handlers.context import FixedClock
from handlers.origin import acting_via
from handlers.policy import Policy, PolicyError, PolicyIssue, load_policy

# Modules that add subcommands of their own: each has ``register(subparsers, common)``.
EXTENSIONS = ("bot.serve_cli", "bot.evidence_cli", "bot.teams_cli", "bot.review_cli")


# The instants ``--as-of`` may judge by: the timers add durations of up to ten years (and a year of business days)
# to it, which must stay inside Python's calendar (years 1 to 9999).
AS_OF_FIRST = datetime(1970, 1, 1, tzinfo=UTC)
AS_OF_END = datetime(9001, 1, 1, tzinfo=UTC)


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 with ``Z`` or an offset; a bare date means midnight UTC (``--as-of``: from 1970 to 9000)."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CliError(f"not an ISO 8601 timestamp: {text!r} (e.g. 2026-11-23T08:00:00Z)") from None
    if moment.tzinfo is None:
        if "T" in raw or " " in raw:
            raise CliError(f"timestamp {text!r} needs a time zone (Z or an offset like +01:00)")
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # the offset carries it past year 9999 or before year 1
        moment = AS_OF_END if moment.year > 1 else datetime.min.replace(tzinfo=UTC)
    if not AS_OF_FIRST <= moment < AS_OF_END:
        raise CliError(f"--as-of {text!r} is out of range: give an instant from 1970 to 9000 "
                       "(e.g. 2026-11-23T08:00:00Z)")
    return moment


def common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", help="SQLAlchemy URL (default: ACCESSBOT_DATABASE_URL or sqlite:///accessbot.db)")
    p.add_argument("--policy", help="policy file (default: ACCESSBOT_POLICY or examples/policy.yaml)")
    p.add_argument("--directory", help="directory file (default: ACCESSBOT_DIRECTORY or examples/directory.yaml)")


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings().with_overrides(database_url=getattr(args, "database_url", None),
                                          policy=getattr(args, "policy", None),
                                          directory=getattr(args, "directory", None))


# -- commands ----------------------------------------------------------------------------------
def okta_attribute_warnings(settings: Settings, policy: Policy) -> list[PolicyIssue]:
    """``policy check`` with Okta as the identity source: the rule keys the Okta user profile schema does not
    have (:func:`provisioning.okta.attribute_warnings`). A schema that cannot be read (no Okta settings, a network
    error, a token not allowed to read it) is said in one warning; the check goes on without it."""
    from provisioning.okta import attribute_warnings

    if not settings.okta_configured:
        return [PolicyIssue(None, "identity", "the Okta user profile schema was not read (no ACCESSBOT_OKTA_URL and "
                                              "credentials): rule keys were not checked against it")]
    from bot.bootstrap import okta_provider

    async def read() -> frozenset[str]:
        okta = okta_provider(settings)
        try:
            return await okta.profile_properties()
        finally:
            await okta.close()

    try:
        properties = asyncio.run(read())
    except Exception as exc:  # unreachable, refused (403: the token may not read schemas), malformed: said, not fatal
        return [PolicyIssue(None, "identity", f"the Okta user profile schema could not be read ({exc}): rule keys "
                                              "were not checked against it")]
    return attribute_warnings(policy, properties)


def cmd_policy_check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"{args.file}: {issue}", file=sys.stderr)
        print(f"{args.file}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    from handlers.chain_check import chain_warnings
    from handlers.groups import overlap_warnings

    warnings = overlap_warnings(policy) + chain_warnings(policy)
    settings = load_settings()
    if settings.identity_source == "entra":  # Graph hands over only what is selected, by known names
        from provisioning.entra import attribute_warnings

        warnings += attribute_warnings(policy)
    elif settings.identity_source == "okta":  # Okta hands over the whole profile: a key its schema lacks has no value
        warnings += okta_attribute_warnings(settings, policy)
    warnings = sorted(warnings, key=lambda w: w.line or 0)
    for warning in warnings:
        print(f"{args.file}: {warning}", file=sys.stderr)
    note = f", {len(warnings)} warning(s)" if warnings else ""
    print(f"{args.file}: OK — version {policy.version}, {len(policy.profiles)} profiles, sha256 {policy.sha256}{note}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from store.db import current_revision, upgrade
    from store.roles import DatabaseSetupError, serving_user

    settings = settings_from(args)
    owner = args.owner_url or settings.env.get("ACCESSBOT_DATABASE_OWNER_URL") or None
    try:
        grants = upgrade(settings.database_url, owner_url=owner)
    except DatabaseSetupError as exc:
        print(f"accessbot: {exc}", file=sys.stderr)
        return 1
    print(f"database at revision {current_revision(owner or settings.database_url)}")
    if owner:
        others = "; ".join(g for g in grants if not g.startswith("audit_events"))
        print(f"serving role {serving_user(settings.database_url)}: INSERT and SELECT only on audit_events; {others}")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.bootstrap import build_app
    from bot.console import ConsoleNotifier, run_console
    from bot.policy_watch import PolicyWatch

    async def run() -> int:
        settings = settings_from(args)
        async with build_app(settings, notifier=ConsoleNotifier(sys.stdout)) as app:
            # a saved policy file is used from the next line on
            watch = PolicyWatch(app, settings.policy, quiet=True, wait=True)
            return await run_console(app.service, args.as_email, sys.stdin, sys.stdout, before=watch.news)

    with acting_via("console"):
        return asyncio.run(run())


def cmd_sweep(args: argparse.Namespace) -> int:
    from bot.bootstrap import build_app
    from bot.evidence_delivery import run_scheduled_evidence as scheduled_evidence

    # --as-of sets only the clock timers are judged by; what the sweep records happens now (SPEC §5)
    if args.as_of is not None and not args.as_of.strip():
        raise CliError("--as-of needs a timestamp such as 2026-11-23T08:00:00Z (leave it out to judge as of now)")
    as_of = FixedClock(parse_timestamp(args.as_of)) if args.as_of is not None else None

    async def run() -> int:
        from bot.notify import FanoutNotifier

        # the channels serve would use (Slack, Teams) deliver what this sweep records: a reminder, an escalation
        # or an expiry notice is recorded as sent, so a sweep that sent it nowhere lost it for good
        notifier = FanoutNotifier()
        async with build_app(settings_from(args), as_of=as_of, record_policy=not args.dry_run,
                             notifier=notifier) as app:
            runner = None
            configured = app.settings.slack_enabled or bool(app.settings.app_id) or app.settings.teams_emulator_on
            if configured and not args.dry_run:
                from aiohttp import web

                from bot.server import create_web_app

                runner = web.AppRunner(create_web_app(app, notifier, scheduler=False), access_log=None)
                await runner.setup()  # the channels' clients open; nothing listens
            try:
                report = await app.service.sweep(dry_run=args.dry_run)
                evidence = [] if args.dry_run else await scheduled_evidence(app)
            finally:
                if runner is not None:
                    await runner.cleanup()  # the deliveries started finish before the process ends
        print("\n".join(report.lines() + evidence))
        return 0

    return asyncio.run(run())


def existing_database(args: argparse.Namespace) -> Settings:
    """The settings of a read-only command, once its database is known to exist with its schema.

    ``audit``, ``evidence`` and ``report`` never create a database: a wrong path must not read as
    an empty, clean audit (SPEC §5).
    """
    from store.db import upgrade
    from store.probe import require_existing

    settings = settings_from(args)
    require_existing(settings.database_url)
    upgrade(settings.database_url)  # an older schema is brought up to date; none is ever created here
    return settings


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from store.repository import SqlStore

    return SqlStore(existing_database(args).database_url)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from bot.anchor_cli import check_anchors

    anchors = args.anchors or settings_from(args).env.get("ACCESSBOT_ANCHOR_FILE")
    store = _store(args)

    async def run() -> int:
        try:
            result = await store.verify_audit()
            if not result.ok:
                print(f"BROKEN at seq {result.bad_seq}: {result.reason}")
                return 1
            print(f"OK {result.count} events {result.head_hash}")
            if anchors:
                return await check_anchors(store, anchors)
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def cmd_audit_export(args: argparse.Namespace) -> int:
    store = _store(args)

    async def run() -> int:
        out = sys.stdout
        try:
            async for event in store.audit_events():
                out.write(canonical_json(event.as_dict()) + "\n")
        finally:
            await store.close()
        return 0

    return asyncio.run(run())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accessbot", description="Privileged access requests with approval "
                                     "chains, time-bound grants and a hash-chained audit log.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("chat", help="talk to the bot in the terminal as a directory user")
    common_options(p)
    p.add_argument("--as", dest="as_email", required=True, metavar="EMAIL")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("policy", help="policy files")
    psub = p.add_subparsers(dest="policy_command", required=True)
    pc = psub.add_parser("check", help="validate a policy file")
    common_options(pc)
    pc.add_argument("file")
    pc.set_defaults(func=cmd_policy_check)

    p = sub.add_parser("sweep", help="run expiry, termination and drift once")
    common_options(p)
    p.add_argument("--as-of", help="judge time as of this instant (ISO 8601)")
    p.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("audit", help="the audit chain")
    asub = p.add_subparsers(dest="audit_command", required=True)
    av = asub.add_parser("verify", help="verify the hash chain")
    common_options(av)
    av.add_argument("--anchors", metavar="FILE", help="also compare with the chain heads anchored in this file "
                    "(default: ACCESSBOT_ANCHOR_FILE when set)")
    av.set_defaults(func=cmd_audit_verify)
    ae = asub.add_parser("export", help="the events, one JSON object a line")
    common_options(ae)
    ae.add_argument("--format", choices=["jsonl"], default="jsonl")
    ae.set_defaults(func=cmd_audit_export)

    p = sub.add_parser("db", help="the database")
    dsub = p.add_subparsers(dest="db_command", required=True)
    du = dsub.add_parser("upgrade", help="apply schema migrations")
    common_options(du)
    du.add_argument("--owner-url", metavar="URL", help="PostgreSQL: migrate as this role (it owns the tables) and "
                    "grant the serving role of --database-url only what it needs (default: "
                    "ACCESSBOT_DATABASE_OWNER_URL)")
    du.set_defaults(func=cmd_db_upgrade)

    for module in optional_modules(EXTENSIONS):
        register: Callable[..., None] | None = getattr(module, "register", None)
        if register is not None:
            register(sub, common_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    origin = getattr(args, "origin", "cli")  # ``chat`` says console itself; ``serve`` leaves it to each channel
    try:
        with acting_via(origin) if origin else nullcontext():
            return int(args.func(args) or 0)
    except CliError as exc:
        print(f"accessbot: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        path = settings_from(args).policy
        print(f"accessbot: the policy file {path} is invalid:", file=sys.stderr)
        for issue in exc.issues:
            print(f"{path}: {issue}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from provisioning.directory import DirectoryError
        from store.probe import failure

        if isinstance(exc, DirectoryError):
            print(f"accessbot: the directory file is invalid:\n{exc}", file=sys.stderr)
            return 1
        problem = failure(exc, settings_from(args).database_url)
        if problem is not None:
            print(f"accessbot: {problem}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())



