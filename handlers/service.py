"""One entry point for every channel: a person and a command in, a reply out."""

from __future__ import annotations

from handlers import approvals, queries, requests
from handlers.compliance.commands import COMPLIANCE_COMMANDS, handle_compliance, parse_compliance
from handlers.context import SYSTEM, Deps, known_person, one_lookup_per_person
from handlers.eligibility import AttributeNotSupplied
from handlers.grammar import (
    SECURITY_COMMANDS,
    Approve,
    Cancel,
    Command,
    Dashboard,
    Deny,
    Evidence,
    Extend,
    Help,
    History,
    Mine,
    Pending,
    Profiles,
    Release,
    Report,
    RequestAccess,
    Revoke,
    Status,
    Unknown,
    Verify,
    WhoHas,
    command_name,
    parse,
)
from handlers.grants import run_due_ops
from handlers.group_resolution import resolve_pending
from handlers.groups import GroupNotResolved
from handlers.policy import Policy
from handlers.ports import Person, ProviderError
from handlers.reviews.commands import REVIEW_COMMANDS, handle_review, parse_review
from handlers.sweeps import SweepReport, sweep
from handlers.text import clean_command, over_limit
from handlers.views import Reply

PROVIDER_UNAVAILABLE = "provider-unavailable"


def provider_unavailable(cmd: Command, exc: ProviderError) -> Reply:
    """A look-up the command needed failed at the identity provider (after its own retries). The write
    transaction it was part of rolled back with it. The answer names no person (the asker may not see
    the request whose chain was being read), only that the provider did not answer."""
    if isinstance(exc, AttributeNotSupplied):  # the policy names an attribute the identity source never gives
        return Reply(text=f"Could not finish `{command_name(cmd)}`: {exc}, so the rule cannot be judged and "
                          "nothing is granted by guess. The policy's owner must change the rule (see "
                          "`accessbot policy check`).", ok=False, kind="refusal",
                     rule=f"could not check: {exc.rule}")
    if isinstance(exc, GroupNotResolved):  # a group name of the policy Okta has not answered for yet
        return Reply(text=f"Could not finish `{command_name(cmd)}`: {exc}. Try again in a moment.",
                     ok=False, kind="refusal", rule=PROVIDER_UNAVAILABLE)
    status = f" (HTTP {exc.status})" if exc.status else ""
    return Reply(text=f"Could not finish `{command_name(cmd)}`: the identity provider did not answer{status}. "
                      "Try again in a moment.",
                 ok=False, kind="refusal", rule=PROVIDER_UNAVAILABLE)


# Commands that name a request: who may not see it is told it does not exist.
REQUEST_COMMANDS = (Approve, Deny, Cancel, Release, Extend, Status)


async def record_policy(deps: Deps, policy: Policy) -> None:
    """Store ``policy`` as the version in force, recording ``policy.loaded`` when it is not already (at a start,
    and when a saved file is put in force: bot/policy_watch.py). Writers are serialised, so several processes
    loading one version record it once."""
    now = deps.now()
    async with deps.store.write() as repo:
        if await repo.ensure_policy(policy.version, policy.sha256, policy.raw, now):
            await repo.append("policy.loaded", actor=SYSTEM, ts=now, data={
                "version": policy.version, "sha256": policy.sha256})


class AccessService:
    """The channel-neutral service. Channels authenticate the person; this decides."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.extra: dict[type, object] = {}  # handlers for commands added by other modules

    async def start(self) -> None:
        """Record the policy in force (``policy.loaded`` when it changed) and repair unfinished calls."""
        await record_policy(self.deps, self.deps.policy)
        await run_due_ops(self.deps)

    def parse(self, text: str) -> Command:
        review = parse_review(text)  # the access review words (SPEC §7) first
        compliance = parse_compliance(text)  # leavers, drift and the safety brake (SPEC §3.6)
        if compliance is not None:
            return compliance  # type: ignore[return-value]
        if review is not None:
            return review  # type: ignore[return-value]
        return parse(text, [p.id for p in self.deps.policy.profiles])

    async def handle_text(self, actor: Person, text: str, *, forms: bool = False, channel: str | None = None
                          ) -> Reply:
        return await self.handle(actor, self.parse(text), forms=forms, channel=channel)

    async def identify(self, email: str) -> Person | None:
        person = await self.deps.person(email)
        return person

    async def handle(self, actor: Person, cmd: Command, *, forms: bool = False, channel: str | None = None) -> Reply:
        """The one door for every channel: the command's free text is cleaned here, once.

        ``channel`` (console, slack, teams) is recorded where an event names it (``review.opened``).
        """
        cmd = clean_command(cmd)
        if not isinstance(cmd, RequestAccess) and (problem := over_limit(cmd)) is not None:
            rule, text = problem
            return Reply(text=f"Refused ({rule}): {text}.", ok=False, kind="refusal", rule=rule)
        if self.deps.groups.pending:  # group names the provider did not answer for at the load: resolved now
            await resolve_pending(self.deps)
        try:
            with one_lookup_per_person():
                known_person(actor)
                return await self._handle(actor, cmd, forms=forms, channel=channel)
        except ProviderError as exc:
            return provider_unavailable(cmd, exc)

    async def _handle(self, actor: Person, cmd: Command, *, forms: bool = False, channel: str | None = None
                      ) -> Reply:
        who = actor.email.lower()
        deps = self.deps
        if isinstance(cmd, SECURITY_COMMANDS) and not deps.is_security(who):
            name = command_name(cmd)
            async with deps.store.write() as repo:
                await repo.append("command.refused", actor=who, ts=deps.now(),
                                  data={"command": name, "reason": "not in the security team"})
            return Reply(text=f"`{name}` is for the security team only.", ok=False, kind="refusal",
                         rule="security-only")
        if not actor.active and not isinstance(cmd, Help | Unknown):
            return Reply(text="Your account is not active; the bot cannot act for you.", ok=False,
                         kind="refusal", rule="inactive")
        # ``status`` checks who may see the request on the rows it reads anyway (None: hidden), and a
        # decision on what it reads under the write lock (approvals.decide)
        if isinstance(cmd, REQUEST_COMMANDS) and not isinstance(cmd, Status | Approve | Deny) \
                and await queries.hidden_from(deps, who, cmd.request_id):
            return await self._hidden(actor, cmd)
        if isinstance(cmd, COMPLIANCE_COMMANDS):
            return await handle_compliance(deps, actor, cmd)
        if isinstance(cmd, REVIEW_COMMANDS):
            return await handle_review(deps, actor, cmd, channel)
        match cmd:
            case Help():
                return queries.help_reply(deps, who)
            case Unknown(text=_, hint=hint):
                prefix = "I did not understand that" + (f": {hint}." if hint else ".")
                return queries.help_reply(deps, who, prefix)
            case Profiles():
                return await queries.profiles(deps, who)
            case RequestAccess():
                return await requests.submit(deps, actor, cmd, forms=forms)
            case Mine():
                return await queries.mine(deps, who)
            case Approve(request_id=n, comment=comment, at=at):
                return await approvals.decide(deps, who, n, approve=True, comment=comment, at=at)
            case Deny(request_id=n, reason=reason, at=at):
                return await approvals.decide(deps, who, n, approve=False, comment=reason, at=at)
            case Cancel(request_id=n):
                return await approvals.cancel(deps, who, n)
            case Release(request_id=n):
                return await approvals.end_grant(deps, who, n, how="released", requester_only=True)
            case Extend(request_id=n, duration=d, reason=reason):
                return await approvals.extend(deps, who, n, d, reason)
            case Status(request_id=n, events=events):
                return await queries.status(deps, who, n, events=events) or await self._hidden(actor, cmd)
            case Pending():
                return await queries.pending(deps)
            case WhoHas(profile=p):
                return await queries.who_has(deps, p)
            case History(email=e):
                return await queries.history(deps, e)
            case Revoke(request_id=n, reason=reason):
                if not reason:
                    return Reply(text=f"Say why: `revoke REQ-{n} because <reason>`.", ok=False, kind="refusal",
                                 rule="reason")
                return await approvals.end_grant(deps, who, n, how="security", reason=reason)
            case Verify():
                return await queries.verify(deps)
            case Evidence() | Report() | Dashboard():
                handler = self.extra.get(type(cmd))
                if handler is None:
                    return Reply(text=f"`{command_name(cmd)}` is not available here; use the CLI "
                                 "(`accessbot evidence export` / `accessbot report`).", ok=False)
                return await handler(actor, cmd)  # type: ignore[operator]
        return queries.help_reply(deps, who, "I did not understand that.")

    async def _hidden(self, actor: Person, cmd: Cancel | Release | Extend | Status) -> Reply:
        """A request the asker may not see gets the very reply a request that does not exist gets (SPEC §4.1).

        The attempt is recorded as ``command.refused`` (a decision records ``approval.refused``, as for
        any non-approver: :func:`handlers.approvals.decide`).
        """
        who = actor.email.lower()
        n = cmd.request_id
        async with self.deps.store.write() as repo:
            await repo.append("command.refused", actor=who, ts=self.deps.now(), request_id=f"REQ-{n}",
                              data={"command": command_name(cmd), "reason": "not the requester, an approver "
                                    "or the security team"})
        return approvals.not_found(n)

    async def sweep(self, *, dry_run: bool = False, drift: bool = True) -> SweepReport:
        with one_lookup_per_person():
            return await sweep(self.deps, dry_run=dry_run, drift=drift)
