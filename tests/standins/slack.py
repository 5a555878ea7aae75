"""A stand-in Slack Web API on 127.0.0.1: records every call and answers like Slack.

``POST|GET /api/<method>`` takes form, JSON or query arguments, checks the bot token
(``{"ok": false, "error": "invalid_auth"}`` otherwise) and keeps DMs, messages, modals and App
Home views. It refuses what Slack refuses (too many blocks, over-long section texts, unknown
messages or users, expired triggers) with ``{"ok": false, "error": ...}`` (a ``response_url`` answer with
HTTP 400 and the error), and throttles with
429 + ``Retry-After`` via ``fail_next``. ``POST /response/<id>`` stands in for ``response_url``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.standins import Fault, StandIn

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    ok: bool = True
    error: str | None = None


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    edits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def action_ids(self) -> list[str]:
        return [e.get("action_id") for b in self.blocks if b.get("type") == "actions" for e in b["elements"]]

    @property
    def values(self) -> list[str]:
        return [e.get("value") for b in self.blocks if b.get("type") == "actions" for e in b["elements"]]

    @property
    def all_text(self) -> str:
        return self.text + "\n" + block_text(self.blocks)


def block_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks)
    return "\n".join(out)


def _blocks_problem(blocks: Any, limit: int) -> str | None:
    if blocks is None:
        return None
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return "invalid_blocks_format"
    if not isinstance(blocks, list):
        return "invalid_blocks_format"
    if len(blocks) > limit:
        return "invalid_blocks"
    for b in blocks:
        if not isinstance(b, dict) or "type" not in b:
            return "invalid_blocks"
        text = b.get("text")
        if b["type"] == "section" and isinstance(text, dict) and len(text.get("text", "")) > MAX_SECTION_TEXT:
            return "invalid_blocks"
    return None


class SlackWebApi(StandIn):
    TOKEN = "xoxb-standin-token"
    TEAM = "T0ACCESS"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Message] = {}
        self.responses: list[dict[str, Any]] = []  # bodies posted to response_url
        self.modals: list[dict[str, Any]] = []  # views.open
        self.homes: dict[str, list[dict[str, Any]]] = {}  # user id → every published home view
        self.users: dict[str, dict[str, Any]] = {}  # Slack user id → users.info "user"
        self.refusals: dict[str, str] = {}  # method → the error every call of it gets (``refuse``)
        self._ts = itertools.count(1)

    def refuse(self, method: str, error: str) -> None:
        """Answer every call of ``method`` ``{"ok": false, "error": error}`` (HTTP 200, as Slack refuses) until
        ``reset``."""
        with self.lock:
            self.refusals[method] = error

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.calls.clear()
            self.messages.clear()
            self.responses.clear()
            self.modals.clear()
            self.homes.clear()
            self.users.clear()
            self.refusals.clear()

    def add_user(self, uid: str, email: str, *, deleted: bool = False) -> None:
        with self.lock:
            self.users[uid] = {"id": uid, "team_id": self.TEAM, "name": email.split("@")[0], "deleted": deleted,
                               "is_bot": False, "profile": {"email": email, "real_name": email}}

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{rid}", self._response)

    def fault_response(self, fault: Fault, request: web.Request) -> web.Response:
        headers = {"Retry-After": f"{int(fault.retry_after or 1)}"} if fault.status == 429 else {}
        error = "ratelimited" if fault.status == 429 else "internal_error"
        return web.json_response({"ok": False, "error": error}, status=fault.status, headers=headers)

    # -- plumbing ---------------------------------------------------------------------------------
    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    args.update(body)
            else:
                args.update(dict(await request.post()))
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        call = Call(method, args)
        with self.lock:
            self.calls.append(call)
        if request.headers.get("Authorization") != f"Bearer {self.TOKEN}" and args.get("token") != self.TOKEN:
            return self._error(call, "invalid_auth" if request.headers.get("Authorization") else "not_authed")
        refusal = self.refusals.get(method)
        if refusal is not None:
            return self._error(call, refusal)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return self._error(call, "unknown_method")
        result = handler(args)
        if isinstance(result, str):
            return self._error(call, result)
        return web.json_response({"ok": True, **result})

    @staticmethod
    def _error(call: Call, error: str) -> web.Response:
        call.ok, call.error = False, error
        return web.json_response({"ok": False, "error": error})

    def _blocks(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        blocks = args.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else blocks

    # -- methods ----------------------------------------------------------------------------------
    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://standin.slack.com/", "team": "Access", "team_id": self.TEAM, "user": "accessbot",
                "user_id": "U0BOT", "bot_id": "B0BOT"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any] | str:
        user = self.users.get(str(args.get("user")))
        return {"user": user} if user else "user_not_found"

    def _users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any] | str:
        email = str(args.get("email") or "").lower()
        user = next((u for u in self.users.values() if u["profile"]["email"] == email), None)
        return {"user": user} if user else "users_not_found"

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any] | str:
        users = str(args.get("users") or "")
        if not users or "," in users:
            return "user_not_found" if not users else "not_allowed_token_type"
        return {"channel": {"id": "D" + users}}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any] | str:
        channel = str(args.get("channel") or "")
        if not channel.startswith(("D", "C")):
            return "channel_not_found"
        if not args.get("text") and not args.get("blocks"):
            return "no_text"
        problem = _blocks_problem(args.get("blocks"), MAX_MESSAGE_BLOCKS)
        if problem:
            return problem
        ts = f"1763884850.{next(self._ts):06d}"
        message = Message(channel, ts, str(args.get("text") or ""), self._blocks(args))
        with self.lock:
            self.messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": {"text": message.text, "ts": ts}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any] | str:
        key = (str(args.get("channel")), str(args.get("ts")))
        message = self.messages.get(key)
        if message is None:
            return "message_not_found"
        problem = _blocks_problem(args.get("blocks"), MAX_MESSAGE_BLOCKS)
        if problem:
            return problem
        with self.lock:
            message.edits.append({"text": message.text, "blocks": message.blocks})
            message.text, message.blocks = str(args.get("text") or ""), self._blocks(args)
        return {"channel": key[0], "ts": key[1]}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any] | str:
        if args.get("trigger_id") in (None, "", "expired"):
            return "expired_trigger_id"
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        problem = _blocks_problem((view or {}).get("blocks"), MAX_VIEW_BLOCKS)
        if problem:
            return problem
        with self.lock:
            self.modals.append(view)
        return {"view": {"id": f"V{len(self.modals):04d}", **view}}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any] | str:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        if not args.get("view_id"):
            return "not_found"
        problem = _blocks_problem((view or {}).get("blocks"), MAX_VIEW_BLOCKS)
        if problem:
            return problem
        with self.lock:
            self.modals.append(view)
        return {"view": {"id": args["view_id"], **view}}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any] | str:
        view = args.get("view")
        view = json.loads(view) if isinstance(view, str) else view
        problem = _blocks_problem((view or {}).get("blocks"), MAX_VIEW_BLOCKS)
        if problem:
            return problem
        with self.lock:
            self.homes.setdefault(str(args.get("user_id")), []).append(view)
        return {"view": {"id": "VHOME", **view}}

    async def _response(self, request: web.Request) -> web.Response:
        """A ``response_url`` answer: refused as Slack refuses it (HTTP 400, the error as the body) when its blocks
        break Slack's limits, kept otherwise."""
        body = await request.json()
        problem = _blocks_problem(body.get("blocks") if isinstance(body, dict) else None, MAX_MESSAGE_BLOCKS)
        if problem:
            return web.Response(status=400, text=problem)
        with self.lock:
            self.responses.append({"rid": request.match_info["rid"], **body})
        return web.Response(text="ok")

    # -- queries ----------------------------------------------------------------------------------
    def calls_of(self, method: str, *, ok: bool | None = None) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def dm(self, uid: str) -> list[Message]:
        """Messages in the DM with this Slack user, oldest first, as they read now."""
        with self.lock:
            return [m for (ch, _), m in self.messages.items() if ch == "D" + uid]

    def approvals(self, uid: str, request: str) -> list[Message]:
        return [m for m in self.dm(uid) if m.text.startswith(f"{request}:") or f"{request}:" in m.text[:20]]

    def all_messages(self) -> list[Message]:
        with self.lock:
            return list(self.messages.values())
