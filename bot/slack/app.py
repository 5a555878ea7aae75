"""The Bolt listeners: a thin translation between Slack payloads and the channel-neutral service.

Every command and click is acknowledged first and worked on after (IdP look-ups, provisioning,
messages to other people). Modal submissions are the exception Slack imposes: their answer
(``response_action: errors``) is the ack itself, so they are worked on first, within a time
limit; past it the modal closes and the answer arrives as a DM.

Who acts is always the ``user`` of the signed payload. A button ``value`` or a modal's
``private_metadata`` only names *which* request: a forged one acts as the signed user on that
request, and the handler refuses when they are not an approver of its open step.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any

import structlog
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.bootstrap import App
from bot.slack.identity import UNAVAILABLE, UNKNOWN_USER, acting_user, identify
from bot.slack.notifier import SlackNotifier
from cards import slack as blocks
from handlers.grammar import Approve, Command, Deny, Extend, Mine, Pending, RequestAccess, decision_at
from handlers.origin import acting_via
from handlers.ports import Person, ProviderError
from handlers.views import Reply, RequestView

log = structlog.get_logger("accessbot.slack")

COMMAND = "/access"
MODAL_BUDGET = 2.5  # seconds of work before a modal answer is sent anyway (Slack waits 3 s)
WORKERS = 8  # pieces of post-ack work running at once


def _header(request: AsyncBoltRequest, name: str) -> str | None:
    values = request.headers.get(name) or []
    return values[0] if values else None


def _first_action(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or []
    return actions[0] if actions and isinstance(actions[0], dict) else {}


def view_metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class AckGate:
    """Counts requests not yet acknowledged; post-ack work waits (a little) for a quiet moment.

    A burst of clicks is acknowledged first and worked through after, instead of each ack
    queueing behind other people's work on the one event loop. Quiet means no request open and
    none for ``settle`` seconds (requests of a burst arrive a few at a time, with gaps between
    them). Work never waits longer than ``max_wait`` seconds, so a steady stream of requests
    delays it but cannot starve it.
    """

    def __init__(self, max_wait: float = 0.5, settle: float = 0.02) -> None:
        self.max_wait = max_wait
        self.settle = settle
        self.open = 0
        self._last = 0.0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def enter(self) -> None:
        self.open += 1
        self._quiet.clear()

    def leave(self) -> None:
        self.open -= 1
        self._last = time.monotonic()
        if self.open <= 0:
            self.open = 0
            self._quiet.set()

    async def quiet(self) -> None:
        deadline = time.monotonic() + self.max_wait
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            if self._quiet.is_set():
                calm = now - self._last
                if calm >= self.settle:
                    return
                await asyncio.sleep(min(self.settle - calm, deadline - now))
                continue
            try:
                await asyncio.wait_for(self._quiet.wait(), deadline - now)
            except TimeoutError:
                return


class Listeners:
    """The Bolt app and its listeners; ``run`` tracks the work done after each ack."""

    def __init__(self, app: App, notifier: SlackNotifier, *, signing_secret: str, token: str,
                 process_before_response: bool = False, retry_handlers: list[Any] | None = None) -> None:
        from slack_sdk.web.async_client import AsyncWebClient

        self.app = app
        self.notifier = notifier
        self.client = notifier.client
        self.token = token
        self.signing_secret = signing_secret
        self.retry_handlers = retry_handlers or []
        self._workers = asyncio.Semaphore(WORKERS)
        self.gate = AckGate()
        self.process_before_response = process_before_response
        # Bolt's per-request client: same base URL and retries; the token comes from ``authorize``.
        bolt_client = AsyncWebClient(base_url=self.client.base_url, retry_handlers=list(self.retry_handlers))
        # Bolt runs each listener inline: the listeners ack and hand their work to ``run``, which
        # answers Slack first. (Bolt's own ack-first mode polls for the ack every 10 ms, which
        # under a burst of clicks costs more than all of Bolt's other work.)
        self.bolt = AsyncApp(signing_secret=signing_secret, client=bolt_client, authorize=self.authorize,
                             process_before_response=True, logger=None,
                             raise_error_for_unhandled_request=False)
        self._register()

    @property
    def authorize(self) -> Any:
        """The one bot token (no ``auth.test`` round trip); a plain function, as Bolt reads its argument names."""
        token = self.token

        async def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=token)

        return authorize

    def _register(self) -> None:
        bolt = self.bolt
        bolt.action(blocks.ACTION_APPROVE)(self.on_approve)
        bolt.command(COMMAND)(self.on_command)
        bolt.action(blocks.ACTION_DENY)(self.on_deny)
        bolt.action(blocks.ACTION_EXTEND)(self.on_extend)
        bolt.action(blocks.ACTION_OPEN_REQUEST)(self.on_open_request)
        bolt.view(blocks.REQUEST_MODAL)(self.on_request_submit)
        bolt.view(blocks.DENY_MODAL)(self.on_deny_submit)
        bolt.view(blocks.EXTEND_MODAL)(self.on_extend_submit)
        bolt.event("app_home_opened")(self.on_home_opened)
        from bot.slack.reviews import ReviewListeners  # access reviews: batch modal and its paging

        self.reviews = ReviewListeners(self)
        self.reviews.register()
        from bot.slack.compliance import ComplianceListeners  # drift remove / accept, resume removals

        self.compliance = ComplianceListeners(self)
        self.compliance.register()

    # -- plumbing ---------------------------------------------------------------------------------
    async def run(self, work: Awaitable[Any], *, urgent: bool = False) -> None:
        """Hand the work after an ack to a tracked task (shutdown and tests can wait for it).

        Acknowledging first: the listener returns at once and the HTTP answer goes out, unless
        ``process_before_response`` asks for the work to finish first. At most :data:`WORKERS`
        pieces of work run at once, each after a quiet moment, so that a burst of clicks is
        acknowledged first and worked through after; ``urgent`` work (opening a modal before its
        trigger expires) starts at once.
        """
        task = self.notifier.spawn(self._logged(work) if urgent else self._bounded(work))
        if self.process_before_response:
            await task

    async def _bounded(self, work: Awaitable[Any]) -> None:
        async with self._workers:
            if not self.process_before_response:
                await self.gate.quiet()
            await self._logged(work)

    @staticmethod
    async def _logged(work: Awaitable[Any]) -> None:
        try:
            await work
        except ProviderError as exc:  # answered already (Listeners.person); the cause is for the log
            log.warning("slack work stopped: the identity provider cannot answer", error=str(exc)[:300])
        except Exception:
            log.exception("slack work failed")

    async def first_time(self, request: AsyncBoltRequest, body: dict[str, Any]) -> bool:
        """False for an event Slack retried or a request replayed byte for byte (same signature)."""
        if body.get("type") == "event_callback" and body.get("event_id"):
            key = f"slack:event:{body['event_id']}"
        else:
            signature = _header(request, "x-slack-signature")
            if not signature:
                return True
            key = f"slack:sig:{signature}"
        return await self.app.store.first_seen(key[:200], self.app.deps.now())

    async def person(self, body: dict[str, Any]) -> Person | None:
        try:
            return await identify(self.app, self.client, acting_user(body))
        except ProviderError:  # who is asking cannot be known: nothing is done, and the person is told
            try:
                await self.respond(body, blocks.text_message(UNAVAILABLE))
            except Exception:
                log.warning("could not say that people cannot be looked up", exc_info=True)
            raise

    async def handle(self, body: dict[str, Any], person: Person, cmd: Command, *, forms: bool = False) -> Reply:
        """The service, with the audit events it records marked as Slack's, by the signed sender's user id."""
        with acting_via("slack", acting_user(body)):
            return await self.app.service.handle(person, cmd, forms=forms, channel="slack")  # review.opened: slack

    async def respond(self, body: dict[str, Any], message: dict[str, Any], *, replace: bool = False) -> None:
        """An answer only the asker sees (``response_url``), else a DM."""
        url = body.get("response_url")
        if isinstance(url, str) and url:
            hook = AsyncWebhookClient(url, session=self.client.session, retry_handlers=list(self.retry_handlers))
            response = await hook.send(text=message["text"], blocks=message.get("blocks"),
                                       response_type="ephemeral", replace_original=replace)
            if response.status_code != 200:
                log.info("response_url refused the answer", status=response.status_code, body=response.body[:200])
            return
        person = await self.person(body)
        if person is not None:
            await self.notifier.post(person.email, message)

    async def ensure_status(self, view: RequestView, note: str | None) -> None:
        """The requester's status DM, posted once per request (later changes update it)."""
        async with self.notifier.lock_for(view.number):
            async with self.app.store.read() as repo:
                known = await repo.messages("slack", view.number, "status")
            if not known:
                await self.notifier.post_status(view, note=note)

    async def open_modal(self, body: dict[str, Any], view: dict[str, Any]) -> bool:
        trigger = body.get("trigger_id")
        if not trigger:
            return False
        try:
            await self.client.views_open(trigger_id=trigger, view=view)
        except SlackApiError as exc:
            log.info("views.open failed", error=exc.response.get("error"))
            return False
        return True

    # -- /access ----------------------------------------------------------------------------------
    async def on_command(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        await self.run(self._command(body, request))

    async def _command(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        if not await self.first_time(request, body):
            return
        person = await self.person(body)
        if person is None:
            await self.respond(body, blocks.text_message(UNKNOWN_USER))
            return
        text = str(body.get("text") or "")
        cmd = RequestAccess(profile=None) if not text.strip() else self.app.service.parse(text)
        reply = await self.handle(body, person, cmd, forms=True)
        if reply.form is not None and await self.open_modal(body, blocks.request_modal(reply.form)):
            return
        await self.respond(body, blocks.reply_message(reply, viewer=person.email))
        await self._track(person, reply)

    async def _track(self, person: Person, reply: Reply) -> None:
        view = reply.request
        if view is not None and reply.ok and view.requester == person.email.lower() \
                and view.state in ("pending", "approved", "active"):
            await self.ensure_status(view, reply.text.splitlines()[0] if reply.text else None)

    # -- buttons ----------------------------------------------------------------------------------
    async def on_approve(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await ack()
        await self.run(self._approve(body, request))

    async def _approve(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        if not await self.first_time(request, body):
            return
        person = await self.person(body)
        if person is None:
            await self.respond(body, blocks.text_message(UNKNOWN_USER))
            return
        named = blocks.parse_decision_value(_first_action(body).get("value"))
        if named is None:
            await self.respond(body, blocks.text_message("This button does not name a request."))
            return
        n, at = named
        before = self.notifier.started()
        reply = await self.handle(body, person, Approve(n, None, at=at))
        # the deliveries the decision set off refresh every approval message of the request, the clicked one
        # too (without the clicker's note): the clicked message is written after them, so its note stays
        await self.notifier.settle(before)
        await self._after_click(body, person, n, reply)

    async def _after_click(self, body: dict[str, Any], person: Person, n: int, reply: Reply) -> None:
        """Refresh the clicked message when it is this person's approval message; otherwise answer aside."""
        who = person.email.lower()
        container = body.get("container") or {}
        channel, ts = container.get("channel_id"), container.get("message_ts")
        async with self.app.store.read() as repo:
            mine = [a for r, _, a in await repo.messages("slack", n, "approval")
                    if r == who and a.get("channel") == channel and a.get("ts") == ts]
        if mine and reply.request is not None:
            async with self.notifier.lock_for(n):
                view = await self.notifier.fresh_view(n) or reply.request
                await self.notifier.update(mine[0], blocks.approval_message(view, viewer=who, note=reply.text))
        elif not reply.ok or body.get("response_url"):
            await self.respond(body, blocks.text_message(reply.text))
        if container.get("type") == "view" or (body.get("view") or {}).get("type") == "home":
            await self.publish_home(acting_user(body) or "", person)

    async def on_deny(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        named = blocks.parse_decision_value(_first_action(body).get("value"))
        if named is None:
            await self.run(self.respond(body, blocks.text_message("This button does not name a request.")))
            return
        n, at = named
        # the modal must open within the trigger's 3 s; who denies is checked on submission, for the round and
        # step of the message whose button opened it
        await self.run(self.open_modal(body, blocks.deny_modal(f"REQ-{n}", at=at)), urgent=True)

    async def on_extend(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        n = blocks.parse_request_value(_first_action(body).get("value"))
        if n is None:
            await self.run(self.respond(body, blocks.text_message("This button does not name a request.")))
            return
        await self.run(self.open_modal(body, blocks.extend_modal(f"REQ-{n}")), urgent=True)

    async def on_open_request(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        await self.run(self._open_request(body), urgent=True)

    async def _open_request(self, body: dict[str, Any]) -> None:
        person = await self.person(body)
        if person is None:
            await self.respond(body, blocks.text_message(UNKNOWN_USER))
            return
        reply = await self.handle(body, person, RequestAccess(profile=None), forms=True)
        if reply.form is not None:
            await self.open_modal(body, blocks.request_modal(reply.form))

    # -- modals -----------------------------------------------------------------------------------
    async def _answer_modal(self, ack: Any, work: Awaitable[dict[str, Any] | None], late: Any) -> None:
        """Ack with the work's answer when it is ready in time; else close the modal and let ``late`` tell."""
        task = self.notifier.spawn(work)  # type: ignore[arg-type]
        try:
            answer = await asyncio.wait_for(asyncio.shield(task), MODAL_BUDGET)
        except TimeoutError:
            await ack()
            task.add_done_callback(lambda t: late(t))
            return
        if answer:
            await ack(**answer)
        else:
            await ack()

    def _late(self, body: dict[str, Any]) -> Any:
        def deliver(task: asyncio.Task[Any]) -> None:
            if task.cancelled() or task.exception() is not None:
                return
            # what the modal would have shown: a refusal ('Not saved', 'Not denied') is never told as done
            self.notifier.spawn(self.respond(body, blocks.late_answer(task.result())))
        return deliver

    async def on_request_submit(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await self._answer_modal(ack, self._request_submit(body, request), self._late(body))

    async def _request_submit(self, body: dict[str, Any], request: AsyncBoltRequest) -> dict[str, Any] | None:
        if not await self.first_time(request, body):
            return None
        person = await self.person(body)
        if person is None:
            return {"response_action": "errors", "errors": {"profile": UNKNOWN_USER[:150]}}
        view = body.get("view") or {}
        values = blocks.modal_values(view.get("state") or {})
        cmd = RequestAccess(profile=(values.get("profile") or "").lower() or None, duration=values.get("duration"),
                            reason=values.get("justification"), ticket=values.get("ticket"),
                            exception=view_metadata(view).get("exception") is True)
        reply = await self.handle(body, person, cmd, forms=True)
        if reply.form is not None:
            return {"response_action": "errors", "errors": blocks.form_errors(reply.form) or
                    {"profile": "Please check the form."}}
        if not reply.ok:
            return {"response_action": "errors", "errors": blocks.refusal_errors(reply)}
        self.notifier.spawn(self._after_submit(person, reply))
        return None

    async def _after_submit(self, person: Person, reply: Reply) -> None:
        if reply.request is not None:
            await self.ensure_status(reply.request, reply.text)
        else:
            await self.notifier.post(person.email, blocks.text_message(reply.text))

    async def on_deny_submit(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await self._answer_modal(ack, self._deny_submit(body, request), self._late(body))

    async def _request_form(self, body: dict[str, Any], request: AsyncBoltRequest, block: str,
                            title: str) -> tuple[Person, int, dict[str, Any]] | dict[str, Any] | None:
        """A submitted request form's sender, request number and values; or the modal's answer when the
        submission is a replay (None), its sender unknown, or the form names no request."""
        if not await self.first_time(request, body):
            return None
        person = await self.person(body)
        if person is None:
            return {"response_action": "errors", "errors": {block: UNKNOWN_USER[:150]}}
        view = body.get("view") or {}
        n = blocks.parse_request_value(view_metadata(view).get("request"))
        if n is None:
            return {"response_action": "update",
                    "view": blocks.result_modal(title, "This form does not name a request.")}
        return person, n, blocks.modal_values(view.get("state") or {})

    async def _deny_submit(self, body: dict[str, Any], request: AsyncBoltRequest) -> dict[str, Any] | None:
        form = await self._request_form(body, request, blocks.REASON_BLOCK, "Not denied")
        if not isinstance(form, tuple):
            return form
        person, n, values = form
        reply = await self.handle(body, person, Deny(n, values.get(blocks.REASON_BLOCK),
                                                     at=decision_at(view_metadata(body.get("view") or {}))))
        if reply.rule == "reason":  # none given, or one over its limit: told inline, by what is wrong with it
            text = "Say why you deny the request." if reply.kind == "form" else reply.text
            return {"response_action": "errors", "errors": {blocks.REASON_BLOCK: text[:150]}}
        if not reply.ok:
            return {"response_action": "update", "view": blocks.result_modal("Not denied", reply.text)}
        return None

    async def on_extend_submit(self, ack: Any, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        await self._answer_modal(ack, self._extend_submit(body, request), self._late(body))

    async def _extend_submit(self, body: dict[str, Any], request: AsyncBoltRequest) -> dict[str, Any] | None:
        form = await self._request_form(body, request, blocks.EXTEND_BLOCK, "Not extended")
        if not isinstance(form, tuple):
            return form
        person, n, values = form
        reply = await self.handle(body, person, Extend(n, values.get(blocks.EXTEND_BLOCK),
                                                             values.get(blocks.REASON_BLOCK)))
        if not reply.ok:
            return {"response_action": "errors", "errors": {blocks.EXTEND_BLOCK: reply.text[:150]}}
        self.notifier.spawn(self.notifier.post(person.email, blocks.text_message(reply.text)))
        return None

    # -- App Home ---------------------------------------------------------------------------------
    async def on_home_opened(self, ack: Any, body: dict[str, Any], event: dict[str, Any],
                             request: AsyncBoltRequest) -> None:
        await ack()
        if event.get("tab", "home") != "home":
            return
        await self.run(self._home_opened(body, request))

    async def _home_opened(self, body: dict[str, Any], request: AsyncBoltRequest) -> None:
        if not await self.first_time(request, body):
            return
        uid = acting_user(body)
        if not uid:
            return
        await self.publish_home(uid, await self.person(body))

    async def publish_home(self, uid: str, person: Person | None) -> None:
        if not uid:
            return
        if person is None:
            view = {"type": "home", "blocks": blocks.text_message(UNKNOWN_USER)["blocks"]}
        else:
            with acting_via("slack", uid):
                view = await self.home_for(person)
        await self.client.views_publish(user_id=uid, view=view)

    async def home_for(self, person: Person) -> dict[str, Any]:
        who = person.email.lower()
        mine = await self.app.service.handle(person, Mine())
        waiting_ids = set(mine.data.get("waiting_on_me") or ())
        own = [v for v in mine.requests if v.requester == who and v.id not in waiting_ids]
        waiting = [v for v in mine.requests if v.id in waiting_ids]
        queue = None
        if self.app.deps.is_security(who):
            pending = await self.app.service.handle(person, Pending())
            queue = list(pending.requests) if pending.ok else None
        home = blocks.home_view(own=own, waiting_on_me=waiting, queue=queue, name=person.name or None)
        reviews = await self.reviews.home_blocks(who)
        if reviews:  # the batches waiting for the person come right after the request button
            home["blocks"] = blocks._fit([*home["blocks"][:3], *reviews, *home["blocks"][3:]], blocks.MAX_VIEW_BLOCKS)
        return home

